"""The second half of spec §2.2: the right to act on the resource itself.

Adding or removing a resource needs the catalog task (catalog owner or an admin) **and** one of
these: a directory role that covers the resource's kind, or ownership of the group or app, or
being a site administrator. Role-assignable groups need Global or Privileged Role Administrator.
"""

from __future__ import annotations

from enum import StrEnum

from remit.authz.actor import Actor
from remit.authz.roles import DirectoryRole, role_name
from remit.models.directory import Group


class ResourceKind(StrEnum):
    SECURITY_GROUP = "securityGroup"
    M365_GROUP = "microsoft365Group"
    ROLE_ASSIGNABLE_GROUP = "roleAssignableGroup"
    APPLICATION = "application"
    SITE = "site"


KIND_WORDS: dict[ResourceKind, str] = {
    ResourceKind.SECURITY_GROUP: "security groups",
    ResourceKind.M365_GROUP: "Microsoft 365 groups",
    ResourceKind.ROLE_ASSIGNABLE_GROUP: "role-assignable groups",
    ResourceKind.APPLICATION: "applications",
    ResourceKind.SITE: "SharePoint sites",
}

_ALL = frozenset(ResourceKind)
_GROUPS = frozenset({ResourceKind.SECURITY_GROUP, ResourceKind.M365_GROUP})

# Directory role → resource kinds it may add to a catalog it owns (spec §2.2 table).
RESOURCE_RIGHTS: dict[str, frozenset[ResourceKind]] = {
    DirectoryRole.GLOBAL_ADMINISTRATOR: _ALL,
    DirectoryRole.IDENTITY_GOVERNANCE_ADMINISTRATOR: frozenset({ResourceKind.APPLICATION}),
    DirectoryRole.USER_ADMINISTRATOR: _GROUPS | {ResourceKind.APPLICATION},
    DirectoryRole.GROUPS_ADMINISTRATOR: _GROUPS,
    DirectoryRole.INTUNE_ADMINISTRATOR: _GROUPS,
    DirectoryRole.EXCHANGE_ADMINISTRATOR: frozenset({ResourceKind.M365_GROUP}),
    DirectoryRole.SHAREPOINT_ADMINISTRATOR: frozenset({ResourceKind.M365_GROUP, ResourceKind.SITE}),
    DirectoryRole.APPLICATION_ADMINISTRATOR: frozenset({ResourceKind.APPLICATION}),
    DirectoryRole.CLOUD_APPLICATION_ADMINISTRATOR: frozenset({ResourceKind.APPLICATION}),
    # (impl, unclear in the spec) by analogy with Entra roles as resources.
    DirectoryRole.PRIVILEGED_ROLE_ADMINISTRATOR: frozenset({ResourceKind.ROLE_ASSIGNABLE_GROUP}),
}


def group_kind(group: Group) -> ResourceKind:
    if group.is_assignable_to_role:
        return ResourceKind.ROLE_ASSIGNABLE_GROUP
    if group.kind == "microsoft365":
        return ResourceKind.M365_GROUP
    return ResourceKind.SECURITY_GROUP


def has_resource_right(actor: Actor, kind: ResourceKind, *, is_owner: bool) -> bool:
    """``is_owner``: the actor owns the group/app, or administers the site."""
    if actor.is_system:
        return True
    if any(kind in RESOURCE_RIGHTS.get(r, frozenset()) for r in actor.directory_roles):
        return True
    # Ownership is enough for ordinary groups, apps and sites, never for role-assignable groups.
    return is_owner and kind is not ResourceKind.ROLE_ASSIGNABLE_GROUP


def resource_right_refusal(kind: ResourceKind, name: str, *, who: str = "you") -> str:
    """Why the actor (``who``) lacks the right of ``has_resource_right`` on the object ``name``."""
    you = who == "you"
    return f"{who} {'do' if you else 'does'} not have the right to manage {name}: " + (
        "only a Global or Privileged Role Administrator may add a role-assignable group"
        if kind is ResourceKind.ROLE_ASSIGNABLE_GROUP
        else f"{'you' if you else 'they'} must own it or hold an administrator role that covers it"
    )


def resource_right_reasons(
    actor: Actor, kind: ResourceKind, *, is_owner: bool, name: str
) -> list[str]:
    """The grounds on which ``has_resource_right`` allows (none: it refuses); ``name`` names
    the object with its kind ("group Legal")."""
    if actor.is_system:
        return ["the operator may add any resource"]
    reasons = [
        f"directory role {role_name(r)} covers {KIND_WORDS[kind]}"
        for r in sorted(actor.directory_roles)
        if kind in RESOURCE_RIGHTS.get(r, frozenset())
    ]
    if is_owner and kind is not ResourceKind.ROLE_ASSIGNABLE_GROUP:
        reasons.append(f"owner of {name}")
    return reasons
