"""Answers to a policy's questions (spec §5.5), checked against the questions when submitted.

A text answer must match the whole of its question's ``regexPattern``, checked with
``remit.safe_regex`` (linear time: no pattern can hang a request). Policies written before that
module checked their patterns may hold one outside its subset (a back-reference, a look-around,
``\\b``, ...). Such a pattern is not guessed at, nor skipped: a non-empty answer to that question
is refused (400, code ``UnsupportedQuestionPattern``, target the answer's ``answeredQuestion``)
with the reason, until a policy owner rewrites the pattern (a PUT that keeps it is refused too,
by ``remit.policies.questions``). An optional question may still be left unanswered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from remit import safe_regex, validation
from remit.errors import Invalid
from remit.models.policy_settings import Question, Sent

ANSWER_TYPE = "#microsoft.graph.accessPackageAnswerString"
CHOICE = "#microsoft.graph.accessPackageMultipleChoiceQuestion"
MAX_ANSWER = 4000


class _Given(Sent):
    """An answer as a request body gives it: each value is checked where it is read."""

    answered_question: Any = None
    value: Any = None
    display_value: Any = None


def validate(questions: Sequence[Question], answers: list[Any] | None) -> list[dict[str, Any]]:
    """Stored answers (Graph shape), or Invalid naming the first problem."""
    if answers is None:
        answers = []
    if not isinstance(answers, list):
        raise Invalid("answers must be a list", target="answers")
    by_id = {q.id: q for q in questions}
    given: dict[str, dict[str, Any]] = {}
    for i, answer in enumerate(answers):
        where = f"answers[{i}]"
        if not isinstance(answer, dict):
            raise Invalid(f"{where} must be an object", target=where)
        given_answer = _Given.model_validate(answer)
        asked = given_answer.answered_question or {}
        qid = asked.get("id") if isinstance(asked, dict) else None
        if not isinstance(qid, str) or qid not in by_id:
            raise Invalid(
                f"{where} answers no question of this policy", target=f"{where}.answeredQuestion"
            )
        if qid in given:
            raise Invalid(f"{where} answers a question twice", target=where)
        question = by_id[qid]
        value, display = _check(question, *_texts(given_answer, question, where), where)
        given[qid] = {
            "@odata.type": ANSWER_TYPE,
            "value": value,
            "displayValue": display,
            "answeredQuestion": {
                "@odata.type": question.odata_type,
                "id": qid,
                "text": question.text,
                "sequence": question.sequence,
            },
        }
    for q in questions:
        if q.is_required and not (given.get(q.id) or {}).get("value"):
            raise Invalid(
                f"the question {q.text!r} requires an answer",
                target="answers",
                code="MissingRequiredAnswer",
            )
    return [given[q.id] for q in questions if q.id in given]


def _texts(answer: _Given, question: Question, where: str) -> tuple[str, str | None]:
    """The answer's value (stripped) and display value, as text they may hold: multi-line
    (tab and line breaks, no other control), or one line for a single-line text question,
    checked before the surrounding space is stripped."""
    value = answer.value
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise Invalid(f"{where}.value must be a string", target=f"{where}.value")
    if len(value) > MAX_ANSWER:
        raise Invalid(f"{where}.value is too long", target=f"{where}.value")
    validation.no_controls(value, f"{where}.value", multiline=True)
    if question.odata_type != CHOICE and question.is_single_line_question:
        if "\n" in value or "\r" in value:
            raise Invalid(f"{where}: this question takes a single line", target=f"{where}.value")
        validation.no_controls(value, f"{where}.value")
    shown = answer.display_value
    display = (
        validation.optional_text(shown, f"{where}.displayValue", max_len=MAX_ANSWER)
        if isinstance(shown, str)
        else None
    )
    return value.strip(), display


def _check(question: Question, value: str, display: str | None, where: str) -> tuple[str, str]:
    if not value:
        return value, display or value
    if question.odata_type == CHOICE:
        choices = {c.actual_value: c for c in question.choices}
        picked = (
            [v.strip() for v in value.split(",")]
            if question.is_multiple_selection_allowed
            else [value]
        )
        unknown = [v for v in picked if v not in choices]
        if unknown:
            raise Invalid(
                f"{where}: {unknown[0]!r} is not one of the choices", target=f"{where}.value"
            )
        shown = ", ".join(str(choices[v].text or v) for v in picked)
        return ",".join(picked), display or shown
    pattern = question.regex_pattern
    if pattern and not _pattern(pattern, where).fullmatch(value):
        raise Invalid(
            f"{where}: the answer does not have the required format", target=f"{where}.value"
        )
    return value, display or value


def _pattern(pattern: str, where: str) -> safe_regex.SafeRegex:
    try:
        return safe_regex.compile(pattern)
    except safe_regex.PatternError as exc:
        raise Invalid(
            f"{where}: the question's regexPattern can't be checked safely ({exc}); "
            "the policy's owner must rewrite it before this question can be answered",
            target=f"{where}.answeredQuestion",
            code="UnsupportedQuestionPattern",
        ) from None
