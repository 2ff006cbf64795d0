"""What the app holds for its lifetime, built once in ``create_app`` (no import-time engines)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.authz.actor import Actor, load_actor
from remit.clock import Clock
from remit.context import Ctx
from remit.db import Database
from remit.directory.models import User
from remit.errors import Unauthenticated
from remit.settings import Settings
from remit.tokens import Identity, TokenService


@dataclass
class AppState:
    settings: Settings
    db: Database
    tokens: TokenService
    clock: Clock


def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.remit
    return state


_bearer = HTTPBearer(auto_error=False, description="a remit or OIDC access token")


async def identity(request: Request) -> Identity:
    """FastAPI dependency: the verified token's identity, or 401 (Graph JSON)."""
    creds: HTTPAuthorizationCredentials | None = await _bearer(request)
    if creds is None or creds.scheme.lower() != "bearer":
        raise Unauthenticated("a bearer token is required")
    state = app_state(request)
    found = state.tokens.verify(creds.credentials, now=state.clock())
    request.state.identity = found
    return found


def resolve_user_id(session: Session, ident: Identity) -> str:
    if not ident.by_upn:
        return ident.subject
    user_id = session.execute(
        select(User.id).where(User.upn_key == ident.subject.lower())
    ).scalar_one_or_none()
    if user_id is None:
        raise Unauthenticated("the user is unknown or disabled")
    return user_id


def actor_for(session: Session, ident: Identity) -> Actor:
    return load_actor(session, resolve_user_id(session, ident))


@contextmanager
def operation(request: Request, ident: Identity, *, write: bool) -> Iterator[Ctx]:
    """One unit of work for one API call: the actor is resolved inside the same transaction."""
    state = app_state(request)
    if write:
        with state.db.write() as session:
            yield Ctx(session, actor_for(session, ident), state.clock())
    else:
        with Session(state.db.engine) as session:
            yield Ctx(session, actor_for(session, ident), state.clock())
