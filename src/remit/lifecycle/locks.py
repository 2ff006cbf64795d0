"""One lock per subject, taken first by every lifecycle change on PostgreSQL.

A change to a user's access touches several kinds of rows: the request, its stages, the user's
assignments (whose delivery states move together), the grant rows of the roles, the catalog's
jobs. Operations reach them in different orders (an approval starts from the request, the
delivery worker from the grants, the expiry sweep from the assignment), and two of them working
on the same user at once could wait on each other. A transaction-scoped advisory lock on the
subject, taken before any row, makes them queue instead: one change per subject at a time.
Transactions that touch several subjects take their locks in sorted order, so they cannot wait
on each other in a cycle either. SQLite serialises every write already; there this is a no-op.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import func, select, text

from remit.context import Ctx

# The keys in order (the subquery's ORDER BY), each lock taken as its row reaches the aggregate.
_LOCK_ALL = text(
    "SELECT count(pg_advisory_xact_lock(hashtextextended('remit-subject:' || k, 0)))"
    " FROM (SELECT k FROM json_array_elements_text(CAST(:keys AS json)) WITH ORDINALITY AS t(k, n)"
    " ORDER BY n) s"
)


def lock_subjects(ctx: Ctx, keys: Iterable[str | None]) -> None:
    """Hold the lock of each subject (a user id, or an email for a not-yet-created guest)
    until the transaction ends, taken in sorted order; many in one round trip. Keys already
    held are taken again at no cost."""
    wanted = sorted({k.lower() for k in keys if k})
    if not wanted or ctx.session.get_bind().dialect.name != "postgresql":
        return
    if len(wanted) == 1:
        ctx.session.execute(
            select(
                func.pg_advisory_xact_lock(func.hashtextextended(f"remit-subject:{wanted[0]}", 0))
            )
        )
        return
    ctx.session.execute(_LOCK_ALL, {"keys": json.dumps(wanted)})
