"""Who may request through a policy (spec §5.2, §5.3, §4.4). Called by the request engine.

Scope semantics (``allowedTargetScope``):

* ``notSpecified`` (direct assignment only) and the service-principal / agent scopes: no user.
* ``allMemberUsers``: users of type Member. ``allDirectoryUsers``: every user, guests included.
* ``specificDirectoryUsers``: the users named by ``singleUser``, and the members of the
  ``groupMembers`` groups, nesting included (through the caller-supplied transitive group ids).
  An ``attributeRuleMembers`` rule (automatic assignment) names the users it matches, so the
  auto-assignment job may ask whether a user is still in scope; nobody *requests* through an
  automatic policy, though, so ``requestable_*`` leave those policies out.
* ``specificConnectedOrganizationUsers``: guests whose connected organization is named (configured
  or proposed, spec §5.2). ``allConfiguredConnectedOrganizationUsers``: guests of any
  *configured* organization (proposed ones are excluded, spec §7.3).
  ``allExternalUsers``: every guest, with or without an organization.

Self-requests additionally need the policy to accept requests (``acceptRequests``) and allow
self-add, not to be an automatic assignment policy, the catalog to be enabled (published) and,
for a guest, enabled for external users; a disabled or blocked account requests nothing. When
several policies apply, only those of the highest priority category are offered (spec §5.2;
``PRIORITY``; specific connected organizations are in P1, decision 0013).

``is_allowed_requestor`` decides for one loaded policy in Python; ``requestable_packages`` builds
the same rule as SQL over ``policy_targets`` for lists. Both are tested against each other.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, false, or_, select
from sqlalchemy.orm import Session

from remit.authz import relations
from remit.authz.actor import Actor
from remit.db import HotSelect
from remit.models.catalogs import Catalog
from remit.models.directory import User
from remit.models.external import ConnectedOrganization
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy, PolicyTarget
from remit.models.policy_settings import RequestorSettings, SubjectSet, json_key, settings_of
from remit.models.vocabulary import CatalogState, OrganizationState
from remit.policies import rules
from remit.policies import subjects as s

MEMBER, GUEST = "Member", "Guest"
# Lower is stronger; an applicable policy of a stronger category hides the weaker ones.
PRIORITY: dict[str, int] = {
    "specificDirectoryUsers": 1,
    "specificConnectedOrganizationUsers": 1,
    "allMemberUsers": 2,
    "allDirectoryUsers": 3,
    "allConfiguredConnectedOrganizationUsers": 4,
    "allExternalUsers": 4,
}


def is_allowed_requestor(
    session: Session, policy: AssignmentPolicy, user: User, group_ids: frozenset[str]
) -> bool:
    """Whether ``user`` is in the policy's "who can request" scope (flags not considered)."""
    return _in_scope(policy, user, group_ids, _LazyOrganizationState(session, user))


def names_on_behalf_requestor(policy: AssignmentPolicy, actor: Actor, target: User) -> bool:
    """Whether the policy's ``onBehalfRequestors`` include the actor, for ``target``: the
    target's manager (``targetManager``), the actor by name, or a group the actor is in."""
    for subject in settings_of(policy).requestor.on_behalf_requestors:
        kind = subject.kind
        if kind == s.TARGET_MANAGER and relations.is_direct_manager(actor.user_id, target):
            return True
        if kind == s.SINGLE_USER and subject.user_id == actor.user_id:
            return True
        if kind == s.GROUP_MEMBERS and subject.group_id in actor.group_ids:
            return True
    return False


def named_organizations(policy: AssignmentPolicy) -> set[str | None]:
    """The connected organizations a policy names as allowed targets."""
    targets = settings_of(policy).targets(s.CONNECTED_ORGANIZATION_MEMBERS)
    return {t.connected_organization_id for t in targets}


def requestable_policies(
    session: Session, package_id: str, user: User, group_ids: frozenset[str]
) -> list[AssignmentPolicy]:
    """The policies through which ``user`` may request ``package_id`` for themself right now,
    in the top priority category only, oldest first (an empty list: they may not)."""
    if not _may_request(user):
        return []
    found = _CATALOG_OF_PACKAGE.in_session(session, {"package": package_id})
    if not found:
        return []
    state, externally_visible = found[0]
    if state != CatalogState.PUBLISHED or (user.user_type == GUEST and not externally_visible):
        return []
    policies = session.execute(_POLICIES_OF_PACKAGE, {"package": package_id}).scalars()
    org = _LazyOrganizationState(session, user)
    usable = [
        p
        for p in policies
        if p.auto_assignment_key is None
        and p.automatic_request_settings is None
        and (requestor := settings_of(p).requestor).accept_requests
        and requestor.enable_targets_to_self_add_access
        and _in_scope(p, user, group_ids, org)
    ]
    if not usable:
        return []
    best = min(PRIORITY[p.allowed_target_scope] for p in usable)
    return [p for p in usable if PRIORITY[p.allowed_target_scope] == best]


