"""Custom requestor questions (spec §5.5, graph-api accessPackageQuestion).

Stored form, every key present::

    {"@odata.type": "#microsoft.graph.accessPackageTextInputQuestion", "id", "sequence",
     "isRequired", "isAnswerEditable", "text", "localizations": [{"languageCode", "text"}],
     "isSingleLineQuestion", "regexPattern"}
    {"@odata.type": "#microsoft.graph.accessPackageMultipleChoiceQuestion", ...the same base...,
     "isMultipleSelectionAllowed", "choices": [{"actualValue", "text", "localizations"}]}

A question keeps the id it is given (so a PUT that echoes a GET keeps every id); remit assigns
one to a question without.

``regexPattern`` must lie in the linear-time subset of ``remit.safe_regex``: answers are checked
against it with that module's ``fullmatch`` (case-sensitive; ``.`` matches a newline too and
``\\d \\w \\s`` are ASCII), never with Python's backtracking ``re``, so that no pattern can hang a
request. A pattern outside the subset is refused with the reason and the character at fault.
"""

from __future__ import annotations

import re
from typing import Any

from remit import safe_regex
from remit.db import new_id
from remit.errors import Invalid
from remit.models.vocabulary import GRAPH
from remit.policies import fields as f
from remit.policies.fields import at

TEXT_INPUT = "accessPackageTextInputQuestion"
MULTIPLE_CHOICE = "accessPackageMultipleChoiceQuestion"
_TYPES = {TEXT_INPUT.lower(): TEXT_INPUT, MULTIPLE_CHOICE.lower(): MULTIPLE_CHOICE}
# Not documented by Microsoft; generous for a request form.
MAX_QUESTIONS = 50
MAX_CHOICES = 200
MAX_LOCALIZATIONS = 100
MAX_REGEX_LENGTH = 1000
MAX_TEXT = 2000
_LANGUAGE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")


def parse(src: dict[str, Any], path: str = "") -> list[dict[str, Any]]:
    where = at(path, "questions")
    found = [
        _question(item, at(where, i), i)
        for i, item in enumerate(f.items(src, "questions", path, max_items=MAX_QUESTIONS))
    ]
    ids: set[str] = set()
    for i, question in enumerate(found):
        if question["id"] in ids:
            raise Invalid(f"{at(where, i)}.id repeats another question's id", target=at(where, i))
        ids.add(question["id"])
    return found


def _question(value: Any, path: str, index: int) -> dict[str, Any]:
    if value is None:
        raise Invalid(f"{path} must be a question", target=path)
    src = f.obj(value, path)
    name = _TYPES.get(f.type_name(src.get("@odata.type"), path))
    if name is None:
        where = at(path, "@odata.type")
        raise Invalid(
            f"{where} must be {GRAPH}{TEXT_INPUT} or {GRAPH}{MULTIPLE_CHOICE}", target=where
        )
    out: dict[str, Any] = {
        "@odata.type": GRAPH + name,
        "id": (f.text(src, "id", path, max_len=64) or "").strip() or new_id(),
        "sequence": f.integer(src, "sequence", path, default=index + 1, low=0, high=10_000),
        "isRequired": f.flag(src, "isRequired", path, False),
        "isAnswerEditable": f.flag(src, "isAnswerEditable", path, False),
        "text": f.text(src, "text", path, required=True, max_len=MAX_TEXT, multiline=True),
        "localizations": _localizations(src, path),
    }
    if name == TEXT_INPUT:
        out["isSingleLineQuestion"] = f.flag(src, "isSingleLineQuestion", path, True)
        out["regexPattern"] = _regex(src, path)
    else:
        out["isMultipleSelectionAllowed"] = f.flag(src, "isMultipleSelectionAllowed", path, False)
        out["choices"] = _choices(src, path)
    return out


def _localizations(src: dict[str, Any], path: str) -> list[dict[str, Any]]:
    where = at(path, "localizations")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(f.items(src, "localizations", path, max_items=MAX_LOCALIZATIONS)):
        here = at(where, i)
        entry = f.obj(item, here)
        code = str(f.text(entry, "languageCode", here, required=True, max_len=35)).strip()
        if not _LANGUAGE.match(code):
            target = at(here, "languageCode")
            raise Invalid(f"{target} must be a language code such as en-US", target=target)
        if any(o["languageCode"].lower() == code.lower() for o in out):
            raise Invalid(f"{here} repeats the language {code}", target=here)
        out.append(
            {
                "languageCode": code,
                "text": f.text(
                    entry, "text", here, required=True, max_len=MAX_TEXT, multiline=True
                ),
            }
        )
    return out


def _regex(src: dict[str, Any], path: str) -> str | None:
    pattern = f.text(src, "regexPattern", path, max_len=MAX_REGEX_LENGTH)
    if pattern is None or pattern == "":
        return None
    try:
        safe_regex.compile(pattern, max_length=MAX_REGEX_LENGTH)
    except safe_regex.PatternError as exc:
        target = at(path, "regexPattern")
        raise Invalid(
            f"{target} is not a regular expression remit supports: {exc}", target=target
        ) from None
    return pattern


def _choices(src: dict[str, Any], path: str) -> list[dict[str, Any]]:
    where = at(path, "choices")
    raw = f.items(src, "choices", path, max_items=MAX_CHOICES)
    if not raw:
        raise Invalid(f"{where} must offer at least one choice", target=where)
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        here = at(where, i)
        entry = f.obj(item, here)
        value = f.text(entry, "actualValue", here, required=True, max_len=MAX_TEXT)
        if any(o["actualValue"] == value for o in out):
            target = at(here, "actualValue")
            raise Invalid(f"{target} repeats the value {value!r}", target=target)
        out.append(
            {
                "actualValue": value,
                "text": f.text(entry, "text", here, max_len=MAX_TEXT) or value,
                "localizations": _localizations(entry, here),
            }
        )
    return out
