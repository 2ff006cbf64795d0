"""SQL filters for "what can this actor see". Lists never load what they then throw away."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, select, true
from sqlalchemy.orm import QueryableAttribute

from remit.authz.actor import Actor
from remit.authz.roles import catalog_roles_granting
from remit.authz.tasks import Task
from remit.models.authz import RoleAssignment


def catalogs_with_task(actor: Actor, task: Task) -> Select[str | None] | None:
    """A sub-select of the catalog ids on which ``actor`` holds ``task``; None means all of them."""
    if task in actor.tenant_tasks:
        return None
    # DISTINCT changes nothing for ``IN`` but keeps PostgreSQL from a merge semi-join that walks
    # the whole catalog index of em_role_assignments on every keyset page after the first
    # (~40 ms per page for a reader of 2,500 of 100,000 catalogs, ~2 ms with it; see bench P2).
    return (
        select(RoleAssignment.catalog_id)
        .where(
            RoleAssignment.principal_id.in_(actor.principal_ids),
            RoleAssignment.role_definition_id.in_(catalog_roles_granting(task)),
        )
        .distinct()
    )


def catalog_filter(
    actor: Actor, task: Task, column: ColumnElement[str] | QueryableAttribute[str]
) -> ColumnElement[bool]:
    """A WHERE clause restricting ``column`` (a catalog id) to catalogs with ``task``."""
    ids = catalogs_with_task(actor, task)
    return true() if ids is None else column.in_(ids)
