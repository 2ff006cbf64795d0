"""The one-round-trip actor, its catalog-scoped form, and ``HotSelect``.

``load_actor`` runs one statement either through a session or, on a bare connection, straight
on the DBAPI cursor (``HotSelect``); both must build the same actor. An actor loaded for one
catalog must decide exactly as the full actor about that catalog and the tenant.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from sqlalchemy import bindparam, event, select
from sqlalchemy.orm import Session

from remit.authz.actor import load_actor, load_actor_by_upn
from remit.authz.decide import can
from remit.authz.roles import CATALOG_OWNER, CATALOG_READER, PACKAGE_MANAGER
from remit.authz.tasks import Task
from remit.catalogs.operations import GENERAL_CATALOG_ID
from remit.catalogs.reads import CatalogRow, read_catalog
from remit.db import Database, HotSelect
from remit.errors import NotFound, Unauthenticated
from remit.models.catalogs import Catalog
from tests.factories import PEOPLE, Tenant, upn


@pytest.fixture
def catalogs(tenant: Tenant) -> dict[str, str]:
    """Mamta's and Mark's catalogs; Lena manages packages in Mamta's, Finance reads Mark's."""
    ids = {
        "marketing": tenant.create_catalog("mamta", "Marketing"),
        "finance": tenant.create_catalog("mark", "Finance"),
    }
    for alias, principal, role, catalog in (
        ("mamta", "lena", PACKAGE_MANAGER.id, "marketing"),
        ("mamta", "omar", CATALOG_OWNER.id, "marketing"),
        ("mark", "finance", CATALOG_READER.id, "finance"),
    ):
        r = tenant.assign_role(alias, principal, role, ids[catalog])
        assert r.status_code == 201, r.text
    ids["general"] = GENERAL_CATALOG_ID
    return ids


def test_the_hot_path_and_a_session_build_the_same_actor(
    db: Database, tenant: Tenant, catalogs: dict[str, str]
) -> None:
    for alias in PEOPLE:
        with Session(db.engine) as session, db.read() as conn:
            through_session = load_actor(session, tenant.ids[alias])
            assert load_actor(conn, tenant.ids[alias]) == through_session
            assert load_actor_by_upn(conn, upn(alias).upper()) == through_session


def test_an_actor_for_one_catalog_decides_about_it_as_the_full_one(
    db: Database, tenant: Tenant, catalogs: dict[str, str]
) -> None:
    with db.read() as conn:
        for alias in PEOPLE:
            full = load_actor(conn, tenant.ids[alias])
            for catalog in catalogs.values():
                scoped = load_actor(conn, tenant.ids[alias], catalog_id=catalog)
                assert scoped.tenant_tasks == full.tenant_tasks
                assert scoped.group_ids == full.group_ids
                for task in Task:
                    assert can(scoped, task, catalog) == can(full, task, catalog), (alias, task)
                    assert can(scoped, task) == can(full, task)
                    # about any other catalog it can only be stricter
                    for other in set(catalogs.values()) - {catalog}:
                        assert not can(scoped, task, other) or can(full, task, other)


def test_a_disabled_or_unknown_user_has_no_actor(db: Database, tenant: Tenant) -> None:
    r = tenant.call(
        "admin", "PATCH", f"/v1.0/users/{tenant.ids['lena']}", {"accountEnabled": False}
    )
    assert r.status_code == 204, r.text
    with db.read() as conn:
        for who in (tenant.ids["lena"], "00000000-0000-4000-8000-00000000dead"):
            with pytest.raises(Unauthenticated):
                load_actor(conn, who)
        with pytest.raises(Unauthenticated):
            load_actor_by_upn(conn, upn("lena"))


def test_hot_select_returns_what_execute_returns(db: Database, catalogs: dict[str, str]) -> None:
    statement = select(*Catalog.__table__.c).order_by(Catalog.id)
    with db.read() as conn:
        expected = [tuple(r) for r in conn.execute(statement)]
        assert [tuple(r) for r in HotSelect(statement).rows(conn, {})] == expected
        assert all(r[7].tzinfo is not None for r in expected)  # created_at came back aware


def test_read_catalog_hides_what_the_actor_may_not_read(
    db: Database, tenant: Tenant, catalogs: dict[str, str]
) -> None:
    with db.read() as conn:
        lena = load_actor(conn, tenant.ids["lena"], catalog_id=catalogs["marketing"])
        row = read_catalog(conn, lena, catalogs["marketing"])
        assert isinstance(row, CatalogRow)
        assert row.display_name == "Marketing"
        for hidden in (catalogs["finance"], "no-such-catalog"):
            scoped = load_actor(conn, tenant.ids["lena"], catalog_id=hidden)
            with pytest.raises(NotFound):
                read_catalog(conn, scoped, hidden)


def test_statement_events_and_echo_see_a_hot_select(
    db: Database, tenant: Tenant, catalogs: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Tracing and ``echo`` see every statement, the prebuilt ones included (issue #12)."""
    seen: list[tuple[str, str]] = []

    def before(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool):  # type: ignore[no-untyped-def]
        context.traced = True  # a tracer keeps its span on the context
        seen.append(("before", statement))

    def after(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool):  # type: ignore[no-untyped-def]
        assert context.traced
        seen.append(("after", statement))

    statement = select(Catalog.id).where(Catalog.id == bindparam("catalog_id"))
    hot = HotSelect(statement)
    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    try:
        with db.read() as conn:
            assert hot.rows(conn, {"catalog_id": catalogs["marketing"]}) == [
                (catalogs["marketing"],)
            ]
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)
    assert [when for when, sql in seen if "FROM catalogs" in sql] == ["before", "after"]

    db.engine.echo = True
    try:
        with (
            caplog.at_level(logging.INFO, logger="sqlalchemy.engine.Engine"),
            db.read() as conn,
        ):
            hot.rows(conn, {"catalog_id": catalogs["marketing"]})
    finally:
        db.engine.echo = False
    assert any("FROM catalogs" in r.getMessage() for r in caplog.records)
