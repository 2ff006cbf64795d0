"""The raw engine's commit rates, measured in the same run as a benchmark that quotes them.

SQLite in WAL with remit's pragmas through the standard library's driver; PostgreSQL through
psycopg with synchronous commit: transactions of one INSERT per second, over ``RAW_SECONDS``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import QUICK
from remit.db import SQLITE_PRAGMAS

RAW_SECONDS = 0.2 if QUICK else 1.0


def raw_sqlite(path: Path) -> float:
    """INSERT + commit per second on SQLite."""
    conn = sqlite3.connect(path, isolation_level=None)
    for pragma in SQLITE_PRAGMAS:
        conn.execute(f"PRAGMA {pragma}")
    conn.execute("CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)")

    def single(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO raw (v, n) VALUES (?, ?)", (f"v{i}", i))
        conn.execute("COMMIT")

    try:
        return _rate(single)
    finally:
        conn.close()


def raw_postgres(url: str) -> float:
    """The same through psycopg (synchronous commit)."""
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS raw (id SERIAL PRIMARY KEY, v TEXT, n INTEGER)")
        conn.commit()

        def single(i: int) -> None:
            conn.execute("INSERT INTO raw (v, n) VALUES (%s, %s)", (f"v{i}", i))
            conn.commit()

        return _rate(single)


def _rate(fn: Callable[[int], None]) -> float:
    for i in range(50):  # warm-up
        fn(i)
    count, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < RAW_SECONDS:
        for i in range(50):
            fn(count + i)
        count += 50
    return count / elapsed
