"""Test harness: a real database (SQLite file, or PostgreSQL when REMIT_TEST_DATABASE_URL says
so), migrated once per session with Alembic and emptied between tests; the app over real HTTP
through the ASGI transport; an injectable clock; tokens for any user."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from remit import bootstrap
from remit.app import create_app
from remit.db import Database
from remit.models import Base
from remit.notify import config
from remit.settings import Settings
from tests.factories import Tenant, upn

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


class SteppingClock:
    """Real time at the start of a test, then only moved by the test."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def database_url(tmp: Path) -> str:
    url = os.environ.get("REMIT_TEST_DATABASE_URL", "")
    if url in ("postgres", "postgresql"):
        return PG_DEFAULT
    return url or f"sqlite:///{tmp / 'remit-test.db'}"


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("remit")


@pytest.fixture(scope="session")
def migrated_db(session_dir: Path) -> Iterator[Database]:
    url = database_url(session_dir)
    schema = None
    if url.startswith("postgresql"):
        # A schema of its own per test session, so concurrent runs never share tables.
        schema = f"remit_test_{os.getpid()}"
        admin = Database(url)
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        admin.dispose()
        url += ("&" if "?" in url else "?") + f"options=-csearch_path%3D{schema}"
    db = Database(url)
    bootstrap.upgrade(db)
    yield db
    db.dispose()
    if schema:
        admin = Database(database_url(session_dir))
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


def empty(db: Database) -> None:
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    # DELETE, children first: on tables this small it is ten times faster than TRUNCATE on
    # PostgreSQL, and it is what SQLite has.
    with db.engine.begin() as conn:
        for name in tables:
            conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - our own table names


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def db(migrated_db: Database, clock: SteppingClock) -> Database:
    empty(migrated_db)
    bootstrap.ensure_builtins(migrated_db, clock)
    return migrated_db


@pytest.fixture
def settings(session_dir: Path) -> Iterator[Settings]:
    # Webhook receivers in tests listen on loopback, which remit refuses unless allowed.
    found = Settings(
        data_dir=session_dir / "data",
        database_url="unused",
        page_size=100,
        webhook_allowed_networks="127.0.0.0/8",
    )
    # Notifications go where this test's settings say (the outbox under its data dir), never
    # to whatever the environment of the test run names.
    config.configure(found)
    yield found
    config.configure(None)


@pytest.fixture
def app_client(db: Database, settings: Settings, clock: SteppingClock) -> Iterator[TestClient]:
    app = create_app(settings, db=db, clock=clock)
    with TestClient(app, base_url="http://remit.test") as client:
        yield client


@pytest.fixture
def tenant(db: Database, app_client: TestClient, clock: SteppingClock) -> Tenant:
    """The demo personas and directory, plus helpers to call the API as any of them."""
    return Tenant.build(db, app_client, clock)


CliRun = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def cli(db: Database, settings: Settings) -> CliRun:
    """``remit`` as an operator runs it: a real process on the test database and data directory
    (so the tenant's keys), as the operator or ``as_`` a user; a wide terminal for tables."""
    env = {
        **os.environ,
        "REMIT_DATABASE_URL": db.url,
        "REMIT_DATA_DIR": str(settings.data_dir),
        "COLUMNS": "200",
    }

    def run(*args: str, as_: str | None = None) -> subprocess.CompletedProcess[str]:
        prefix = ["--as", upn(as_)] if as_ else []
        return subprocess.run(
            [sys.executable, "-m", "remit", *prefix, *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    return run
