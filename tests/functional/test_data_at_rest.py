"""Data at rest (issue #11): a private data directory, sealed webhook secrets, and integrity
errors that are a 409, never a 500.

Each test builds the app on a data directory of its own (under ``tmp_path``) with the session's
database (SQLite or PostgreSQL); the file modes of an SQLite database are checked on a file in
that directory whichever engine the session runs.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import structlog
from fastapi.testclient import TestClient
from sqlalchemy import insert, select, text, update
from sqlalchemy.orm import Session

from remit import bootstrap, datadir, sealing
from remit.app import create_app
from remit.authz.actor import system_actor
from remit.context import Ctx
from remit.db import Database
from remit.errors import Conflict
from remit.models.notify import CustomExtension
from remit.models.packages import AccessPackage
from remit.notify import config, email, sealed, webhooks
from remit.settings import Settings
from remit.tokens import TokenService
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant
from tests.peers import Receiver

SECRET = "at-rest-S3cret-never-stored-plain"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask() -> Iterator[None]:
    """The usual umask (022), which makes files 0644 unless remit says otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@dataclass
class Private:
    data_dir: Path
    settings: Settings
    tenant: Tenant


@pytest.fixture
def private(db: Database, clock: SteppingClock, tmp_path: Path, umask: None) -> Iterator[Private]:
    data_dir = tmp_path / "data"
    settings = Settings(
        data_dir=data_dir, database_url="unused", webhook_allowed_networks="127.0.0.0/8"
    )
    config.configure(settings)
    app = create_app(settings, db=db, clock=clock)
    with TestClient(app, base_url="http://remit.test") as client:
        yield Private(data_dir, settings, Tenant.build(db, client, clock))
    config.configure(None)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def extensions_path(catalog: str) -> str:
    return f"{EM}/catalogs/{catalog}/accessPackageCustomWorkflowExtensions"


def create_extension(t: Tenant, url: str, secret: str | None = SECRET) -> dict[str, Any]:
    """The created extension as the API shows it, with its ``catalog`` id added."""
    catalog = t.create_catalog("mamta", f"Hooks {uuid.uuid4().hex[:6]}")
    body: dict[str, Any] = {"displayName": "Ticketing", "endpointConfiguration": {"url": url}}
    if secret is not None:
        body["secret"] = secret
    r = t.post("mamta", extensions_path(catalog), body)
    assert r.status_code == 201, r.text
    return {**r.json(), "catalog": catalog}


def stored_secret(db: Database, ext_id: str) -> str:
    with db.read() as conn:
        return str(
            conn.execute(
                select(CustomExtension.secret).where(CustomExtension.id == ext_id)
            ).scalar_one()
        )


def deliver(db: Database, clock: SteppingClock, ext_id: str) -> None:
    """The ``notify.webhook`` job of one delivery to ``ext_id``, as the worker runs it."""
    payload = {
        "extension_id": ext_id,
        "stage": "assignmentRequestCreated",
        "delivery_id": str(uuid.uuid4()),
        "queued_at": clock().isoformat(),
        "body": {"hello": "receiver"},
    }
    with Session(db.engine) as s:  # reads only, as the worker runs a network job
        webhooks.deliver(Ctx(s, system_actor("test"), clock()), payload)


def signed_with(receiver: Receiver, secret: str) -> bool:
    hit = receiver.hits[-1]
    return webhooks.verify_signature(
        secret, hit.headers["X-Remit-Timestamp"], hit.body, hit.headers["X-Remit-Signature"]
    )


# ---------------------------------------------------------------- file modes


def test_a_new_data_directory_and_all_it_holds_are_private(
    private: Private, receiver: Receiver
) -> None:
    """Under umask 022: the data directory 0700; the signing key, the secrets key, the SQLite
    database with its -wal and -shm (made again after the last connection closed, too) 0600;
    the outbox 0700 and its messages 0600."""
    data = private.data_dir
    create_extension(private.tenant, receiver.url)  # the secrets key is made on first use
    lite = Database(f"sqlite:///{data / 'remit.db'}")
    for _ in range(2):  # the second time, SQLite makes -wal and -shm anew
        with lite.engine.begin() as conn:
            conn.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
            sidecars = [data / "remit.db-wal", data / "remit.db-shm"]
            assert all(p.exists() for p in sidecars)
            assert {p.name: oct(mode(p)) for p in sidecars} == {p.name: "0o600" for p in sidecars}
        lite.dispose()
        assert not (data / "remit.db-wal").exists()
        lite = Database(f"sqlite:///{data / 'remit.db'}")
    lite.dispose()
    message = EmailMessage()
    message["Message-ID"] = "<outbox-test@remit.invalid>"
    eml = email.write_outbox(data, message, datetime.now(UTC).isoformat())

    assert mode(data) == 0o700
    for name in ("signing-key.pem", "secrets.key", "remit.db"):
        assert oct(mode(data / name)) == "0o600", name
    assert mode(data / "outbox") == 0o700
    assert mode(eml) == 0o600


