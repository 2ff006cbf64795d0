"""Small shared input rules used by operations (the API's models check shapes first).

Every free-text value an operation stores goes through one of these, so that the rules hold
whatever the adapter (API, CLI, demo loader): single-line text (names, ids, addresses) holds no
control character at all; multi-line text (descriptions, justifications, answers) may hold tab,
line feed and carriage return; NUL is never stored (PostgreSQL cannot, SQLite would). Decision
0020 explains the choices.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from email_validator import EmailNotValidError, validate_email

from remit.errors import Invalid

_UPN = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+")
# C0 controls and DEL. Multi-line text may hold tab, line feed and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_MULTILINE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# Explicit embeddings, overrides and isolates: they reorder what follows them on screen, so a
# name holding one can read as another ("Trojan Source").
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Letters and symbols that draw nothing (Hangul fillers, the blank Braille pattern, the Khmer
# inherent vowels) and the invisible combining marks (grapheme joiner, variation selectors,
# Mongolian free variation selectors). Format characters (Cf) and white space are found by
# category.
_BLANKS = frozenset("\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0\u034f\u180b\u180c\u180d\u180f")
_VARIATION_SELECTORS = ((0xFE00, 0xFE0F), (0xE0100, 0xE01EF))
MAX_ID_LENGTH = 1024
# What email-validator is asked: no DNS (remit runs offline), no SMTPUTF8 (the mail builder
# does not speak it: an address with a non-ASCII local part would be dropped when sending), no
# display names, quoted local parts or IP literals. Its default list of special-use domains
# (test, local, localhost, invalid, onion, arpa) is refused; the reserved ``.example`` names
# the demo tenant and the tests use are accepted.
_EMAIL_OPTIONS: dict[str, Any] = {
    "check_deliverability": False,
    "allow_smtputf8": False,
    "allow_display_name": False,
    "allow_quoted_local": False,
    "allow_domain_literal": False,
}


def control_character(text: str, *, multiline: bool = False) -> str | None:
    """The first control character ``text`` may not hold, or None.

    Single-line text (names, ids, addresses) holds none; multi-line text (descriptions,
    justifications, answers) may hold tab, line feed and carriage return. NUL is never allowed:
    PostgreSQL cannot store it and SQLite would.
    """
    found = (_CONTROL_MULTILINE if multiline else _CONTROL).search(text)
    return found.group() if found else None


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{field} must be a string", target=field)
    return value


def no_controls(value: str, field: str, *, multiline: bool = False) -> str:
    """``value`` unchanged, or Invalid naming the first control character it may not hold."""
    found = control_character(value, multiline=multiline)
    if found is not None:
        allowed = " (only tab and line breaks are allowed)" if multiline else ""
        message = f"{field} contains the control character U+{ord(found):04X}{allowed}"
        raise Invalid(message, target=field)
    return value


def _invisible(char: str) -> bool:
    if char.isspace() or char in _BLANKS or unicodedata.category(char) in ("Cf", "Cc"):
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _VARIATION_SELECTORS)


def only_editable(changes: Mapping[str, Any], editable: AbstractSet[str]) -> None:
    """Refuse a change naming a property that is not ``editable`` (read-only or unknown)."""
    unknown = set(changes) - editable
    if unknown:
        raise Invalid(f"these properties cannot be changed: {', '.join(sorted(unknown))}")


def display_name(value: str | None, field: str = "displayName", max_len: int = 256) -> str:
    """A name people read in lists and emails: one line, something visible, no reordering.

    Control characters are refused before the surrounding space is stripped, so a trailing
    line break is an error rather than silently dropped.
    """
    text = no_controls(_string(value or "", field), field).strip()
    if not text:
        raise Invalid(f"{field} is required", target=field)
    if len(text) > max_len:
        raise Invalid(f"{field} is longer than {max_len} characters", target=field)
    bidi = next((c for c in text if c in BIDI_CONTROLS), None)
    if bidi is not None:
        message = f"{field} contains the bidirectional control U+{ord(bidi):04X}"
        raise Invalid(message, target=field)
    if all(_invisible(c) for c in text):
        raise Invalid(f"{field} has no visible character", target=field)
    return text


def optional_text(
    value: str | None, field: str, max_len: int = 4000, *, multiline: bool = True
) -> str | None:
    """Free text as given, or None. Multi-line by default (descriptions, rules); pass
    ``multiline=False`` for a one-line value (a department, a job title, a nickname)."""
    if value is None:
        return None
    text = _string(value, field)
    if len(text) > max_len:
        raise Invalid(f"{field} is longer than {max_len} characters", target=field)
    return no_controls(text, field, multiline=multiline)


def justification(value: str | None, field: str = "justification") -> str | None:
    """A requestor's or an approver's reason: multi-line text of at most 4,000 characters,
    without its surrounding space; None when nothing is left."""
    text = optional_text(value, field, max_len=4000)
    return (text or "").strip() or None


def upn(value: str | None, field: str = "userPrincipalName") -> str:
    text = no_controls(_string(value or "", field), field).strip()
    if len(text) > 320 or not _UPN.fullmatch(text):
        raise Invalid(f"{field} must look like name@domain", target=field)
    return text


def email(value: str | None, field: str = "mail") -> str:
    """One mail address (``name@domain``), as given but for surrounding spaces, and with an
    internationalised domain in its ASCII form (``xn--…``), which every mail server takes.

    Refused: control characters (header injection), lists, display names (``Ann <a@b>``),
    quoted local parts, IP literals, special-use domains, and local parts that need SMTPUTF8.
    """
    text = no_controls(_string(value or "", field), field).strip()
    if not text:
        raise Invalid(f"{field} is required", target=field)
    try:
        found = validate_email(text, **_EMAIL_OPTIONS)
    except EmailNotValidError as exc:
        raise Invalid(f"{field} is not a valid email address: {exc}", target=field) from exc
    if text.isascii():
        return text
    local, _, _domain = text.rpartition("@")
    return f"{local}@{found.ascii_domain}"


def optional_email(value: str | None, field: str = "mail") -> str | None:
    """An address, or None for none (null or an empty string)."""
    return None if value is None or value == "" else email(value, field)


def usable_id(value: object) -> bool:
    """Whether ``value`` can name a stored object at all. An id with a control character (or of
    absurd length) names nothing: callers answer "not found" without asking the database,
    which on PostgreSQL cannot even take a NUL as a parameter."""
    return (
        isinstance(value, str) and len(value) <= MAX_ID_LENGTH and control_character(value) is None
    )


def is_uuid(value: str) -> bool:
    return bool(_UUID.fullmatch(value))
