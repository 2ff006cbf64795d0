"""Hot reads: served on the event loop with SQLAlchemy Core, without the threadpool or the ORM.

A plain ``def`` endpoint pays a threadpool hop each way, and on a busy two-core machine each hop
waits for the scheduler; an ORM session per request costs more than the read itself. The reads
here run on one connection in one transaction: the actor in one round trip (only the grants
that can matter for the object asked about), then the object through the same read rule as the
ORM operation. On SQLite the work is a few tens of microseconds of local I/O and runs inline
on the event loop; on PostgreSQL, where each round trip waits on the network, it runs in the
threadpool so the loop keeps serving other requests meanwhile. See docs/decisions/0005.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from remit.api import shapes
from remit.api.collection import QueryOptions, check_expand, entity, single_options
from remit.api.state import AppState, actor_for, app_state, identity
from remit.catalogs.reads import read_catalog
from remit.db import Reader
from remit.models.catalogs import Catalog
from remit.packages.queries import packages_in_catalog_on
from remit.tokens import Identity

T = TypeVar("T")
CATALOGS = "identityGovernance/entitlementManagement/catalogs"


async def read(request: Request, work: Callable[[AppState, Reader], T]) -> T:
    """Run ``work`` in one read transaction: inline on SQLite, in the threadpool otherwise."""
    state = app_state(request)
    if state.db.is_sqlite:
        return _in_transaction(state, work)
    return await run_in_threadpool(_in_transaction, state, work)


def _in_transaction(state: AppState, work: Callable[[AppState, Reader], T]) -> T:
    with state.db.read_latest() as conn:
        return work(state, conn)


# ``GET .../catalogs/{id}``: what ``routes_catalogs.get_catalog`` answered, on the fast path.
# (No docstring: FastAPI would publish it as the operation's description.) ``$select`` and
# ``$expand`` are read here and documented by ``SINGLE_READ``: FastAPI's per-request parameter
# machinery costs more than the database work of this read.
async def get_catalog(
    request: Request, catalog_id: str, ident: Identity = Depends(identity)
) -> dict[str, Any]:
    q = options(request)

    def work(state: AppState, conn: Reader) -> dict[str, Any]:
        return _catalog_item(state, conn, ident, catalog_id, q)

    return entity(request, CATALOGS, await read(request, work), q)


def options(request: Request) -> QueryOptions:
    """``$select``/``$expand`` of a single-object GET, parsed as ``single_options`` does."""
    params = request.query_params
    return single_options(params.get("$select"), params.get("$expand"))


def _query_parameter(name: str) -> dict[str, Any]:
    schema = {"anyOf": [{"type": "string"}, {"type": "null"}], "title": name.title()}
    return {"name": name, "in": "query", "required": False, "schema": schema}


# Route options for a fast single-object read: its query parameters in the OpenAPI document.
SINGLE_READ: dict[str, Any] = {
    "openapi_extra": {"parameters": [_query_parameter("$select"), _query_parameter("$expand")]}
}


def _catalog_item(
    state: AppState, conn: Reader, ident: Identity, catalog_id: str, q: QueryOptions
) -> dict[str, Any]:
    actor = actor_for(conn, ident, catalog_id=catalog_id, now=state.clock())
    # A Core row has the attributes the shape reads from the ORM object.
    item = shapes.catalog(cast(Catalog, read_catalog(conn, actor, catalog_id)))
    check_expand(q, ("accessPackages",))  # after the read, as the ORM route: 404 comes first
    if "accessPackages" in q.expand:
        # Rare: the packages' own visibility rule, through the ORM on the same connection.
        packages = packages_in_catalog_on(conn, actor, catalog_id)
        item["accessPackages"] = [shapes.access_package(p) for p in packages]
    return item
