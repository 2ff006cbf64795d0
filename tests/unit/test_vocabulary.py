"""The stored words: ``Word`` columns load members, bind any string, and ``HotSelect`` processes
a literal compared with one (an anonymous parameter)."""

from __future__ import annotations

from sqlalchemy import select

from remit.db import Database, HotSelect
from remit.models.catalogs import Catalog
from remit.models.vocabulary import Activity, CatalogState, RequestState
from tests.factories import Tenant


def test_a_word_column_loads_the_member_and_binds_any_string(db: Database, tenant: Tenant) -> None:
    catalog = tenant.create_catalog("mamta", "Marketing")
    with db.session() as s:
        state = s.execute(select(Catalog.state).where(Catalog.id == catalog)).scalar_one()
        assert state is CatalogState.PUBLISHED
        # A $filter may compare with a word that is none of the members: it finds nothing.
        assert s.execute(select(Catalog.id).where(Catalog.state == "bogus")).first() is None


def test_a_hot_select_binds_a_literal_word(db: Database, tenant: Tenant) -> None:
    catalog = tenant.create_catalog("mamta", "Marketing")
    hot = HotSelect(
        select(Catalog.id, Catalog.state).where(Catalog.state == CatalogState.PUBLISHED)
    )
    with db.read() as conn:
        rows = hot.rows(conn, {})
    assert (catalog, CatalogState.PUBLISHED) in [tuple(r) for r in rows]
    assert all(r[1] is CatalogState.PUBLISHED for r in rows)


def test_the_words_are_the_spellings_stored_and_shown() -> None:
    assert RequestState.PARTIALLY_DELIVERED == "partiallyDelivered"
    assert f"{RequestState.DELIVERING}" == "delivering"
    # Activities are hashed into the audit chain: each spelling is unique.
    assert len({a.value for a in Activity}) == len(Activity)
