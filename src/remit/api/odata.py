"""OData query options that shape a response: ``$select``, ``$expand``, and the text of ``$top``,
``$skip`` and ``$count``. ``$filter``, ordering and paging run in the domain's queries
(``remit.listing``).
"""

from __future__ import annotations

import re
from typing import Any

from remit.errors import Invalid

_EXPAND_ITEM = re.compile(r"\s*([A-Za-z]+)(?:\((.*)\))?\s*$")


def split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside parentheses."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise Invalid("unbalanced parentheses", target="$expand")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth:
        raise Invalid("unbalanced parentheses", target="$expand")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_expand(text: str | None) -> dict[str, dict[str, str]]:
    """``a,b($expand=c;$select=d)`` → {"a": {}, "b": {"$expand": "c", "$select": "d"}}."""
    result: dict[str, dict[str, str]] = {}
    if not text:
        return result
    for item in split_top_level(text):
        match = _EXPAND_ITEM.match(item)
        if not match:
            raise Invalid(f"$expand item {item!r} is not understood", target="$expand")
        options: dict[str, str] = {}
        for option in (match.group(2) or "").split(";"):
            if option.strip():
                name, sep, value = option.partition("=")
                if not sep:
                    raise Invalid(f"$expand option {option!r} is not understood", target="$expand")
                options[name.strip()] = value.strip()
        result[match.group(1)] = options
    return result


def parse_select(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [s.strip() for s in text.split(",") if s.strip()]
    if not all(re.fullmatch(r"[A-Za-z@.]+", n) for n in names):
        raise Invalid("$select lists property names separated by commas", target="$select")
    return names


def parse_top(value: str | None, name: str = "$top") -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 9:
        raise Invalid(f"{name} must be a non-negative integer", target=name)
    return int(value)


def parse_bool(value: str | None, name: str) -> bool:
    if value is None:
        return False
    if value.lower() not in ("true", "false"):
        raise Invalid(f"{name} must be true or false", target=name)
    return value.lower() == "true"


def apply_select(item: dict[str, Any], names: list[str] | None) -> dict[str, Any]:
    if not names:
        return item
    keep = set(names) | {"id"}
    return {k: v for k, v in item.items() if k in keep or k.startswith("@odata.")}
