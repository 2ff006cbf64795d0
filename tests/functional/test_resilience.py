"""A database restart costs one call a 503 with Retry-After, not a 500; the next call works."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from remit.db import Database
from tests.conftest import PG_DEFAULT
from tests.factories import EM, Tenant


def test_lost_connection_is_a_503_then_recovers(tenant: Tenant, db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("SQLite has no server connection to lose")
    db.engine.dispose()
    with db.engine.connect() as conn:  # the pool now holds exactly this connection
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    killer = Database(PG_DEFAULT)
    with killer.engine.begin() as conn:
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    killer.dispose()

    lost = tenant.get("hana", f"{EM}/catalogs")
    assert lost.status_code == 503, lost.text
    assert lost.headers["Retry-After"] == "1"
    assert lost.json()["error"]["code"] == "serviceNotAvailable"
    assert tenant.get("hana", f"{EM}/catalogs").status_code == 200
