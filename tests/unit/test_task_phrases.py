"""Every task has words (issue #11): messages say what was refused, never the identifier."""

from __future__ import annotations

import pytest

from remit.authz.actor import Actor
from remit.authz.decide import authorize, explain
from remit.authz.tasks import TASK_PHRASES, Task, phrase
from remit.errors import Forbidden

NOBODY = Actor(user_id="u-1", name="nobody@contoso.example")


def test_every_task_has_its_own_phrase() -> None:
    assert set(TASK_PHRASES) == set(Task)
    phrases = [phrase(t) for t in Task]
    assert len(set(phrases)) == len(phrases), "two tasks share their words"
    for task, words in TASK_PHRASES.items():
        assert words, task
        assert words == words.strip(), task
        # Words, not an identifier: no colon, no camelCase.
        assert ":" not in words, (task, words)
        assert words == words.lower(), (task, words)


@pytest.mark.parametrize("task", list(Task))
def test_a_refusal_names_the_task_in_words(task: Task) -> None:
    with pytest.raises(Forbidden) as refused:
        authorize(NOBODY, task, "catalog-1")
    assert refused.value.message == f"you are not allowed to {phrase(task)}"
    assert task.value not in refused.value.message
    [reason] = explain(NOBODY, task, "catalog-1", {"catalog-1": "Marketing"}).reasons
    assert phrase(task) in reason, reason
    assert task.value not in reason, reason


def test_the_reported_example_reads_as_words() -> None:
    """The message found by the adversarial pass: "not allowed to em catalogCreators manage"."""
    with pytest.raises(Forbidden) as refused:
        authorize(NOBODY, Task.CATALOG_CREATORS_MANAGE)
    assert refused.value.message == "you are not allowed to manage catalog creators"
