"""Sponsors of a connected organization (spec §7.3): internal sponsors are member users or
groups, external sponsors are guest users already invited. They can be chosen as approvers
(``orgs.sponsors_of`` resolves them for the lifecycle). Reading them is ``queries.sponsors``."""

from __future__ import annotations

from remit import validation
from remit.authz.decide import authorize
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.errors import Conflict, Invalid, NotFound
from remit.external.orgs import changed
from remit.external.queries import organization, sponsor_kind
from remit.models.directory import Group, User
from remit.models.external import ConnectedOrganizationSponsor
from remit.models.vocabulary import Activity


def _sponsor_type(ctx: Ctx, kind: str, principal_id: str) -> str:
    """internal: a member user or a group; external: a guest user (spec §7.3)."""
    usable = validation.usable_id(principal_id)
    user = ctx.session.get(User, principal_id) if usable else None
    if user is not None:
        if kind == "internal" and user.user_type != "Member":
            raise Invalid("an internal sponsor is a member user of this directory, or a group")
        if kind == "external" and user.user_type != "Guest":
            raise Invalid("an external sponsor is a guest user, already invited")
        return "user"
    if kind == "internal" and usable and ctx.session.get(Group, principal_id) is not None:
        return "group"
    raise Invalid(
        f"no {'user or group' if kind == 'internal' else 'guest user'} has id {principal_id}",
        target="@odata.id",
    )


# The activity of adding and of removing a sponsor, by kind.
_ACTIVITIES = {
    "internal": (Activity.ADD_INTERNAL_SPONSOR, Activity.REMOVE_INTERNAL_SPONSOR),
    "external": (Activity.ADD_EXTERNAL_SPONSOR, Activity.REMOVE_EXTERNAL_SPONSOR),
}


def add_sponsor(ctx: Ctx, organization_id: str, kind: str, principal_id: str) -> None:
    org = organization(ctx, organization_id)
    authorize(ctx.actor, Task.CONNECTED_ORGS_MANAGE)
    kind = sponsor_kind(kind)
    principal_type = _sponsor_type(ctx, kind, principal_id)
    if ctx.session.get(ConnectedOrganizationSponsor, (org.id, kind, principal_id)) is not None:
        raise Conflict(f"{principal_id} is already an {kind} sponsor of the organization")
    ctx.session.add(
        ConnectedOrganizationSponsor(
            organization_id=org.id,
            kind=kind,
            principal_id=principal_id,
            principal_type=principal_type,
        )
    )
    after = {"sponsor": principal_id, "sponsorType": principal_type, "kind": kind}
    changed(ctx, org, _ACTIVITIES[kind][0], operation_type="Add", after=after)


def remove_sponsor(ctx: Ctx, organization_id: str, kind: str, principal_id: str) -> None:
    org = organization(ctx, organization_id)
    authorize(ctx.actor, Task.CONNECTED_ORGS_MANAGE)
    kind = sponsor_kind(kind)
    row = (
        ctx.session.get(ConnectedOrganizationSponsor, (org.id, kind, principal_id))
        if validation.usable_id(principal_id)
        else None
    )
    if row is None:
        raise NotFound(f"{principal_id} is not an {kind} sponsor of the organization")
    ctx.session.delete(row)
    before = {"sponsor": principal_id, "sponsorType": row.principal_type, "kind": kind}
    changed(ctx, org, _ACTIVITIES[kind][1], operation_type="Delete", before=before)
