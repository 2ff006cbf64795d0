"""Guest users brought in by entitlement management, and their lifecycle (spec §6.4, §7.2).

A guest invited through a policy is *governed*: when it loses its last assignment, the tenant
settings as they are at that moment decide what happens (nothing, block, or block and delete
after a delay). The deletion date is written on the user then, so a later change of the
settings leaves it alone. ``jobs.py`` deletes the guests whose date has come, unless they have
been given access again in the meantime.

These functions are consequences of a lifecycle event that was itself authorized (a policy let
the request in, an approver approved): they do not authorize, except ``mark_governed``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, exists, func, select, update

from remit import validation
from remit.authz.decide import authorize, can
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.errors import Invalid, NotFound
from remit.external import settings as tenant_settings
from remit.jobs.queue import enqueue
from remit.models.authz import RoleAssignment
from remit.models.directory import (
    ApplicationOwner,
    AppRoleAssignment,
    DirectoryRoleAssignment,
    GroupMember,
    GroupOwner,
    SiteAdmin,
    SiteRoleMember,
    User,
)
from remit.models.external import ConnectedOrganization, ConnectedOrganizationSponsor
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.vocabulary import Activity

GOVERNED, NOT_GOVERNED = "governed", "notGoverned"
GUEST = "Guest"
DELETE_ONE = "external.delete_guest"
DIRECTORY = "Directory"
FALLBACK_DOMAIN = "remit.invalid"


# ---------------------------------------------------------------- invitation


def tenant_domain(ctx: Ctx) -> str:
    """The directory's own domain: that of its oldest member user (``contoso.example``)."""
    first = ctx.session.execute(
        select(User.upn_key)
        .where(User.user_type == "Member")
        .order_by(User.created_at, User.id)
        .limit(1)
    ).scalar_one_or_none()
    return first.rpartition("@")[2] if first else FALLBACK_DOMAIN


def guest_upn(email: str, domain: str) -> str:
    """Entra's form: ``alice@fabrikam.example`` becomes
    ``alice_fabrikam.example#EXT#@contoso.example``."""
    return f"{email.replace('@', '_')}#EXT#@{domain}"


def find_by_email(ctx: Ctx, email: str) -> User | None:
    """A user whose userPrincipalName or mail is ``email`` (case-insensitive)."""
    key = email.lower()
    found = ctx.session.execute(select(User).where(User.upn_key == key)).scalar_one_or_none()
    if found is not None:
        return found
    # mail has no index: invitations are rare, and this runs once per invitation.
    return ctx.session.execute(
        select(User).where(func.lower(User.mail) == key).order_by(User.created_at, User.id).limit(1)
    ).scalar_one_or_none()


def ensure_guest(
    ctx: Ctx,
    *,
    email: str,
    display_name: str | None = None,
    organization_id: str | None = None,
    domain: str | None = None,
) -> User:
    """The user with this email, or a new governed guest of ``organization_id``.

    An existing user is returned as it is (a member, or a guest invited before: spec §6.4 says
    those are not governed unless marked so). ``domain`` is the tenant's own domain for the new
    guest's userPrincipalName; by default that of the directory's oldest member user.
    """
    # A mail address (one, no header injection), and UPN-shaped: it becomes part of the
    # guest's userPrincipalName.
    address = validation.upn(validation.email(email, "email"), "email")
    existing = find_by_email(ctx, address)
    if existing is not None:
        return existing
    if organization_id is not None and (
        not validation.usable_id(organization_id)
        or ctx.session.get(ConnectedOrganization, organization_id) is None
    ):
        raise Invalid(f"connected organization {organization_id} was not found")
    upn = guest_upn(address, domain or tenant_domain(ctx))
    if len(upn) > 320:
        raise Invalid("the email address is too long for a guest account", target="email")
    user = User(
        user_principal_name=upn,
        upn_key=upn.lower(),
        display_name=validation.display_name(
            display_name or address.partition("@")[0], "displayName"
        ),
        mail=address,
        user_type=GUEST,
        account_enabled=True,
        created_at=ctx.now,
        subject_lifecycle=GOVERNED,
        connected_organization_id=organization_id,
    )
    ctx.session.add(user)
    ctx.session.flush()
    ctx.audit(
        Activity.INVITE_EXTERNAL_USER,
        operation_type="Add",
        target_type="User",
        target_id=user.id,
        target_name=upn,
        after=_snapshot(user),
        category="UserManagement",
        subject_id=user.id,
    )
    return user


