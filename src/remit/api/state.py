"""What the app holds for its lifetime, built once in ``create_app`` (no import-time engines)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from remit.authz.actor import Actor, load_actor, load_actor_by_upn
from remit.clock import Clock
from remit.context import Ctx
from remit.db import Database, Reader
from remit.errors import Unauthenticated
from remit.settings import Settings
from remit.tokens import Identity, TokenService, Verified


class VerifiedTokens:
    """Bearer tokens this process has verified, by their exact text (see docs/decisions/0006).

    Verifying an RS256 token costs more than the rest of a single-object read, and a client sends
    the same token for its whole lifetime. Remembered is only what cannot change for the same
    text under the same ``TokenService``: that signature, algorithm, issuer, audience, subject
    and the bounds on its life passed. Its ``Lifetime`` (from ``exp``/``nbf``/``iat`` and the
    maximum age of an external token) is compared with the clock on every use (a token that fails
    is verified in full again, so the error is the verifier's own), and an entry is forgotten
    after ``MAX_AGE`` seconds so that a key withdrawn from an OIDC issuer's JWKS stops counting.
    Nothing about the user is cached: the actor is read from the database on every request.
    """

    MAX_AGE = 300.0
    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        # token -> (verifier, what it verified, monotonic time of verification)
        self._seen: dict[str, tuple[TokenService, Verified, float]] = {}
        self._lock = threading.Lock()

    def verify(self, tokens: TokenService, token: str, *, now: datetime) -> Identity:
        hit = self._seen.get(token)
        if hit is not None:
            verifier, found, verified_at = hit
            if verifier is tokens and time.monotonic() - verified_at < self.MAX_AGE:
                try:
                    found.lifetime.check(now)
                except Unauthenticated:
                    pass  # verified in full below, for the verifier's own error
                else:
                    return found.identity
        found = tokens.verified(token, now=now)  # raises unless the token is good right now
        with self._lock:
            if len(self._seen) >= self.MAX_ENTRIES:
                self._seen.clear()
            self._seen[token] = (tokens, found, time.monotonic())
        return found.identity


@dataclass
class AppState:
    settings: Settings
    db: Database
    tokens: TokenService
    clock: Clock
    verified: VerifiedTokens = field(default_factory=VerifiedTokens)


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.remit
    return state


_bearer = HTTPBearer(auto_error=False, description="a remit or OIDC access token")


# The scope["state"] key under which the edge (api/edge.py) leaves the identity it verified.
VERIFIED = "identity"


async def identity(request: Request) -> Identity:
    """FastAPI dependency: the verified token's identity, or 401 (Graph JSON).

    The edge has verified the token before the body was read and left the identity in the
    scope; the token is verified here only when the edge did not (a public path).
    """
    found: Identity | None = request.scope.get("state", {}).get(VERIFIED)
    if found is not None:
        return found
    creds: HTTPAuthorizationCredentials | None = await _bearer(request)
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthenticated("a bearer token is required")
    state = app_state(request)
    found = state.verified.verify(state.tokens, creds.credentials, now=state.clock())
    request.state.identity = found
    return found


def actor_for(
    conn: Reader,
    ident: Identity,
    *,
    now: datetime,
    catalog_id: str | None = None,
) -> Actor:
    """The caller as the database says now, in one round trip, by object id or by UPN.

    With ``catalog_id``, only the grants that can matter on that catalog are loaded (see
    ``load_actor``): for a hot read that decides about one catalog only.
    """
    if ident.by_upn:
        return load_actor_by_upn(conn, ident.subject, catalog_id=catalog_id, now=now)
    return load_actor(conn, ident.subject, catalog_id=catalog_id, now=now)


@contextmanager
def operation(request: Request, ident: Identity, *, write: bool) -> Iterator[Ctx]:
    """One unit of work for one API call: the actor is resolved inside the same transaction."""
    state = app_state(request)
    now = state.clock()
    if write:
        with state.db.write() as session:
            # Nothing is pending yet, so the actor's statement may skip the session's autoflush
            # and run straight on its connection (a user may hold thousands of grants).
            yield Ctx(session, actor_for(session.connection(), ident, now=now), now)
    else:
        with state.db.session() as session:
            yield Ctx(session, actor_for(session.connection(), ident, now=now), now)
