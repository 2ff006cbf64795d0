"""The decision, and its explanation.

``authorize`` is a set lookup (no I/O). ``explain`` walks the same grants to say which role
assignment, held directly or through which group, allows the task, or that none does.
"""

from __future__ import annotations

from dataclasses import dataclass

from remit.authz.actor import TENANT, Actor, Grant
from remit.authz.roles import (
    DIRECTORY_ROLE_TASKS,
    EM_ROLE_TASKS,
    EM_ROLES,
    DirectoryRole,
    assigning_task,
    role_name,
)
from remit.authz.tasks import CATALOG_TASKS, Task, phrase
from remit.errors import Forbidden


def can(actor: Actor, task: Task, catalog_id: str | None = None) -> bool:
    if task in actor.tenant_tasks:
        return True
    if catalog_id is None:
        return False
    tasks = actor.catalog_tasks.get(catalog_id)
    return tasks is not None and task in tasks


def can_anywhere(actor: Actor, task: Task) -> bool:
    """Whether ``actor`` may perform ``task`` on the tenant or on at least one catalog."""
    return can(actor, task) or any(task in tasks for tasks in actor.catalog_tasks.values())


def authorize(actor: Actor, task: Task, catalog_id: str | None = None) -> None:
    """Raise Forbidden unless ``actor`` may perform ``task`` (on ``catalog_id`` if given).

    Callers that must not reveal whether an object exists check visibility first and raise
    NotFound themselves; this function is for objects the actor is allowed to see.
    """
    if not can(actor, task, catalog_id):
        raise Forbidden(f"you are not allowed to {phrase(task)}")


def may_assign(actor: Actor, role_id: str, catalog_id: str | None = None) -> bool:
    """Whether ``actor`` may give (or take away) a role: an entitlement-management role on
    ``catalog_id`` (None: the tenant), or a directory role, which needs a role administrator,
    and a Global Administrator for the Global Administrator role (no amplification)."""
    em_role = EM_ROLES.get(role_id)
    if em_role is not None:
        return can(actor, assigning_task(em_role), catalog_id)
    if role_id == DirectoryRole.GLOBAL_ADMINISTRATOR:
        return actor.is_system or DirectoryRole.GLOBAL_ADMINISTRATOR in actor.directory_roles
    return can(actor, Task.DIRECTORY_ROLES_MANAGE)


@dataclass(frozen=True)
class Explanation:
    allowed: bool
    task: Task
    catalog_id: str | None
    reasons: tuple[str, ...]
    grants: tuple[Grant, ...]
    # Set when the question was about changing one group (``remit.authz.groups``).
    group_id: str | None = None


def _grant_tasks(grant: Grant) -> frozenset[Task]:
    if grant.source == "entitlementManagement":
        return EM_ROLE_TASKS.get(grant.role_id, frozenset())
    if grant.source == "builtin" and grant.role_id == "system":
        return frozenset(Task)
    return DIRECTORY_ROLE_TASKS.get(grant.role_id, frozenset())


def explain(
    actor: Actor, task: Task, catalog_id: str | None, names: dict[str, str] | None = None
) -> Explanation:
    """Which grants allow ``task`` on the scope; ``names`` maps principal ids to display names."""
    names = names or {}
    matching: list[Grant] = []
    for g in actor.grants:
        if task not in _grant_tasks(g):
            continue
        role = EM_ROLES.get(g.role_id)
        scoped = role is not None and role.catalog_scoped
        if scoped and (catalog_id is None or g.scope != catalog_id):
            continue
        if not scoped and task in CATALOG_TASKS and catalog_id is None and g.scope != TENANT:
            continue
        matching.append(g)
    reasons = tuple(_sentence(actor, g, names) for g in matching)
    if not matching:
        held = ", ".join(sorted({role_name(g.role_id) for g in actor.grants}))
        where = f"catalog {names.get(catalog_id, catalog_id)}" if catalog_id else "the tenant"
        reasons = (
            f"{actor.name} holds no role that allows them to {phrase(task)} (on {where}); "
            f"roles held: {held or 'none'}",
        )
    return Explanation(bool(matching), task, catalog_id, reasons, tuple(matching))


def _sentence(actor: Actor, g: Grant, names: dict[str, str]) -> str:
    via = (
        "directly"
        if g.via_principal_id == actor.user_id
        else f"through group {names.get(g.via_principal_id, g.via_principal_id)}"
    )
    scope = "the tenant" if g.scope == TENANT else f"catalog {names.get(g.scope, g.scope)}"
    kind = {"directoryRole": "directory role", "entitlementManagement": "role"}.get(
        g.source, "built-in right"
    )
    ref = f" (assignment {g.assignment_id})" if g.assignment_id else ""
    return f"{kind} {role_name(g.role_id)} on {scope}, held {via}{ref}"
