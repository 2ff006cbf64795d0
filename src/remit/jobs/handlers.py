"""Every module that registers job handlers, imported before a worker starts.

Registration happens at import (``@job``/``@periodic``), so a worker imports each domain's
``jobs`` module first (``Worker`` does it when it is built).
"""

from __future__ import annotations

import importlib

HANDLER_MODULES = ("remit.lifecycle.jobs", "remit.notify.jobs", "remit.external.jobs")


def load_all() -> list[str]:
    """Import the handler modules (once per process; later calls cost nothing)."""
    for name in HANDLER_MODULES:
        importlib.import_module(name)
    return list(HANDLER_MODULES)