# Read on every request: built once.
_CATALOG_OF_PACKAGE = HotSelect(
    select(Catalog.state, Catalog.is_externally_visible)
    .join(AccessPackage, AccessPackage.catalog_id == Catalog.id)
    .where(AccessPackage.id == bindparam("package"))
)
_POLICIES_OF_PACKAGE = (
    select(AssignmentPolicy)
    .where(AssignmentPolicy.access_package_id == bindparam("package"))
    .order_by(AssignmentPolicy.created_at, AssignmentPolicy.id)
)


def requestable_packages(
    session: Session, user: User, group_ids: frozenset[str]
) -> Select[AccessPackage]:
    """The packages ``user`` finds in My Access (spec §4.4): not hidden, in an enabled catalog
    (enabled for external users too, for a guest), with at least one policy they may request
    through. The same rule as ``requestable_policies``, in SQL."""
    if not _may_request(user):
        return select(AccessPackage).where(false())
    org_state = _LazyOrganizationState(session, user).get()
    policy = AssignmentPolicy
    settings = policy.requestor_settings
    usable = exists().where(
        policy.access_package_id == AccessPackage.id,
        policy.auto_assignment_key.is_(None),
        # As settings_of reads it: acceptRequests is true unless it says false.
        settings[json_key(RequestorSettings, "accept_requests")].as_boolean().is_not(False),
        settings[json_key(RequestorSettings, "enable_targets_to_self_add_access")]
        .as_boolean()
        .is_(True),
        _in_scope_clause(user, group_ids, org_state),
    )
    stmt = (
        select(AccessPackage)
        .join(Catalog, Catalog.id == AccessPackage.catalog_id)
        .where(AccessPackage.is_hidden.is_(False), Catalog.state == CatalogState.PUBLISHED, usable)
    )
    if user.user_type == GUEST:
        stmt = stmt.where(Catalog.is_externally_visible.is_(True))
    return stmt


# ---------------------------------------------------------------- the rule, twice


class _LazyOrganizationState:
    """The state of the user's connected organization, read at most once, only if needed."""

    def __init__(self, session: Session, user: User) -> None:
        self.session, self.user = session, user
        self.loaded = False
        self.state: str | None = None

    def get(self) -> str | None:
        """``configured``/``proposed``; None for a member, or an unknown or absent organization."""
        if not self.loaded:
            self.loaded = True
            org = self.user.connected_organization_id
            if self.user.user_type == GUEST and org is not None:
                self.state = self.session.execute(
                    select(ConnectedOrganization.state).where(ConnectedOrganization.id == org)
                ).scalar_one_or_none()
        return self.state


def _may_request(user: User) -> bool:
    return user.account_enabled and user.blocked_at is None


def _in_scope(
    policy: AssignmentPolicy,
    user: User,
    group_ids: frozenset[str],
    org: _LazyOrganizationState,
) -> bool:
    scope = policy.allowed_target_scope
    targets = settings_of(policy).specific_allowed_targets
    if scope == "specificDirectoryUsers":
        return any(_names(t, user, group_ids) for t in targets)
    if scope in ("allDirectoryUsers", "allMemberUsers", "allExternalUsers"):
        wanted = {"allMemberUsers": MEMBER, "allExternalUsers": GUEST}.get(scope)
        return wanted is None or user.user_type == wanted
    # The organization's state is None unless the user is a guest of a known organization.
    if scope == "allConfiguredConnectedOrganizationUsers":
        return org.get() == OrganizationState.CONFIGURED
    if scope == "specificConnectedOrganizationUsers":
        named = named_organizations(policy)
        return user.connected_organization_id in named and org.get() is not None
    return False  # notSpecified, service principals, agent identities


def _names(target: SubjectSet, user: User, group_ids: frozenset[str]) -> bool:
    kind = target.kind
    if kind == s.SINGLE_USER:
        return target.user_id == user.id
    if kind == s.GROUP_MEMBERS:
        return target.group_id in group_ids
    if kind == s.ATTRIBUTE_RULE_MEMBERS:
        return rules.parse(str(target.membership_rule)).matches(user)
    return False


def _in_scope_clause(
    user: User, group_ids: frozenset[str], org_state: str | None
) -> ColumnElement[bool]:
    policy, target = AssignmentPolicy, PolicyTarget
    scope = policy.allowed_target_scope

    def names(kind: str, ids: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists().where(target.policy_id == policy.id, target.kind == kind, ids)

    named = [names(s.SINGLE_USER, target.subject_id == user.id)]
    if group_ids:
        named.append(names(s.GROUP_MEMBERS, target.subject_id.in_(group_ids)))
    clauses = [
        scope == "allDirectoryUsers",
        and_(scope == "specificDirectoryUsers", or_(*named)),
    ]
    if user.user_type == MEMBER:
        clauses.append(scope == "allMemberUsers")
    if user.user_type == GUEST:
        clauses.append(scope == "allExternalUsers")
        org = user.connected_organization_id
        if org is not None and org_state is not None:
            by_org = names(s.CONNECTED_ORGANIZATION_MEMBERS, target.subject_id == org)
            clauses.append(and_(scope == "specificConnectedOrganizationUsers", by_org))
            if org_state == OrganizationState.CONFIGURED:
                clauses.append(scope == "allConfiguredConnectedOrganizationUsers")
    return or_(*clauses)