def test_looser_modes_found_at_start_are_tightened_with_a_warning(
    tmp_path: Path, umask: None
) -> None:
    """A data directory left 0755 with its files 0644 (an older remit, a restore, a hand-made
    copy): the next start (the token service, the database) tightens each and names it."""
    data = tmp_path / "old"
    settings = Settings(data_dir=data, database_url="unused")
    TokenService(settings)
    sealing.load_or_create(data)
    lite = Database(f"sqlite:///{data / 'remit.db'}")
    with lite.engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with lite.engine.connect() as conn:  # holds the -wal and -shm open
        conn.execute(text("SELECT count(*) FROM t"))
        (data / "outbox").mkdir()
        (data / "outbox" / "1-a.eml").write_bytes(b"Subject: hi\n\n")
        loose = [
            data / n
            for n in ("signing-key.pem", "secrets.key", "remit.db", "remit.db-wal", "remit.db-shm")
        ] + [data / "outbox" / "1-a.eml"]
        for path in loose:
            os.chmod(path, 0o644)
        os.chmod(data, 0o755)  # noqa: S103 - the looser mode under test
        os.chmod(data / "outbox", 0o755)  # noqa: S103 - the looser mode under test
        (data / "notes.txt").write_text("not remit's")
        os.chmod(data / "notes.txt", 0o644)

        with structlog.testing.capture_logs() as logs:
            TokenService(settings)
            Database(f"sqlite:///{data / 'remit.db'}").dispose()
        modes = {p.name: oct(mode(p)) for p in loose}  # while the -wal and -shm are there
    lite.dispose()

    assert mode(data) == 0o700
    assert mode(data / "outbox") == 0o700
    assert modes == {p.name: "0o600" for p in loose}
    assert mode(data / "notes.txt") == 0o644  # only what remit keeps there
    tightened = {e["path"] for e in logs if e["event"] == "datadir.tightened"}
    assert tightened == {str(p) for p in [data, data / "outbox", *loose]}
    assert {e["log_level"] for e in logs if e["event"] == "datadir.tightened"} == {"warning"}


# ---------------------------------------------------------------- sealed secrets


def database_bytes(db: Database) -> bytes:
    """The SQLite file and its WAL as they are on disk, read by a child process.

    Never by this one: closing a descriptor of the database file here would drop every POSIX
    lock this process holds on it through SQLite (sqlite.org/howtocorrupt.html, 2.2), and the
    next process to close its last connection would then take itself for the last one, fold
    the WAL into the file and delete it under this process's open connections, whose later
    writes no other process would ever see.
    """
    path = str(db.engine.url.database)
    read = (
        "import sys, pathlib; [sys.stdout.buffer.write(pathlib.Path(p).read_bytes()) "
        "for p in sys.argv[1:] if pathlib.Path(p).exists()]"
    )
    done = subprocess.run(
        [sys.executable, "-c", read, path, f"{path}-wal"], capture_output=True, check=True
    )
    return done.stdout


def test_webhook_secrets_are_sealed_at_rest_and_still_sign(
    private: Private, db: Database, clock: SteppingClock, receiver: Receiver
) -> None:
    """The row holds the secret sealed (not the secret, nor anything the API shows); a delivery
    is still signed with the secret itself; a rotated one likewise."""
    made = create_extension(private.tenant, receiver.url)
    stored = stored_secret(db, made["id"])
    assert stored.startswith(sealing.MARKER)
    assert SECRET not in stored
    if db.is_sqlite:
        assert SECRET.encode() not in database_bytes(db)
    deliver(db, clock, made["id"])
    assert signed_with(receiver, SECRET)

    rotated = SECRET + "-rotated"
    r = private.tenant.call(
        "mamta",
        "PATCH",
        f"{extensions_path(made['catalog'])}/{made['id']}",
        json={"secret": rotated},
    )
    assert r.status_code == 200, r.text
    assert rotated not in stored_secret(db, made["id"])
    deliver(db, clock, made["id"])
    assert signed_with(receiver, rotated)

    generated = create_extension(private.tenant, receiver.url, secret=None)
    assert generated["secret"] not in stored_secret(db, generated["id"])
    deliver(db, clock, generated["id"])
    assert signed_with(receiver, generated["secret"])


def test_plaintext_secrets_from_before_sealing_sign_and_are_sealed_in_place(
    private: Private, db: Database, clock: SteppingClock, receiver: Receiver
) -> None:
    made = create_extension(private.tenant, receiver.url)
    with db.write() as s:  # as remit stored it before sealing existed
        s.execute(
            update(CustomExtension).where(CustomExtension.id == made["id"]).values(secret=SECRET)
        )
    deliver(db, clock, made["id"])
    assert signed_with(receiver, SECRET)

    # Start-up (``remit serve``, ``remit db upgrade``) seals what it finds in plaintext.
    bootstrap.ensure_builtins(db, clock)
    with db.write() as s:
        assert sealed.seal_plaintext_secrets(s) == 0
    assert stored_secret(db, made["id"]).startswith(sealing.MARKER)
    deliver(db, clock, made["id"])
    assert signed_with(receiver, SECRET)


