"""Connected organizations (spec §7.3, graph-api §A.3.8): CRUD and matching (sponsors: sponsors.py).

Who may do what (docs/decisions/0012): managing needs ``Task.CONNECTED_ORGS_MANAGE`` (IGA, GA,
Connected Organization Administrator). Reading, and who may read, is ``queries``: every change
starts from the organization as its reader would see it, then asks for the management task.

The matching index (``connected_organization_domains``) holds each organization's lower-cased
domains and ``tenant:{tenantId}`` keys; a key may belong to at most one *configured*
organization, so that matching an email is unambiguous.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, select, update
from sqlalchemy.orm import Session

from remit import validation
from remit.authz.decide import authorize
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.errors import Conflict, Invalid
from remit.external import queries, sources
from remit.models.directory import User
from remit.models.external import (
    ConnectedOrganization,
    ConnectedOrganizationDomain,
    ConnectedOrganizationSponsor,
)
from remit.models.policies import PolicyTarget
from remit.models.vocabulary import GRAPH, Activity, OrganizationState

TARGET_TYPE = "ConnectedOrganization"
MAX_ORGANIZATIONS = 2500  # per tenant (spec §9)
EDITABLE = {"displayName", "description", "state", "identitySources"}


# ---------------------------------------------------------------- writes


def _state(value: Any) -> OrganizationState:
    found = next(
        (s for s in OrganizationState if isinstance(value, str) and value.lower() == s), None
    )
    if found is None:
        raise Invalid("state must be 'configured' or 'proposed'", target="state")
    return found


def _check_limit(ctx: Ctx) -> None:
    _serialize(ctx, {"*count"})
    count = ctx.session.execute(select(func.count()).select_from(ConnectedOrganization)).scalar()
    if (count or 0) >= MAX_ORGANIZATIONS:
        raise Conflict(
            f"a tenant has at most {MAX_ORGANIZATIONS} connected organizations",
            code="quotaLimitReached",
        )


def _serialize(ctx: Ctx, keys: set[str]) -> None:
    """One transaction at a time per matching key (or the count), so that check-then-insert
    holds. SQLite has one writer already; PostgreSQL takes transaction-scoped advisory locks."""
    if ctx.session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted(keys):
        ctx.session.execute(
            select(func.pg_advisory_xact_lock(func.hashtext(f"remit.connectedOrganization:{key}")))
        )


def _check_keys_free(ctx: Ctx, keys: set[str], own_id: str | None) -> None:
    """No other configured organization may already match one of ``keys``."""
    if not keys:
        return
    _serialize(ctx, keys)
    clash = ctx.session.execute(
        select(ConnectedOrganizationDomain.domain, ConnectedOrganization.display_name)
        .join(
            ConnectedOrganization,
            ConnectedOrganization.id == ConnectedOrganizationDomain.organization_id,
        )
        .where(
            ConnectedOrganizationDomain.domain.in_(sorted(keys)),
            ConnectedOrganization.state == OrganizationState.CONFIGURED,
            ConnectedOrganization.id != (own_id or ""),
        )
        .order_by(ConnectedOrganizationDomain.domain)
        .limit(1)
    ).first()
    if clash is not None:
        key, name = clash
        what = f"tenant {key.removeprefix('tenant:')}" if key.startswith("tenant:") else key
        raise Conflict(
            f"{what} is already an identity source of the configured organization {name!r}",
            target="identitySources",
        )


def _index(ctx: Ctx, org: ConnectedOrganization) -> None:
    ctx.session.execute(
        delete(ConnectedOrganizationDomain).where(
            ConnectedOrganizationDomain.organization_id == org.id
        )
    )
    keys = sources.match_keys(org.identity_sources)
    ctx.session.add_all(
        ConnectedOrganizationDomain(organization_id=org.id, domain=k) for k in sorted(keys)
    )


def audit(ctx: Ctx, org: ConnectedOrganization, activity: Activity, **event: Any) -> None:
    """One audit event about ``org`` (its sponsors' too); ``event`` carries the operation
    type and the before/after values."""
    ctx.audit(
        activity,
        target_type=TARGET_TYPE,
        target_id=org.id,
        target_name=org.display_name,
        **event,
    )


def changed(ctx: Ctx, org: ConnectedOrganization, activity: Activity, **event: Any) -> None:
    """``org`` changed (itself or its sponsors): modified now, and audited."""
    org.modified_at = ctx.now
    ctx.session.flush()
    audit(ctx, org, activity, **event)


def snapshot(org: ConnectedOrganization) -> dict[str, Any]:
    return {
        "displayName": org.display_name,
        "description": org.description,
        "state": org.state,
        "identitySources": org.identity_sources,
    }


def create_organization(
    ctx: Ctx,
    *,
    display_name: str,
    description: str | None = None,
    state: str = OrganizationState.CONFIGURED,
    identity_sources: list[Any] | None = None,
) -> ConnectedOrganization:
    authorize(ctx.actor, Task.CONNECTED_ORGS_MANAGE)
    return _create(
        ctx,
        display_name=validation.display_name(display_name),
        description=validation.optional_text(description, "description"),
        state=_state(state),
        parsed_sources=sources.parse_sources(identity_sources),
        activity=Activity.CREATE_ORGANIZATION,
    )


def _create(
    ctx: Ctx,
    *,
    display_name: str,
    description: str | None,
    state: OrganizationState,
    parsed_sources: list[dict[str, Any]],
    activity: Activity,
) -> ConnectedOrganization:
    # Locks in one order everywhere (matching keys, then the count) so that no two wait on
    # each other.
    if state == OrganizationState.CONFIGURED:
        _check_keys_free(ctx, sources.match_keys(parsed_sources), None)
    _check_limit(ctx)
    org = ConnectedOrganization(
        display_name=display_name,
        description=description,
        state=state,
        identity_sources=parsed_sources,
        created_at=ctx.now,
        modified_at=ctx.now,
        created_by=None if ctx.actor.is_system else ctx.actor.user_id,
    )
    ctx.session.add(org)
    ctx.session.flush()
    _index(ctx, org)
    ctx.session.flush()
    audit(ctx, org, activity, operation_type="Add", after=snapshot(org))
    return org


def update_organization(
    ctx: Ctx, organization_id: str, changes: dict[str, Any]
) -> ConnectedOrganization:
    org = queries.organization(ctx, organization_id)
    authorize(ctx.actor, Task.CONNECTED_ORGS_MANAGE)
    validation.only_editable(changes, EDITABLE)
    before = snapshot(org)
    if "displayName" in changes:
        org.display_name = validation.display_name(changes["displayName"])
    if "description" in changes:
        org.description = validation.optional_text(changes["description"], "description")
    if "state" in changes:
        org.state = _state(changes["state"])
    if "identitySources" in changes:
        org.identity_sources = sources.parse_sources(changes["identitySources"])
    after = snapshot(org)
    if after == before:
        return org
    if org.state == OrganizationState.CONFIGURED:
        _check_keys_free(ctx, sources.match_keys(org.identity_sources), org.id)
    if after["identitySources"] != before["identitySources"]:
        _index(ctx, org)
    changed(
        ctx, org, Activity.UPDATE_ORGANIZATION, operation_type="Update", before=before, after=after
    )
    return org


def delete_organization(ctx: Ctx, organization_id: str) -> None:
    org = queries.organization(ctx, organization_id)
    authorize(ctx.actor, Task.CONNECTED_ORGS_MANAGE)
    used = ctx.session.execute(
        select(func.count())
        .select_from(PolicyTarget)
        .where(
            PolicyTarget.kind == "connectedOrganizationMembers",
            PolicyTarget.subject_id == org.id,
        )
    ).scalar()
    if used:
        raise Conflict(
            f"the organization is named by {used} assignment "
            f"polic{'y' if used == 1 else 'ies'}; remove it from them first"
        )
    # Its guests stay in the directory, as users of no organization.
    result = ctx.session.execute(
        update(User)
        .where(User.connected_organization_id == org.id)
        .values(connected_organization_id=None)
    )
    released = cast("CursorResult[Any]", result).rowcount
    before = snapshot(org)
    ctx.session.delete(org)
    ctx.session.flush()
    audit(
        ctx,
        org,
        Activity.DELETE_ORGANIZATION,
        operation_type="Delete",
        before=before,
        details={"guestsReleased": released},
    )


# ---------------------------------------------------------------- for the lifecycle


def _email_domain(email: str) -> str | None:
    local, at, domain = email.strip().rpartition("@")
    if not at or not local or not domain:
        return None
    try:
        return sources.domain_name(domain, "email")
    except Invalid:
        return None


def match_organization(session: Session, email: str) -> ConnectedOrganization | None:
    """The organization whose identity sources name ``email``'s domain, if any.

    Configured organizations win over proposed ones; among equals the oldest (then the smallest
    id), so the answer is the same every time. Matching is by domain only: a user from an Entra
    tenant source is matched when they come with a tenant id, which remit does not see yet.
    """
    domain = _email_domain(email)
    if domain is None:
        return None
    found: ConnectedOrganization | None = session.execute(
        select(ConnectedOrganization)
        .join(
            ConnectedOrganizationDomain,
            ConnectedOrganizationDomain.organization_id == ConnectedOrganization.id,
        )
        .where(ConnectedOrganizationDomain.domain == domain)
        .order_by(
            (ConnectedOrganization.state != OrganizationState.CONFIGURED),
            ConnectedOrganization.created_at,
            ConnectedOrganization.id,
        )
        .limit(1)
    ).scalar_one_or_none()
    return found


def propose_organization(ctx: Ctx, email: str) -> ConnectedOrganization:
    """A *proposed* organization for ``email``'s domain (an "all external users" request from a
    domain no organization matches). Not authorized here: the policy allowed the request.
    Returns the organization that already matches, if one does."""
    domain = _email_domain(email)
    if domain is None:
        raise Invalid(f"{email!r} is not an email address", target="email")
    _serialize(ctx, {domain})  # two first requests from a new domain propose one organization
    existing = match_organization(ctx.session, email)
    if existing is not None:
        return existing
    return _create(
        ctx,
        display_name=domain,
        description=f"Proposed for users from {domain}",
        state=OrganizationState.PROPOSED,
        parsed_sources=[
            {
                "@odata.type": GRAPH + sources.DOMAIN,
                "domainName": domain,
                "displayName": domain,
            }
        ],
        activity=Activity.CREATE_PROPOSED_ORGANIZATION,
    )


def sponsors_of(session: Session, org_id: str, kind: str) -> list[tuple[str, str]]:
    """(principal id, "user" | "group") of an organization's internal or external sponsors."""
    rows = session.execute(
        select(
            ConnectedOrganizationSponsor.principal_id, ConnectedOrganizationSponsor.principal_type
        )
        .where(
            ConnectedOrganizationSponsor.organization_id == org_id,
            ConnectedOrganizationSponsor.kind == queries.sponsor_kind(kind),
        )
        .order_by(ConnectedOrganizationSponsor.principal_id)
    ).all()
    return [(str(pid), str(ptype)) for pid, ptype in rows]
