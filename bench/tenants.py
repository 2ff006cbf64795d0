"""The benchmark tenant on each engine: loaded once, kept and reused in full mode.

Full mode keeps the SQLite file in BENCH_CACHE_DIR and the PostgreSQL database
``remit_bench_<fingerprint>``; a tenant of other sizes (or from an older loader or migration)
is deleted. Quick mode loads a tiny tenant into scratch space and ``cleanup`` deletes it.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from bench import dataset
from bench.common import (
    PG_BENCH_DB,
    QUICK,
    cache_dir,
    pg_database,
    pg_drop,
    progress,
    scale,
    scratch_dir,
)
from remit.db import Database

QUICK_PG = f"{PG_BENCH_DB}_quick"
# Only what this module creates: remit_bench_<fingerprint>, possibly half-loaded.
STALE = re.compile(rf"{PG_BENCH_DB}_[0-9a-f]{{10}}(_loading)?")


def spec() -> dataset.Spec:
    return dataset.Spec(
        catalogs=scale(100_000, 2_000),
        users=scale(100_000, 500),
        groups=scale(10_000, 200),
        wide_catalogs=scale(2_500, 250),
    )


def prepare(engine: str, s: dataset.Spec) -> str:
    """The URL of a database holding tenant ``s`` on ``engine`` ("SQLite" or "PostgreSQL")."""
    return _sqlite(s) if engine == "SQLite" else _postgres(s)


def cleanup(engine: str, url: str) -> None:
    """Delete a quick-mode tenant (full-mode tenants are kept for the next run)."""
    if not QUICK:
        return
    if engine == "PostgreSQL":
        pg_drop(QUICK_PG)
    else:
        shutil.rmtree(Path(url.removeprefix("sqlite:///")).parent, ignore_errors=True)


def _sqlite(s: dataset.Spec) -> str:
    if QUICK:
        url = f"sqlite:///{scratch_dir('tenant') / 'tenant.db'}"
        _fill(url, s)
        return url
    path = cache_dir() / f"tenant-{s.fingerprint()}.db"
    if not path.exists():
        for stale in cache_dir().glob("tenant-*.db*"):
            stale.unlink()
        loading = path.with_suffix(".loading")
        _fill(f"sqlite:///{loading}", s)
        loading.rename(path)
    return f"sqlite:///{path}"


def _postgres(s: dataset.Spec) -> str:
    if QUICK:
        url = pg_database(QUICK_PG, recreate=True)
        _fill(url, s)
        return url
    name = f"{PG_BENCH_DB}_{s.fingerprint()}"
    engine = create_engine(pg_database("postgres", recreate=False), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        found = {r[0] for r in conn.execute(text("SELECT datname FROM pg_database"))}
        for stale in sorted(found):
            if STALE.fullmatch(stale) and stale != name:
                pg_drop(stale)
        if name not in found:
            loading = f"{name}_loading"
            _fill(pg_database(loading, recreate=True), s)
            conn.execute(text(f'ALTER DATABASE "{loading}" RENAME TO "{name}"'))
    engine.dispose()
    return pg_database(name, recreate=False)


def _fill(url: str, s: dataset.Spec) -> None:
    db = Database(url)
    try:
        progress(f"loading the benchmark tenant into {url.rsplit('@', maxsplit=1)[-1]}")
        started = time.perf_counter()
        counts = dataset.load(db, s)
        progress(f"loaded in {time.perf_counter() - started:.0f} s: {dataset.describe(counts)}")
    finally:
        db.dispose()


def describe(url: str) -> str:
    db = Database(url)
    try:
        return dataset.describe(dataset.row_counts(db))
    finally:
        db.dispose()
