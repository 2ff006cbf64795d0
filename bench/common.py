"""Shared helpers: quick mode, timing, percentiles, result tables, PostgreSQL databases."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
PG_BENCH_DB = "remit_bench"
ROOT = Path(__file__).resolve().parent.parent


def python_path() -> str:
    """PYTHONPATH for the helper processes: the caller's (if any), then this checkout."""
    return os.pathsep.join(p for p in (os.environ.get("PYTHONPATH"), str(ROOT)) if p)


def scale(full: int, quick: int) -> int:
    return quick if QUICK else full


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sample."""
    ordered = sorted(values)
    rank = max(1, round(p / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def per_call_us(fn: Callable[[], object], calls: int, repeats: int) -> list[float]:
    """Mean µs per call of ``fn`` over ``calls`` calls, once per repetition (loop included)."""
    import time

    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter_ns() - start) / calls / 1000)
    return samples


@dataclass
class Table:
    """One benchmark's result table: a row per figure, with its target and PASS/MISS."""

    title: str
    note: str = ""
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)

    def row(self, what: str, figure: str, target: str = "", passed: bool | None = None) -> None:
        verdict = "" if passed is None else ("PASS" if passed else "MISS")
        self.rows.append((what, figure, target, verdict))

    def print(self) -> None:
        header = ("measure", "median", "target", "")
        widths = [max(len(r[i]) for r in [header, *self.rows]) for i in range(4)]
        line = "  ".join("-" * w for w in widths)
        out = [f"\n== {self.title}", *([self.note] if self.note else [])]
        out.append("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        out.append(line)
        for r in self.rows:
            out.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        if QUICK:
            out.append("(quick mode: tiny sizes, the figures say nothing about the targets)")
        print("\n".join(out), flush=True)


def progress(message: str) -> None:
    print(f"   .. {message}", file=sys.stderr, flush=True)


def scratch_dir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"remit-bench-{name}-"))


def cache_dir() -> Path:
    """Where loaded datasets are kept between runs (BENCH_CACHE_DIR, default ~/.cache)."""
    base = os.environ.get("BENCH_CACHE_DIR") or str(Path.home() / ".cache" / "remit-bench")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def pg_available() -> str | None:
    """None when PostgreSQL answers at BENCH_PG_URL, else why not."""
    from sqlalchemy import create_engine, text

    try:
        engine = create_engine(PG_SERVER)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "not available"
        return str(exc).splitlines()[0]
    return None


def engines(table: Table) -> list[str]:
    """The engines to measure: SQLite, and PostgreSQL when it answers (else a SKIPPED row)."""
    found = ["SQLite"]
    why_not = pg_available()
    if why_not is None:
        found.append("PostgreSQL")
    else:
        table.row("PostgreSQL", "SKIPPED", why_not)
    return found


def pg_database(name: str, *, recreate: bool) -> str:
    """The URL of database ``name`` on the bench server, created (or re-created) as asked."""
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
        if exists and recreate:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        if recreate or not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return PG_SERVER.rsplit("/", 1)[0] + "/" + name


def pg_drop(name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
