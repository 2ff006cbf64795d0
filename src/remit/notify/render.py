"""Email templates: a subject, a plain-text body and an HTML body per template name.

The names and their data keys are the contract with the lifecycle (see ``TEMPLATES``). Each
``<name>.txt`` holds ``{% block subject %}`` and the plain body; ``<name>.html`` the HTML body
(autoescaped). A file whose name starts with ``_`` is a piece the others share (a layout, an
include, macros), not a template. A missing optional key renders as nothing, never as an error:
a notification is worth sending with a line missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, PackageLoader, Template

# template name -> (portal page, the data key that names the object), for the link in the body
TEMPLATES: dict[str, tuple[str, str]] = {
    "approval_needed": ("approvals", "request_id"),
    "approval_reminder": ("approvals", "request_id"),
    "request_stage_approved": ("approvals", "request_id"),
    "request_approved": ("approvals", "request_id"),
    "request_denied": ("requests", "request_id"),
    "request_expired": ("requests", "request_id"),
    "access_delivered": ("requests", "request_id"),
    "access_expiring": ("access", "assignment_id"),
    "access_ended": ("access", "assignment_id"),
}

# Every data key some template reads: absent ones render as None (empty), never as an error.
KEYS = (
    "package", "requestor", "target", "justification", "start", "end", "submitted", "deadline",
    "stage", "stages", "request_id", "escalated", "approver", "days", "assignment_id", "reason",
)  # fmt: skip
MAX_SUBJECT = 200


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def is_instant(value: Any) -> bool:
    """``{% if end is instant %}``: an ISO 8601 time, not a phrase such as "no end date"."""
    return _instant(value) is not None


def when(value: Any) -> str:
    """An ISO 8601 instant as "2 Mar 2026 14:05 UTC"; anything else as it came."""
    parsed = _instant(value)
    if parsed is None:
        return "" if value is None else str(value)
    return f"{parsed.day} {parsed:%b %Y %H:%M} UTC"


def _environment(*, html: bool) -> Environment:
    env = Environment(
        loader=PackageLoader("remit.notify", "templates"),
        # The HTML bodies are escaped; the text bodies and subjects are not HTML.
        autoescape=html,  # noqa: S701
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["when"] = when
    env.tests["instant"] = is_instant
    return env


_TEXT = _environment(html=False)
_HTML = _environment(html=True)


def link_for(name: str, data: Mapping[str, Any], portal_base_url: str) -> str | None:
    page, key = TEMPLATES[name]
    object_id = data.get(key)
    if not portal_base_url or not object_id:
        return None
    return f"{portal_base_url.rstrip('/')}/{page}/{quote(str(object_id), safe='')}"


def _block(template: Template, block: str, context: dict[str, Any]) -> str:
    return "".join(template.blocks[block](template.new_context(context)))


def render(name: str, data: Mapping[str, Any], *, portal_base_url: str = "") -> Rendered:
    if name not in TEMPLATES:
        raise ValueError(f"no email template named {name!r}")
    context = {
        **dict.fromkeys(KEYS),
        **data,
        "link": link_for(name, data, portal_base_url),
        "portal": portal_base_url.rstrip("/") or None,
    }
    text = _TEXT.get_template(f"{name}.txt")
    # One line, however the data looks: a header cannot hold a line break.
    subject = " ".join(_block(text, "subject", context).split())
    if len(subject) > MAX_SUBJECT:
        subject = subject[: MAX_SUBJECT - 1] + "…"
    return Rendered(
        subject=subject,
        text=text.render(context),
        html=_HTML.get_template(f"{name}.html").render(context),
    )
