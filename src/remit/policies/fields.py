"""Typed readers for one Graph JSON document, each naming the exact place of a bad value.

A path is the dotted Graph name of a value (``requestApprovalSettings.stages[1].primaryApprovers``);
every ``Invalid`` raised here carries it as its ``target``. Unknown keys are never looked at (Graph
ignores them); known keys must have the right type.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from remit import validation
from remit.durations import format_duration, parse_duration
from remit.errors import Invalid


def at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def obj(value: Any, path: str) -> dict[str, Any]:
    """An object; absent (None) reads as an empty one."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{path} must be an object", target=path)
    return value


def flag(src: dict[str, Any], key: str, path: str, default: bool) -> bool:
    value = src.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise Invalid(f"{at(path, key)} must be true or false", target=at(path, key))
    return value


def flags(src: dict[str, Any], path: str, defaults: dict[str, bool]) -> dict[str, bool]:
    """Several flags of one object, each with its default, in the order given."""
    return {key: flag(src, key, path, default) for key, default in defaults.items()}


def text(
    src: dict[str, Any],
    key: str,
    path: str,
    *,
    required: bool = False,
    max_len: int = 4000,
    multiline: bool = False,
) -> str | None:
    """A string; one line without control characters unless ``multiline`` (descriptions, the
    text of a question), which may hold tab and line breaks."""
    value = src.get(key)
    where = at(path, key)
    if value is None or (required and isinstance(value, str) and not value.strip()):
        if required:
            raise Invalid(f"{where} is required", target=where)
        return None
    if not isinstance(value, str):
        raise Invalid(f"{where} must be a string", target=where)
    if len(value) > max_len:
        raise Invalid(f"{where} is longer than {max_len} characters", target=where)
    return validation.no_controls(value, where, multiline=multiline)


def integer(src: dict[str, Any], key: str, path: str, *, default: int, low: int, high: int) -> int:
    value = src.get(key)
    where = at(path, key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Invalid(f"{where} must be a whole number from {low} to {high}", target=where)
    return value


def items(src: dict[str, Any], key: str, path: str, *, max_items: int) -> list[Any]:
    """A list; absent (None) reads as an empty one."""
    value = src.get(key)
    where = at(path, key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f"{where} must be a list", target=where)
    if len(value) > max_items:
        raise Invalid(f"{where} holds more than {max_items} items", target=where)
    return value


def enum(value: Any, allowed: Sequence[str], path: str) -> str:
    """The canonical spelling of an enum value given in any case."""
    if isinstance(value, str):
        for name in allowed:
            if name.lower() == value.strip().lower():
                return name
    raise Invalid(f"{path} must be one of {', '.join(allowed)}", target=path)


def type_name(value: Any, path: str) -> str:
    """The lower-cased Graph type name of an ``@odata.type`` (with or without the namespace)."""
    where = at(path, "@odata.type")
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"{where} is required", target=where)
    name = value.strip().lstrip("#").lower()
    return name.removeprefix("microsoft.graph.")


def duration(value: Any, path: str) -> timedelta:
    """An ISO-8601 duration, or the SDK's ``str(timedelta)`` form ("30 days, 0:00:00")."""
    if not isinstance(value, str):
        raise Invalid(f"{path} must be an ISO-8601 duration such as P30D", target=path)
    try:
        return parse_duration(value, target=path)
    except Invalid as exc:
        raise Invalid(f"{path}: {exc.message}", target=path) from exc


def iso_duration(value: timedelta) -> str:
    return format_duration(value)


def instant(value: Any, path: str) -> datetime:
    """An ISO-8601 date and time; without an offset it is taken as UTC."""
    if isinstance(value, str):
        try:
            found = datetime.fromisoformat(value.strip().replace("z", "Z"))
            return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise Invalid(f"{path} must be an ISO-8601 date and time", target=path)


def iso_instant(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"