def _snapshot(user: User) -> dict[str, Any]:
    return {
        "userPrincipalName": user.user_principal_name,
        "mail": user.mail,
        "userType": user.user_type,
        "accountEnabled": user.account_enabled,
        "subjectLifecycle": user.subject_lifecycle,
        "connectedOrganizationId": user.connected_organization_id,
        "blockedDateTime": user.blocked_at.isoformat() if user.blocked_at else None,
        "deleteAfterDateTime": user.delete_after.isoformat() if user.delete_after else None,
    }


def _audit_change(
    ctx: Ctx, activity: Activity, user: User, before: dict[str, Any], **event: Any
) -> None:
    """One event about a change of ``user``'s lifecycle, from ``before`` to what it is now."""
    ctx.session.flush()
    ctx.audit(
        activity,
        operation_type="Update",
        target_type="User",
        target_id=user.id,
        target_name=user.user_principal_name,
        before=before,
        after=_snapshot(user),
        subject_id=user.id,
        **event,
    )


def _has_active_assignment(ctx: Ctx, user_id: str) -> bool:
    return bool(
        ctx.session.execute(
            select(
                exists().where(Assignment.target_id == user_id, Assignment.active_key.is_not(None))
            )
        ).scalar()
    )


# ---------------------------------------------------------------- losing and regaining access


def on_last_assignment_ended(ctx: Ctx, user_id: str) -> None:
    """Apply the current settings to a governed guest who holds no assignment any more.

    A no-op for anyone else, for a guest still holding an assignment, and for one already
    blocked (its deletion date stays as first set). With a zero delay the deletion is queued
    to run at once.
    """
    user = ctx.session.get(User, user_id)
    if (
        user is None
        or user.user_type != GUEST
        or user.subject_lifecycle != GOVERNED
        or user.blocked_at is not None
        or _has_active_assignment(ctx, user_id)
    ):
        return
    row = tenant_settings.get_settings(ctx.session, now=ctx.now)
    action = row.external_user_lifecycle_action
    if action == tenant_settings.NONE:
        return
    before = _snapshot(user)
    user.account_enabled = False
    user.blocked_at = ctx.now
    if action == tenant_settings.BLOCK_AND_DELETE:
        user.delete_after = ctx.now + tenant_settings.delete_delay(row)
    blocked = (
        Activity.BLOCK_AND_SCHEDULE_DELETION
        if user.delete_after is not None
        else Activity.BLOCK_EXTERNAL_USER
    )
    details = {"externalUserLifecycleAction": action}
    _audit_change(ctx, blocked, user, before, details=details)
    if user.delete_after is not None and user.delete_after <= ctx.now:
        enqueue(
            ctx.session,
            DELETE_ONE,
            {"userId": user.id},
            now=ctx.now,
            dedupe_key=f"{DELETE_ONE}:{user.id}",
        )


def restore_on_new_assignment(ctx: Ctx, user_id: str) -> None:
    """A guest blocked by the lifecycle who is given access again before deletion: unblock it.

    An account disabled by hand (no ``blocked_at``) stays disabled.
    """
    user = ctx.session.get(User, user_id)
    if user is None or (user.blocked_at is None and user.delete_after is None):
        return
    before = _snapshot(user)
    user.account_enabled = True
    user.blocked_at = None
    user.delete_after = None
    _audit_change(ctx, Activity.UNBLOCK_EXTERNAL_USER, user, before)


