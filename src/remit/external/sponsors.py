"""Sponsors of a connected organization (spec §7.3): internal sponsors are member users or
groups, external sponsors are guest users already invited. They can be chosen as approvers
(``orgs.sponsors_of`` resolves them for the lifecycle). Reading them is ``queries.sponsors``."""

from __future__ import annotations

from remit import validation
from remit.authz.decide import authorize
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.errors import Conflict, Invalid, NotFound
from remit.external.orgs import TARGET_TYPE
from remit.external.queries import organization, sponsor_kind
from remit.models.directory import Group, User
from remit.models.external import ConnectedOrganizationSponsor


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
    org.modified_at = ctx.now
    ctx.session.flush()
    ctx.audit(
        f"Add {kind} sponsor to connected organization",
        operation_type="Add",
        target_type=TARGET_TYPE,
        target_id=org.id,
        target_name=org.display_name,
        after={"sponsor": principal_id, "sponsorType": principal_type, "kind": kind},
    )


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
    org.modified_at = ctx.now
    ctx.session.flush()
    ctx.audit(
        f"Remove {kind} sponsor from connected organization",
        operation_type="Delete",
        target_type=TARGET_TYPE,
        target_id=org.id,
        target_name=org.display_name,
        before={"sponsor": principal_id, "sponsorType": row.principal_type, "kind": kind},
    )
