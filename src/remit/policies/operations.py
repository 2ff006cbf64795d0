"""Assignment policy use cases (spec §5): create, replace (PUT), delete, add to one of its
lists; reading policies, and what a requestor may see of them, is ``policies.queries``.

Managing a policy takes ``policy:manage`` on its package's catalog (owner, access package manager,
administrators); an automatic assignment policy also takes ``policy:autoAssignment:manage``
(Identity Governance Administrator, Global Administrator), to create, change or delete it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from remit.authz.decide import authorize, can
from remit.authz.tasks import Task
from remit.context import Ctx
from remit.db import new_id
from remit.errors import Conflict, Forbidden, Invalid
from remit.models.catalogs import Catalog
from remit.models.directory import Application, Group, User
from remit.models.external import ConnectedOrganization
from remit.models.lifecycle import Assignment, AssignmentRequest
from remit.models.notify import CustomExtension
from remit.models.packages import AccessPackage
from remit.models.policies import AssignmentPolicy, PolicyTarget
from remit.models.policy_settings import settings_of
from remit.models.vocabulary import OPEN_REQUEST_STATES, Activity
from remit.packages.queries import get_package
from remit.policies import document, queries
from remit.policies import subjects as s
from remit.policies.document import PolicyDocument

TARGET = "AccessPackageAssignmentPolicy"
MAX_POLICIES = 25_000  # per tenant (spec §9)
_INDEXED = (s.SINGLE_USER, s.GROUP_MEMBERS, s.CONNECTED_ORGANIZATION_MEMBERS)
_LOOKUPS: dict[str, tuple[Any, str]] = {
    s.SINGLE_USER: (User.id, "user"),
    s.GROUP_MEMBERS: (Group.id, "group"),
    s.CONNECTED_ORGANIZATION_MEMBERS: (ConnectedOrganization.id, "connected organization"),
    s.SINGLE_SERVICE_PRINCIPAL: (Application.id, "service principal"),
}


def create_policy(
    ctx: Ctx, body: dict[str, Any], *, package_id: str | None = None
) -> AssignmentPolicy:
    """A new policy on ``package_id`` (the URL's package) or on the body's ``accessPackage``."""
    _require_object(body)
    named = document.body_package_id(body)
    if package_id is not None and named is not None and named != package_id:
        raise Invalid("accessPackage.id names another access package", target="accessPackage.id")
    wanted = package_id or named
    if wanted is None:
        raise Invalid("accessPackage.id is required", target="accessPackage.id")
    package = get_package(ctx, wanted)
    # Authorize before validating: a caller without the right learns nothing from a 400.
    _authorize(ctx, package.catalog_id, automatic=document.looks_automatic(body))
    doc = document.parse(body, now=ctx.now)
    _check(ctx, package, doc, None)
    total = ctx.session.execute(select(func.count()).select_from(AssignmentPolicy)).scalar_one()
    if total >= MAX_POLICIES:
        raise Conflict(f"the tenant already has {MAX_POLICIES} policies", code="quotaLimitReached")
    policy = AssignmentPolicy(
        id=new_id(),
        access_package_id=package.id,
        catalog_id=package.catalog_id,
        auto_assignment_key=package.id if doc.is_automatic else None,
        created_at=ctx.now,
        modified_at=ctx.now,
        created_by=ctx.actor.user_id,
        version=1,
        **doc.columns(),
    )
    ctx.session.add(policy)
    _flush(ctx)
    _index(ctx, policy)
    _audit(ctx, Activity.CREATE_POLICY, policy, "Add", after=document.snapshot(policy))
    return policy


def replace_policy(ctx: Ctx, policy_id: str, body: dict[str, Any]) -> AssignmentPolicy:
    """PUT: the body replaces every setting (an omitted one takes its default)."""
    policy = queries.policy(ctx, policy_id, for_update=True)
    _require_object(body)
    automatic = policy.auto_assignment_key is not None or document.looks_automatic(body)
    _authorize(ctx, policy.catalog_id, automatic=automatic)
    if body.get("id") not in (None, policy.id):
        raise Invalid("id cannot change", target="id")
    if document.body_package_id(body) not in (None, policy.access_package_id):
        raise Invalid("a policy cannot move to another access package", target="accessPackage.id")
    package = ctx.session.get(AccessPackage, policy.access_package_id)
    assert package is not None  # noqa: S101 - foreign key
    keep_end = settings_of(policy).expiration.end_date_time
    doc = document.parse(body, now=ctx.now, keep_end=keep_end)
    _check(ctx, package, doc, policy.id)
    before = document.snapshot(policy)
    for column, value in doc.columns().items():
        setattr(policy, column, value)
    policy.auto_assignment_key = package.id if doc.is_automatic else None
    after = document.snapshot(policy)
    if after == before:
        return policy
    policy.version += 1
    policy.modified_at = ctx.now
    _flush(ctx)
    _index(ctx, policy)
    changed = [k for k in after if after[k] != before[k]]
    _audit(
        ctx,
        Activity.UPDATE_POLICY,
        policy,
        "Update",
        before={k: before[k] for k in changed},
        after={k: after[k] for k in changed},
    )
    return policy


# The policy's lists that have paths of their own (graph-api §A.3.4), and what one item is called.
ITEM_LISTS = {"questions": "question", "customExtensionStageSettings": "custom extension stage"}


def add_item(ctx: Ctx, policy_id: str, field: str, item: Any) -> dict[str, Any]:
    """``POST …/assignmentPolicies/{id}/questions`` (or ``/customExtensionStageSettings``): the
    item joins the end of the list, and the whole policy is checked and recorded as a PUT of it
    would be (same rights, same validation, one audit event). Returns the item as stored."""
    if field not in ITEM_LISTS:
        raise ValueError(field)
    if not isinstance(item, dict):
        raise Invalid(f"the body must be a JSON object: one {ITEM_LISTS[field]}")
    policy = queries.policy(ctx, policy_id, for_update=True)
    body = document.render(policy)
    known = {str(x.get("id")) for x in body[field]}
    given = item.get("id")
    if isinstance(given, str) and given.strip() in known:
        raise Conflict(f"this policy already has a {ITEM_LISTS[field]} with id {given.strip()}")
    body[field] = [*body[field], item]
    replace_policy(ctx, policy_id, body)
    added = [x for x in document.render(policy)[field] if str(x.get("id")) not in known]
    return dict(added[-1])


def delete_policy(ctx: Ctx, policy_id: str) -> None:
    policy = queries.policy(ctx, policy_id, for_update=True)
    _authorize(ctx, policy.catalog_id, automatic=policy.auto_assignment_key is not None)
    active = select(Assignment.id).where(
        Assignment.policy_id == policy.id, Assignment.active_key.is_not(None)
    )
    if ctx.session.execute(active.limit(1)).first() is not None:
        raise Conflict("the policy still has active assignments; remove them first")
    pending = select(AssignmentRequest.id).where(
        AssignmentRequest.policy_id == policy.id,
        AssignmentRequest.state.in_(OPEN_REQUEST_STATES),
    )
    if ctx.session.execute(pending.limit(1)).first() is not None:
        raise Conflict("the policy still has open requests; wait for them or cancel them")
    before = document.snapshot(policy)
    ctx.session.delete(policy)
    _audit(ctx, Activity.DELETE_POLICY, policy, "Delete", before=before)


def _audit(
    ctx: Ctx, activity: Activity, policy: AssignmentPolicy, operation_type: str, **change: Any
) -> None:
    """``change``: the settings ``before`` and ``after`` (by their Graph names)."""
    ctx.audit(
        activity,
        operation_type=operation_type,
        target_type=TARGET,
        target_id=policy.id,
        target_name=policy.display_name,
        catalog_id=policy.catalog_id,
        **change,
    )


# ---------------------------------------------------------------- checks


def _require_object(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("the request body must be a policy object")


def _authorize(ctx: Ctx, catalog_id: str, *, automatic: bool) -> None:
    authorize(ctx.actor, Task.POLICY_MANAGE, catalog_id)
    if automatic and not can(ctx.actor, Task.AUTO_ASSIGNMENT_POLICY_MANAGE):
        raise Forbidden(
            "only an Identity Governance Administrator or a Global Administrator may manage "
            "automatic assignment policies"
        )


def _check(ctx: Ctx, package: AccessPackage, doc: PolicyDocument, own_id: str | None) -> None:
    """What the document cannot know alone: its catalog, the objects it names, one auto policy."""
    if doc.catalog_id is not None and doc.catalog_id != package.catalog_id:
        raise Invalid("a policy belongs to its access package's catalog", target="catalog.id")
    if doc.allowed_target_scope in document.EXTERNAL_SCOPES:
        catalog = ctx.session.get(Catalog, package.catalog_id)
        if catalog is not None and not catalog.is_externally_visible:
            raise Invalid(
                "the catalog is not enabled for external users, so its policies cannot be for "
                "users outside the directory",
                target="allowedTargetScope",
            )
    _check_references(ctx, package.catalog_id, doc)
    if doc.is_automatic:
        clash = ctx.session.execute(
            select(AssignmentPolicy.id).where(AssignmentPolicy.auto_assignment_key == package.id)
        ).scalar_one_or_none()
        if clash is not None and clash != own_id:
            raise Conflict(
                f"the access package already has an automatic assignment policy ({clash})",
                target="automaticRequestSettings",
            )


def _check_references(ctx: Ctx, catalog_id: str, doc: PolicyDocument) -> None:
    refs = doc.references()
    for kind, (column, noun) in _LOOKUPS.items():
        wanted = {r.id for r in refs if r.kind == kind}
        if not wanted:
            continue
        found = set(ctx.session.execute(select(column).where(column.in_(wanted))).scalars())
        missing = next((r for r in refs if r.kind == kind and r.id not in found), None)
        if missing is not None:
            raise Invalid(
                f"{missing.target}: {noun} {missing.id} was not found", target=missing.target
            )
    extensions = doc.extension_references()
    if extensions:
        found = set(
            ctx.session.execute(
                select(CustomExtension.id).where(
                    CustomExtension.id.in_({e for e, _ in extensions}),
                    CustomExtension.catalog_id == catalog_id,
                )
            ).scalars()
        )
        for extension_id, where in extensions:
            if extension_id not in found:
                raise Invalid(
                    f"{where}: {extension_id} is not a custom extension of the access package's "
                    "catalog",
                    target=where,
                )


def _flush(ctx: Ctx) -> None:
    try:
        ctx.session.flush()
    except IntegrityError as exc:  # a concurrent create won the package's one auto policy
        raise Conflict(
            "the access package already has an automatic assignment policy",
            target="automaticRequestSettings",
        ) from exc


def _index(ctx: Ctx, policy: AssignmentPolicy) -> None:
    """policy_targets: who the policy names as allowed requestors, for set-based look-ups."""
    ctx.session.execute(delete(PolicyTarget).where(PolicyTarget.policy_id == policy.id))
    ctx.session.add_all(
        PolicyTarget(policy_id=policy.id, kind=kind, subject_id=subject)
        for target in policy.specific_allowed_targets
        if (kind := s.kind(target)) in _INDEXED and (subject := s.subject_id(target)) is not None
    )
    ctx.session.flush()