def mark_governed(ctx: Ctx, user_id: str, *, catalog_id: str) -> User:
    """Mark an ungoverned guest as governed (spec §6.4): IGA, owner, APM or APAM of a catalog in
    which the guest requested access for themself (not one where it was directly assigned)."""
    if not can(ctx.actor, Task.CATALOG_READ, catalog_id):
        raise NotFound(f"catalog {catalog_id} was not found")
    authorize(ctx.actor, Task.ASSIGNMENT_DIRECT_ADD, catalog_id)
    user = ctx.session.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} was not found")
    if user.user_type != GUEST:
        raise Invalid("only guest users can be governed")
    if user.subject_lifecycle == GOVERNED:
        return user
    self_requested = ctx.session.execute(
        select(
            exists().where(
                AssignmentRequest.catalog_id == catalog_id,
                AssignmentRequest.target_id == user.id,
                AssignmentRequest.requestor_id == user.id,
            )
        )
    ).scalar()
    if not self_requested:
        raise Invalid(
            "only a guest who requested access in this catalog for themself can be governed"
        )
    before = _snapshot(user)
    user.subject_lifecycle = GOVERNED
    _audit_change(ctx, Activity.MARK_EXTERNAL_USER_GOVERNED, user, before, catalog_id=catalog_id)
    return user


# ---------------------------------------------------------------- deletion


def due_for_deletion(ctx: Ctx, *, limit: int, user_ids: Sequence[str] | None = None) -> list[User]:
    """Governed guests whose deletion date has come and who hold no active assignment, oldest
    date first; locked (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so workers share the work)."""
    stmt = (
        select(User)
        .where(
            User.user_type == GUEST,
            User.subject_lifecycle == GOVERNED,
            User.delete_after <= ctx.now,
            ~exists().where(Assignment.target_id == User.id, Assignment.active_key.is_not(None)),
        )
        .order_by(User.delete_after, User.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    if user_ids is not None:
        stmt = stmt.where(User.id.in_(list(user_ids)))
    return list(ctx.session.execute(stmt).scalars())


def delete_guests(ctx: Ctx, users: Sequence[User]) -> int:
    """Delete ``users`` with everything that names them (memberships, ownerships, roles,
    sponsorships), set-based; one audit event each. Assignments and requests stay as history."""
    if not users:
        return 0
    ids = [u.id for u in users]
    for stmt in (
        delete(GroupMember).where(GroupMember.member_id.in_(ids)),
        delete(GroupOwner).where(GroupOwner.user_id.in_(ids)),
        delete(ApplicationOwner).where(ApplicationOwner.user_id.in_(ids)),
        delete(SiteAdmin).where(SiteAdmin.user_id.in_(ids)),
        delete(SiteRoleMember).where(SiteRoleMember.user_id.in_(ids)),
        delete(AppRoleAssignment).where(AppRoleAssignment.principal_id.in_(ids)),
        delete(DirectoryRoleAssignment).where(DirectoryRoleAssignment.principal_id.in_(ids)),
        delete(RoleAssignment).where(RoleAssignment.principal_id.in_(ids)),
        delete(ConnectedOrganizationSponsor).where(
            ConnectedOrganizationSponsor.principal_id.in_(ids)
        ),
        update(User).where(User.manager_id.in_(ids)).values(manager_id=None),
    ):
        ctx.session.execute(stmt, execution_options={"synchronize_session": False})
    snapshots = [(u.id, u.user_principal_name, _snapshot(u)) for u in users]
    ctx.session.execute(
        delete(User).where(User.id.in_(ids)), execution_options={"synchronize_session": False}
    )
    for user in users:
        ctx.session.expunge(user)
    for uid, upn, before in snapshots:
        ctx.audit(
            Activity.DELETE_USER,
            operation_type="Delete",
            target_type="User",
            target_id=uid,
            target_name=upn,
            before=before,
            category=DIRECTORY,
            subject_id=uid,
            details={"reason": "external user lifecycle: no assignment left"},
        )
    return len(ids)


def delete_due_guests(ctx: Ctx, *, limit: int = 500, user_ids: Sequence[str] | None = None) -> int:
    """One chunk of the sweep: the number of guests deleted."""
    return delete_guests(ctx, due_for_deletion(ctx, limit=limit, user_ids=user_ids))
