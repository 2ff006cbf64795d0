"""P3: GET one catalog through HTTP with a bearer token, against a bare FastAPI endpoint.

Three uvicorn servers run side by side, each one worker on loopback with the same settings: a
bare FastAPI app whose async endpoint returns a constant, and remit on SQLite and on PostgreSQL
(the benchmark tenant of P2). A separate load-generator process drives each in turn with keep-alive
connections; the rounds interleave bare and remit so that each remit figure is divided by a bare
figure taken moments before. The caller is the P2 "delegate": a member user who reads the
catalog through a role held by a group nested three deep.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from datetime import UTC, datetime

from sqlalchemy import Connection, select

from bench import dataset, tenants
from bench.common import QUICK, Table, engines, median, progress, scale, scratch_dir
from bench.loadgen import run_job
from bench.server import BARE_PATH, Server

# QUALITY.md P3: the share of bare FastAPI's rate each engine must reach.
TARGETS = {"SQLite": 0.40, "PostgreSQL": 0.25}
CONNECTIONS = 8
EM = "/v1.0/identityGovernance/entitlementManagement"


def delegate_catalog(url: str) -> str:
    """A catalog the delegate reads only through its nested group's role."""
    from remit.authz.actor import load_actor
    from remit.db import Database
    from remit.models.authz import RoleAssignment

    db = Database(url)
    try:
        with db.read() as conn:
            found: str | None = conn.execute(
                select(RoleAssignment.catalog_id)
                .where(RoleAssignment.principal_id == dataset.DELEGATE_TOP)
                .order_by(RoleAssignment.catalog_id)
                .limit(1)
            ).scalar_one()
            assert found is not None
            # P3 is "as a user in nested groups": the read must rest on the group three deep.
            vias = {g.via_principal_id for g in load_actor(conn, dataset.DELEGATE).grants}
            if dataset.DELEGATE_TOP not in vias or found in _direct_catalogs(conn):
                raise RuntimeError("the P3 caller no longer reads through a nested group")
    finally:
        db.dispose()
    return found


def _direct_catalogs(conn: Connection) -> set[str | None]:
    """The catalogs the delegate holds a role on by itself or through its own groups."""
    from remit.models.authz import RoleAssignment

    holders = (dataset.DELEGATE, dataset.DELEGATE_MID, dataset.DELEGATE_LEAF)
    rows = conn.execute(
        select(RoleAssignment.catalog_id).where(RoleAssignment.principal_id.in_(holders))
    )
    return set(rows.scalars())


def serving_handler() -> str:
    """Which function serves GET catalogs/{id} in this checkout."""
    from remit.api.routes_catalogs import router

    for route in router.routes:
        if getattr(route, "path", "") == f"{EM}/catalogs/{{catalog_id}}" and "GET" in getattr(
            route, "methods", ()
        ):
            endpoint = route.endpoint  # type: ignore[attr-defined]
            return f"{endpoint.__module__}.{endpoint.__name__}"
    return "?"


def run() -> Table:
    from remit.settings import Settings
    from remit.tokens import TokenService

    rounds, warmup, seconds = scale(5, 1), (0.2 if QUICK else 1.0), scale(3, 1)
    table = Table(
        "P3 API read: GET /catalogs/{id} with a bearer token vs a bare FastAPI endpoint",
        f"uvicorn, 1 worker, loopback; {CONNECTIONS} keep-alive connections from a separate"
        f" process; {rounds} interleaved rounds of {seconds} s (after {warmup:g} s warm-up);"
        " ratio = remit / bare of the same round, median over rounds."
        f"\nthe route is served by {serving_handler()}",
    )
    measured = engines(table)
    urls = {engine: tenants.prepare(engine, tenants.spec()) for engine in measured}
    data_dir = scratch_dir("p3-keys")
    token = TokenService(Settings(data_dir=data_dir)).issue(
        dataset.DELEGATE, "delegate@contoso.example", now=datetime.now(UTC)
    )
    rates: dict[str, list[float]] = {"bare": [], **{e: [] for e in measured}}
    jobs = {"bare": {"paths": [BARE_PATH], "headers": {}}}
    for e in measured:
        path = f"{EM}/catalogs/{delegate_catalog(urls[e])}"
        jobs[e] = {"paths": [path], "headers": {"Authorization": f"Bearer {token}"}}
    try:
        with ExitStack() as stack:
            ports = {"bare": stack.enter_context(Server("bare")).port}
            for e in measured:
                ports[e] = stack.enter_context(Server("remit", data_dir, urls[e])).port
            for n in range(rounds):
                progress(f"P3 round {n + 1} of {rounds}")
                for name, port in ports.items():
                    result = run_job(
                        {
                            "mode": "rate",
                            "port": port,
                            "connections": CONNECTIONS,
                            "warmup": warmup,
                            "seconds": seconds,
                            **jobs[name],
                        }
                    )
                    if set(result["statuses"]) != {"200"}:
                        raise RuntimeError(f"{name}: unexpected statuses {result['statuses']}")
                    rates[name].append(result["rps"])
    finally:
        for engine in measured:
            tenants.cleanup(engine, urls[engine])
        shutil.rmtree(data_dir, ignore_errors=True)
    bare = median(rates["bare"])
    table.row("bare FastAPI, async endpoint returning a constant", f"{bare:,.0f} req/s")
    for engine in measured:
        ratio = median([r / b for r, b in zip(rates[engine], rates["bare"], strict=True)])
        table.row(f"remit GET catalog, {engine}", f"{median(rates[engine]):,.0f} req/s")
        table.row(
            f"remit / bare, {engine}",
            f"{ratio:.0%}",
            f"≥ {TARGETS[engine]:.0%} of bare",
            ratio >= TARGETS[engine],
        )
    return table