def test_a_sealed_secret_opens_only_for_its_extension_and_key(
    private: Private, db: Database, clock: SteppingClock, receiver: Receiver
) -> None:
    """Copied to another extension's row, a sealed secret does not open (and nothing is sent);
    nor does it under another data directory's key."""
    first = create_extension(private.tenant, receiver.url)
    second = create_extension(private.tenant, receiver.url, secret=SECRET + "-second")
    with db.write() as s:
        s.execute(
            update(CustomExtension)
            .where(CustomExtension.id == second["id"])
            .values(secret=stored_secret(db, first["id"]))
        )
    with pytest.raises(webhooks.WebhookFailed, match="does not open") as failed:
        deliver(db, clock, second["id"])
    assert SECRET not in str(failed.value)
    assert receiver.hits == []

    other = sealing.load_or_create(private.data_dir.parent / "elsewhere")
    with pytest.raises(sealing.Unreadable):
        other.open(
            stored_secret(db, first["id"]), context=f"custom_extensions.secret:{first['id']}"
        )


# ---------------------------------------------------------------- integrity errors


def test_an_integrity_error_in_a_write_is_a_conflict_without_a_traceback(db: Database) -> None:
    """An access package in a catalog that does not exist (what a delete racing a create leaves
    the database to refuse): a Conflict with a readable message, logged once as a warning."""
    now = datetime.now(UTC)
    with (
        structlog.testing.capture_logs() as logs,
        pytest.raises(Conflict) as refused,
        db.write() as s,
    ):
        s.add(
            AccessPackage(
                catalog_id=str(uuid.uuid4()),
                display_name="secret-project-name",
                created_at=now,
                modified_at=now,
            )
        )
    message = refused.value.message
    assert "removed" in message
    assert "INSERT" not in message
    assert "secret-project-name" not in message
    assert refused.value.__cause__ is None
    [event] = [e for e in logs if e["event"] == "db.integrity_conflict"]
    assert event["log_level"] == "warning"
    assert event["kind"] == "foreign key"
    assert "exc_info" not in event
    assert "secret-project-name" not in str(event)


def test_an_integrity_error_outside_a_write_is_a_graph_409(tenant: Tenant, db: Database) -> None:
    """Any integrity error that reaches the API, wherever it was raised, is a Graph-shaped 409
    and the connection stays usable."""
    app = tenant.client.app

    def clash() -> None:
        now = datetime.now(UTC)
        with db.engine.begin() as conn:  # not through Database.write()
            conn.execute(
                insert(AccessPackage).values(
                    id=str(uuid.uuid4()),
                    catalog_id=str(uuid.uuid4()),
                    display_name="x",
                    is_hidden=False,
                    created_at=now,
                    modified_at=now,
                )
            )

    app.add_api_route("/v1.0/remit/test-integrity", clash, methods=["POST"])  # type: ignore[attr-defined]
    with structlog.testing.capture_logs() as logs:
        r = tenant.post("admin", "/v1.0/remit/test-integrity")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "conflict"
    assert "INSERT" not in error["message"]
    assert [e["event"] for e in logs if e["log_level"] in ("error", "critical")] == []
    assert tenant.get("admin", "/v1.0/users").status_code == 200


def test_a_link_in_the_data_directory_is_not_followed(tmp_path: Path) -> None:
    """Tightening never changes a link's target: a file elsewhere that a link in the data
    directory points at keeps its mode; the data directory itself may be a link."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"not remit's")
    elsewhere.chmod(0o644)
    real = tmp_path / "real-data"
    real.mkdir(mode=0o755)
    real.chmod(0o755)
    data = tmp_path / "data"
    data.symlink_to(real)
    (real / "remit.db").symlink_to(elsewhere)
    datadir.private_data_dir(data)
    assert stat.S_IMODE(elsewhere.stat().st_mode) == 0o644
    assert stat.S_IMODE(real.stat().st_mode) == 0o700


def test_start_refuses_a_secrets_key_that_does_not_open_the_database(
    private: Private, db: Database, clock: SteppingClock, receiver: Receiver
) -> None:
    """A process whose data directory lacks the key, or holds another one, would make a key
    of its own and seal under it what the others cannot open: start-up refuses instead, in
    words, and makes no key."""
    create_extension(private.tenant, receiver.url)
    key = private.data_dir / sealing.KEY_FILE
    kept = key.read_bytes()
    bootstrap.ensure_builtins(db, clock)  # the right key: fine

    key.unlink()
    sealing._load_or_create.cache_clear()
    with pytest.raises(sealed.KeyMismatch, match="is missing"):
        bootstrap.ensure_builtins(db, clock)
    assert not key.exists()

    datadir.create_private(key, base64.urlsafe_b64encode(os.urandom(32)) + b"\n")
    sealing._load_or_create.cache_clear()
    with pytest.raises(sealed.KeyMismatch, match="does not open"):
        bootstrap.ensure_builtins(db, clock)

    key.unlink()
    datadir.create_private(key, kept)
    sealing._load_or_create.cache_clear()
    bootstrap.ensure_builtins(db, clock)
