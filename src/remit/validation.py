"""Small shared input rules used by operations (the API's models check shapes first)."""

from __future__ import annotations

import re

from remit.errors import Invalid

_UPN = re.compile(r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
# C0 controls and DEL. Multi-line text may hold tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def control_character(text: str, *, multiline: bool = False) -> str | None:
    """The first control character ``text`` may not hold, or None.

    Single-line text (names, ids, addresses) holds none; multi-line text (descriptions,
    justifications, answers) may hold tab, line feed and carriage return. NUL is never allowed:
    PostgreSQL cannot store it and SQLite would.
    """
    found = (_CONTROL_MULTILINE if multiline else _CONTROL).search(text)
    return found.group() if found else None


def display_name(value: str | None, field: str = "displayName", max_len: int = 256) -> str:
    text = (value or "").strip()
    if not text:
        raise Invalid(f"{field} is required", target=field)
    if len(text) > max_len:
        raise Invalid(f"{field} is longer than {max_len} characters", target=field)
    if any(ord(c) < 32 for c in text):
        raise Invalid(f"{field} contains control characters", target=field)
    return text


def optional_text(value: str | None, field: str, max_len: int = 4000) -> str | None:
    if value is None:
        return None
    if len(value) > max_len:
        raise Invalid(f"{field} is longer than {max_len} characters", target=field)
    return value


def upn(value: str | None, field: str = "userPrincipalName") -> str:
    text = (value or "").strip()
    if len(text) > 320 or not _UPN.match(text):
        raise Invalid(f"{field} must look like name@domain", target=field)
    return text


def is_uuid(value: str) -> bool:
    return bool(_UUID.match(value))
