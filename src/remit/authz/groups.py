"""Who may change a group's members or owners (decision 0022).

Two rules, both needed:

1. **The right on the group**: a groups administrator (``Task.GROUPS_MANAGE``) or an owner of the
   group; a role-assignable group needs a role administrator instead (its membership confers
   directory roles), whoever owns it.
2. **The right to assign what the group holds**: a group's members hold every role assigned to
   the group and to every group it is nested in, so changing its members or owners is assigning
   those roles. For each such role the actor needs the right to assign it, exactly as if they
   assigned it to someone directly (:func:`remit.authz.decide.may_assign`): a catalog creator is
   an administrator's to give, a catalog role that catalog's owners' (or an administrator's), a
   directory role a role administrator's (a Global Administrator's for Global Administrator).

A catalog's access packages change the members and owners of the groups in it, so adding a
group to a catalog as a resource needs rule 2 as well (rule 1 is there spec §2.2's right on the
directory object): :func:`authorize_group_onboarding`.

Removing a member or an owner needs the same rights as adding one, as deleting a role
assignment needs the right to create it: whoever cannot grant a delegation cannot revoke it
either. Delivery of an access package (the builtin connector) writes the membership rows itself
as a system action, approved under the package's policy; this rule is for people changing groups.

:func:`decide_group_change` and :func:`decide_group_onboarding` are pure and share rule 2: the
operations call them through ``authorize_*``, and ``explain`` renders the same decisions with
their reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from remit.authz.actor import Actor, Grant, transitive_group_ids
from remit.authz.decide import Explanation, can, explain, may_assign
from remit.authz.relations import owns_group
from remit.authz.resources import group_kind, resource_right_reasons, resource_right_refusal
from remit.authz.roles import role_name
from remit.authz.tasks import Task
from remit.errors import Forbidden
from remit.models.authz import RoleAssignment
from remit.models.catalogs import Catalog
from remit.models.directory import DirectoryRoleAssignment, Group


class GroupPart(StrEnum):
    """What of a group is being changed (the words of the messages)."""

    MEMBERS = "members"
    OWNERS = "owners"
    BOTH = "members or owners"


class HeldRole(NamedTuple):
    """A role that the members of a group hold through it."""

    role_id: str
    source: str  # "directoryRole" | "entitlementManagement"
    catalog_id: str | None  # None: the tenant (tenant-wide EM roles and directory roles)
    via_group_id: str  # the group the role is assigned to: this group, or one it is nested in


@dataclass(frozen=True)
class GroupFacts:
    """What the decision needs to know about a group and the actor, read in one place."""

    group_id: str
    group_name: str
    role_assignable: bool
    actor_owns: bool
    held: tuple[HeldRole, ...]
    # Display names of the groups and catalogs named in ``held``; a catalog the viewer may not
    # read is left out, and its name is not told.
    names: dict[str, str]


def roles_held_by_group(session: Session, group_id: str, now: datetime) -> tuple[HeldRole, ...]:
    """Every role the group's members hold through it: the assignments to the group and to the
    groups it is in, directly or through nesting (memberships that count at ``now``)."""
    holders = {group_id} | transitive_group_ids(session, group_id, now=now)
    held = [
        HeldRole(role, "directoryRole", None, principal)
        for principal, role in session.execute(
            select(
                DirectoryRoleAssignment.principal_id, DirectoryRoleAssignment.role_definition_id
            ).where(DirectoryRoleAssignment.principal_id.in_(holders))
        ).all()
    ]
    held += [
        HeldRole(role, "entitlementManagement", catalog, principal)
        for principal, role, catalog in session.execute(
            select(
                RoleAssignment.principal_id,
                RoleAssignment.role_definition_id,
                RoleAssignment.catalog_id,
            ).where(RoleAssignment.principal_id.in_(holders))
        ).all()
    ]
    return tuple(
        sorted(held, key=lambda h: (h.source, h.role_id, h.catalog_id or "", h.via_group_id))
    )


def group_facts(
    session: Session,
    group: Group,
    actor: Actor,
    now: datetime,
    *,
    viewer: Actor | None = None,
    names: dict[str, str] | None = None,
) -> GroupFacts:
    """The facts about ``group`` for a decision about ``actor``; catalogs are named as
    ``viewer`` (default: the actor) may read them; ``names`` adds names already known (the
    actor's groups, for the reasons of an explanation)."""
    viewer = viewer or actor
    held = roles_held_by_group(session, group.id, now)
    names = {**(names or {}), group.id: group.display_name}
    via = {h.via_group_id for h in held} - {group.id}
    if via:
        names.update(
            session.execute(select(Group.id, Group.display_name).where(Group.id.in_(via))).all()
        )
    catalogs = {
        h.catalog_id
        for h in held
        if h.catalog_id is not None and can(viewer, Task.CATALOG_READ, h.catalog_id)
    }
    if catalogs:
        names.update(
            session.execute(
                select(Catalog.id, Catalog.display_name).where(Catalog.id.in_(catalogs))
            ).all()
        )
    return GroupFacts(
        group_id=group.id,
        group_name=group.display_name,
        role_assignable=group.is_assignable_to_role,
        actor_owns=not actor.is_system and owns_group(session, group.id, actor.user_id, now),
        held=held,
        names=names,
    )


def held_role_words(held: HeldRole, facts: GroupFacts) -> str:
    """E.g. "Catalog owner (catalog Marketing, through group Outer)"."""
    if held.source == "directoryRole":
        where = "directory role"
    elif held.catalog_id is None:
        where = "tenant"
    elif held.catalog_id in facts.names:
        where = f"catalog {facts.names[held.catalog_id]}"
    else:
        where = "a catalog"
    if held.via_group_id != facts.group_id:
        where += f", through group {facts.names.get(held.via_group_id, held.via_group_id)}"
    return f"{role_name(held.role_id)} ({where})"


class GroupDecision(NamedTuple):
    allowed: bool
    reasons: tuple[str, ...]  # why, allowed or not; when refused, the refusals come first
    grants: tuple[Grant, ...]  # the actor's grants that give the right on the group, if any


def decide_group_change(
    actor: Actor, facts: GroupFacts, part: GroupPart, *, who: str = "you"
) -> GroupDecision:
    """May ``actor`` change the ``part`` of the group? ``who`` names the actor in the reasons."""
    name = facts.group_name
    refused: list[str] = []
    reasons: list[str] = []
    grants: tuple[Grant, ...] = ()
    # 1. The right on the group itself.
    if actor.is_system:
        reasons.append("the operator may change any group")
    elif facts.role_assignable:
        right = explain(actor, Task.DIRECTORY_ROLES_MANAGE, None, facts.names)
        if right.allowed:
            reasons.append(f"{name} is role-assignable, and {who} may assign directory roles:")
            reasons += right.reasons
            grants = right.grants
        else:
            refused.append(
                f"{name} is role-assignable: only a Privileged Role Administrator or a Global "
                f"Administrator may change its {part}"
            )
    else:
        right = explain(actor, Task.GROUPS_MANAGE, None, facts.names)
        if right.allowed:
            reasons += right.reasons
            grants = right.grants
        elif facts.actor_owns:
            reasons.append(f"owner of group {name}")
        else:
            refused.append(
                f"only the owners of {name} or a groups administrator may change its {part}"
            )
    # 2. The right to assign each role the group's members hold through it.
    held_refused, held_reasons = _decide_held_roles(
        actor, facts, f"change the {part} of {name}", who
    )
    refused += held_refused
    reasons += held_reasons
    return GroupDecision(not refused, (*refused, *reasons), grants if not refused else ())


def _decide_held_roles(
    actor: Actor, facts: GroupFacts, change: str, who: str
) -> tuple[list[str], list[str]]:
    """Rule 2 (module doc), for every path that changes the group's members: (refusals,
    reasons). ``change`` says what the actor would do, after "may not"."""
    name = facts.group_name
    denied = [h for h in facts.held if not may_assign(actor, h.role_id, h.catalog_id)]
    reasons = [
        f"{name} holds {held_role_words(h, facts)}, which {who} may assign"
        for h in facts.held
        if h not in denied
    ]
    refused = []
    if denied:
        roles = ", ".join(held_role_words(h, facts) for h in denied)
        refused.append(
            f"{who} may not {change} because {name} holds {roles} and "
            f"{who} may not assign {'it' if len(denied) == 1 else 'them'}"
        )
    if not facts.held:
        reasons.append(f"{name} holds no role, directly or through the groups it is in")
    return refused, reasons


def decide_group_onboarding(
    actor: Actor, facts: GroupFacts, catalog_name: str, *, who: str = "you"
) -> GroupDecision:
    """May ``actor`` put the group into catalog ``catalog_name`` as a resource, as far as what
    the group holds goes? The access packages of a catalog change the members and owners of its
    groups, so this is rule 2 of a change of members; the catalog's right and the right on the
    group (spec §2.2) are the resource request's own, and checked there (decision 0022)."""
    change = (
        f"add {facts.group_name} to catalog {catalog_name}, whose access packages would "
        "change its members,"
    )
    refused, reasons = _decide_held_roles(actor, facts, change, who)
    return GroupDecision(not refused, (*refused, *reasons), ())


def authorize_group_change(
    session: Session, actor: Actor, group: Group, part: GroupPart, now: datetime
) -> None:
    """Raise Forbidden unless ``actor`` may change the ``part`` of ``group`` (module doc)."""
    decision = decide_group_change(actor, group_facts(session, group, actor, now), part)
    if not decision.allowed:
        raise Forbidden(decision.reasons[0])


def authorize_group_onboarding(
    session: Session, actor: Actor, group: Group, catalog_name: str, now: datetime
) -> None:
    """Raise Forbidden unless ``actor`` may give what ``group`` holds (decide_group_onboarding)."""
    facts = group_facts(session, group, actor, now)
    decision = decide_group_onboarding(actor, facts, catalog_name)
    if not decision.allowed:
        raise Forbidden(decision.reasons[0])


def explain_group_change(
    session: Session,
    subject: Actor,
    group: Group,
    now: datetime,
    *,
    viewer: Actor,
    names: dict[str, str],
) -> Explanation:
    """``explain`` for changing the members or owners of ``group`` (the rule is the same);
    ``names`` are those of the subject's groups and catalogs, as ``explain`` takes them."""
    facts = group_facts(session, group, subject, now, viewer=viewer, names=names)
    decision = decide_group_change(subject, facts, GroupPart.BOTH, who=subject.name)
    return Explanation(
        decision.allowed, Task.GROUPS_MANAGE, None, decision.reasons, decision.grants, group.id
    )


def explain_group_onboarding(
    session: Session,
    subject: Actor,
    group: Group,
    catalog: Catalog,
    now: datetime,
    *,
    viewer: Actor,
    names: dict[str, str],
) -> Explanation:
    """``explain`` for adding ``group`` to ``catalog`` as a resource: the catalog's right, the
    right on the group (spec §2.2) and the roles the group holds, refusals first."""
    facts = group_facts(session, group, subject, now, viewer=viewer, names=names)
    task = Task.CATALOG_RESOURCES_MANAGE
    on_catalog = explain(
        subject, task, catalog.id, {**facts.names, catalog.id: catalog.display_name}
    )
    kind = group_kind(group)
    on_group = resource_right_reasons(
        subject, kind, is_owner=facts.actor_owns, name=f"group {group.display_name}"
    )
    held = decide_group_onboarding(subject, facts, catalog.display_name, who=subject.name)
    refused = [] if on_catalog.allowed else list(on_catalog.reasons)
    reasons = list(on_catalog.reasons) if on_catalog.allowed else []
    if on_group:
        reasons += on_group
    else:
        refused.append(resource_right_refusal(kind, group.display_name, who=subject.name))
    # The held roles give at most one refusal, first among their reasons.
    held_refusals = 0 if held.allowed else 1
    refused += held.reasons[:held_refusals]
    reasons += held.reasons[held_refusals:]
    allowed = not refused
    grants = on_catalog.grants if allowed else ()
    return Explanation(allowed, task, catalog.id, (*refused, *reasons), grants, group.id)
