"""The per-process memory of verified bearer tokens (docs/decisions/0006).

It may skip only the checks that cannot change for the same token text and the same verifier;
the times are checked on every use and a failing token gets the verifier's own error.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from remit.api.state import VerifiedTokens
from remit.errors import Unauthenticated
from remit.settings import Settings
from remit.tokens import TokenService
from tests.conftest import SteppingClock


class Counting(TokenService):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.calls = 0

    def verified(self, token: str, **kwargs: Any) -> Any:
        self.calls += 1
        return super().verified(token, **kwargs)


@pytest.fixture
def tokens(settings: Settings) -> Counting:
    return Counting(settings)


def test_a_token_is_verified_once_then_remembered(tokens: Counting, clock: SteppingClock) -> None:
    cache = VerifiedTokens()
    token = tokens.issue("user-1", "u@contoso.example", now=clock())
    first = cache.verify(tokens, token, now=clock())
    assert cache.verify(tokens, token, now=clock()) == first
    assert first.subject == "user-1"
    assert tokens.calls == 1


def test_an_expired_token_is_refused_even_when_remembered(
    tokens: Counting, clock: SteppingClock
) -> None:
    cache = VerifiedTokens()
    token = tokens.issue("user-1", "u@contoso.example", now=clock(), ttl=timedelta(minutes=5))
    cache.verify(tokens, token, now=clock())
    clock.advance(minutes=6)
    with pytest.raises(Unauthenticated, match="expired"):
        cache.verify(tokens, token, now=clock())


def test_a_token_issued_in_the_future_is_not_remembered_early(
    tokens: Counting, clock: SteppingClock
) -> None:
    cache = VerifiedTokens()
    token = tokens.issue("user-1", "u@contoso.example", now=clock() + timedelta(hours=1))
    with pytest.raises(Unauthenticated, match="not valid yet"):
        cache.verify(tokens, token, now=clock())
    with pytest.raises(Unauthenticated, match="not valid yet"):
        cache.verify(tokens, token, now=clock())


def test_another_verifier_or_an_old_entry_verifies_again(
    tokens: Counting, settings: Settings, clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = VerifiedTokens()
    token = tokens.issue("user-1", "u@contoso.example", now=clock())
    cache.verify(tokens, token, now=clock())
    other = Counting(settings)
    cache.verify(other, token, now=clock())
    assert other.calls == 1
    monkeypatch.setattr(VerifiedTokens, "MAX_AGE", 0.0)
    cache.verify(tokens, token, now=clock())
    assert tokens.calls == 2


def test_a_tampered_token_is_not_taken_for_a_remembered_one(
    tokens: Counting, clock: SteppingClock
) -> None:
    cache = VerifiedTokens()
    token = tokens.issue("user-1", "u@contoso.example", now=clock())
    cache.verify(tokens, token, now=clock())
    head, payload, signature = token.split(".")
    with pytest.raises(Unauthenticated):
        cache.verify(tokens, f"{head}.{payload}.{signature[:-4]}AAAA", now=clock())
