"""Named crash points for the crash-consistency tests (QUALITY.md R7).

``crash_point("x")`` kills the process on the spot (``os._exit``: no cleanup, no commit, no
rollback) when the environment variable ``REMIT_CRASH_AT`` names ``x``. Unset, it is one dict
lookup. The names are listed in ``POINTS`` so a test can check it covers each of them.
"""

from __future__ import annotations

import os

POINTS = (
    "request.before_commit",
    "request.after_insert",
    "stage.after_decision",
    "assignment.after_create",
    "job.after_enqueue",
    "job.after_claim",
    "job.before_finish",
    "connector.before_call",
    "connector.after_call",
    "expiry.after_transition",
    "audit.after_append",
    "removal.after_revoke",
)
EXIT_CODE = 77


def crash_point(name: str) -> None:
    if os.environ.get("REMIT_CRASH_AT") == name:
        os._exit(EXIT_CODE)
