"""Bringing a database to the current schema and creating the built-in rows."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from remit.authz.actor import system_actor
from remit.catalogs.operations import ensure_general_catalog
from remit.clock import Clock, utcnow
from remit.connectors import targets
from remit.context import Ctx
from remit.db import Database
from remit.notify import sealed

ROOT = Path(__file__).resolve().parent


def alembic_config(url: str) -> Config:
    """Alembic's config, found whether remit runs from a checkout or an installed wheel."""
    here = ROOT
    for candidate in (here.parent.parent, Path.cwd()):
        ini = candidate / "alembic.ini"
        if ini.exists():
            cfg = Config(str(ini))
            break
    else:
        raise RuntimeError("alembic.ini not found; run remit from its checkout")
    cfg.attributes["url"] = url
    return cfg


def upgrade(db: Database) -> None:
    # In this process's turn among writers (SQLite's queue, db.WriteQueue).
    with db.turn(), db.engine.begin() as conn:
        cfg = alembic_config(db.url)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    ensure_builtins(db)


def ensure_builtins(db: Database, clock: Clock = utcnow) -> None:
    with db.write() as session:
        ensure_general_catalog(Ctx(session, system_actor("bootstrap"), clock()))
        # The builtin delivery target (the migration seeds it; an emptied database lacks it).
        targets.ensure_builtin(session, clock())
        # The secrets key opens what is sealed; webhook secrets written before sealing existed
        # are sealed (decision 0019).
        sealed.check_key(session)
        sealed.seal_plaintext_secrets(session)
