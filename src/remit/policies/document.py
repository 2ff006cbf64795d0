"""An assignment policy as a Graph document: parsed, checked and normalized; rendered back.

``parse`` turns a Graph ``accessPackageAssignmentPolicy`` body (POST or PUT) into the stored form
(docs/decisions/0013): camelCase Graph keys, every key present with its default, durations as
ISO-8601, enums in their canonical spelling, subjectSets always with ``@odata.type``. The
lifecycle reads these documents directly, so their shape is a contract. ``parse`` is pure: the
objects a document names (users, groups, connected organizations, custom extensions) are
returned as references for the operation to look up. Unknown properties are ignored, as Graph
does; known ones must be right, and every error names its place (``target``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from remit import validation
from remit.db import new_id
from remit.errors import Invalid
from remit.models.policies import AssignmentPolicy
from remit.models.vocabulary import GRAPH
from remit.notify import webhooks
from remit.policies import approval, expiration, questions, reviews, rules
from remit.policies import fields as f
from remit.policies import subjects as s
from remit.policies.fields import at

SCOPES = (
    "notSpecified",
    "specificDirectoryUsers",
    "specificConnectedOrganizationUsers",
    "specificDirectoryServicePrincipals",
    "allMemberUsers",
    "allDirectoryUsers",
    "allDirectoryServicePrincipals",
    "allConfiguredConnectedOrganizationUsers",
    "allExternalUsers",
    "allDirectoryAgentIdentities",
)
# The subjectSet types each "specific" scope names; other scopes name none.
SPECIFIC_TARGETS = {
    "specificDirectoryUsers": (s.SINGLE_USER, s.GROUP_MEMBERS, s.ATTRIBUTE_RULE_MEMBERS),
    "specificConnectedOrganizationUsers": (s.CONNECTED_ORGANIZATION_MEMBERS,),
    "specificDirectoryServicePrincipals": (s.SINGLE_SERVICE_PRINCIPAL,),
}
EXTERNAL_SCOPES = frozenset(
    {
        "specificConnectedOrganizationUsers",
        "allConfiguredConnectedOrganizationUsers",
        "allExternalUsers",
    }
)
TARGET_TYPES = tuple(t for types in SPECIFIC_TARGETS.values() for t in types)
EXTENSION_STAGES = webhooks.STAGES  # the stages a custom extension may be called at
# Limits: spec §9 where documented, otherwise decision 0013.
MAX_USERS_AND_GROUPS = 500
MAX_CONNECTED_ORGANIZATIONS = 1000
MAX_GRACE = timedelta(days=365)
MAX_EXTENSION_SETTINGS = 50
REQUESTOR_FLAGS = (
    "enableTargetsToSelfAddAccess",
    "enableTargetsToSelfUpdateAccess",
    "enableTargetsToSelfRemoveAccess",
    "allowCustomAssignmentSchedule",
    "enableOnBehalfRequestorsToAddAccess",
    "enableOnBehalfRequestorsToUpdateAccess",
    "enableOnBehalfRequestorsToRemoveAccess",
)
ON_BEHALF = (s.SINGLE_USER, s.GROUP_MEMBERS, s.TARGET_MANAGER)
AUTOMATIC_FLAGS = ("requestAccessForAllowedTargets", "removeAccessWhenTargetLeavesAllowedTargets")


@dataclass
class PolicyDocument:
    """A parsed policy body; the settings are in their stored (normal) form."""

    display_name: str
    description: str | None
    access_package_id: str | None
    catalog_id: str | None
    allowed_target_scope: str
    specific_allowed_targets: list[dict[str, Any]]
    automatic_request_settings: dict[str, Any] | None
    expiration: dict[str, Any]
    requestor_settings: dict[str, Any]
    request_approval_settings: dict[str, Any]
    review_settings: dict[str, Any] | None
    questions: list[dict[str, Any]]
    notification_settings: dict[str, Any]
    custom_extension_stage_settings: list[dict[str, Any]]

    @property
    def is_automatic(self) -> bool:
        return self.automatic_request_settings is not None

    def columns(self) -> dict[str, Any]:
        """The model's column values."""
        return {
            "display_name": self.display_name,
            "description": self.description,
            "allowed_target_scope": self.allowed_target_scope,
            "specific_allowed_targets": self.specific_allowed_targets,
            "automatic_request_settings": self.automatic_request_settings,
            "expiration": self.expiration,
            "requestor_settings": self.requestor_settings,
            "request_approval_settings": self.request_approval_settings,
            "review_settings": self.review_settings,
            "questions": self.questions,
            "notification_settings": self.notification_settings,
            "custom_extension_stage_settings": self.custom_extension_stage_settings,
        }

    def references(self) -> list[s.Reference]:
        """Every directory object the document names, with where it names it."""
        found = s.references(self.specific_allowed_targets, "specificAllowedTargets")
        settings = "requestorSettings"
        found += s.references(
            self.requestor_settings["onBehalfRequestors"], at(settings, "onBehalfRequestors")
        )
        for i, stage in enumerate(self.request_approval_settings["stages"]):
            path = at("requestApprovalSettings.stages", i)
            for key in approval.APPROVER_LISTS:
                found += s.references(stage[key], at(path, key))
        if self.review_settings is not None:
            for key in ("primaryReviewers", "fallbackReviewers"):
                found += s.references(self.review_settings[key], at("reviewSettings", key))
        return found

    def extension_references(self) -> list[tuple[str, str]]:
        """(custom extension id, where it is named)."""
        return [
            (
                str(item["customExtension"]["id"]),
                f"customExtensionStageSettings[{i}].customExtension.id",
            )
            for i, item in enumerate(self.custom_extension_stage_settings)
        ]


def body_package_id(body: dict[str, Any]) -> str | None:
    """The package a body names (``accessPackage: {id}``, or beta's ``accessPackageId``)."""
    ref = body.get("accessPackage")
    value = ref.get("id") if isinstance(ref, dict) else None
    value = value if value is not None else body.get("accessPackageId")
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid("accessPackage.id must be a string", target="accessPackage.id")
    return validation.no_controls(value, "accessPackage.id").strip()


def looks_automatic(body: dict[str, Any]) -> bool:
    """Whether a body asks for an automatic assignment policy (checked before anything else)."""
    if body.get("automaticRequestSettings") is not None:
        return True
    targets = body.get("specificAllowedTargets")
    return isinstance(targets, list) and any(
        isinstance(t, dict) and "attributerulemembers" in str(t.get("@odata.type", "")).lower()
        for t in targets
    )


def parse(body: Any, *, now: datetime, keep_end: str | None = None) -> PolicyDocument:
    """The stored form of a policy body. ``keep_end``: the stored afterDateTime end, which a
    PUT may repeat even once it has passed."""
    if not isinstance(body, dict):
        raise Invalid("the request body must be a policy object")
    src: dict[str, Any] = body
    name = src.get("displayName")
    if name is not None and not isinstance(name, str):
        raise Invalid("displayName must be a string", target="displayName")
    catalog = f.obj(src.get("catalog"), "catalog").get("id")
    scope = f.enum(src.get("allowedTargetScope") or "notSpecified", SCOPES, "allowedTargetScope")
    automatic = _automatic(src.get("automaticRequestSettings"))
    doc = PolicyDocument(
        display_name=validation.display_name(name),
        description=f.text(src, "description", "", multiline=True),
        access_package_id=body_package_id(src),
        catalog_id=str(catalog) if catalog is not None else None,
        allowed_target_scope=scope,
        specific_allowed_targets=_targets(src, scope, automatic is not None),
        automatic_request_settings=automatic,
        expiration=expiration.parse(
            src.get("expiration"), "expiration", now=now, keep_end=keep_end
        ),
        requestor_settings=_requestor_settings(src.get("requestorSettings")),
        request_approval_settings=approval.parse(src.get("requestApprovalSettings")),
        review_settings=reviews.parse(src.get("reviewSettings")),
        questions=questions.parse(src),
        notification_settings={
            "isAssignmentNotificationDisabled": f.flag(
                f.obj(src.get("notificationSettings"), "notificationSettings"),
                "isAssignmentNotificationDisabled",
                "notificationSettings",
                False,
            )
        },
        custom_extension_stage_settings=_extension_settings(src),
    )
    _check_consistency(doc)
    return doc


# ---------------------------------------------------------------- who may request


def _targets(src: dict[str, Any], scope: str, automatic: bool) -> list[dict[str, Any]]:
    path = "specificAllowedTargets"
    limit = MAX_USERS_AND_GROUPS + MAX_CONNECTED_ORGANIZATIONS
    targets = s.parse_list(src, path, "", TARGET_TYPES, max_items=limit)
    if automatic and (
        scope != "specificDirectoryUsers"
        or len(targets) != 1
        or s.kind(targets[0]) != s.ATTRIBUTE_RULE_MEMBERS
    ):
        raise Invalid(
            f"an automatic assignment policy has allowedTargetScope specificDirectoryUsers and "
            f"exactly one {GRAPH}attributeRuleMembers target",
            target=path,
        )
    allowed = SPECIFIC_TARGETS.get(scope)
    if allowed is None:
        if targets:
            raise Invalid(f"{path} must be empty when allowedTargetScope is {scope}", target=path)
        return targets
    if not targets:
        raise Invalid(f"{path} must name at least one target for {scope}", target=path)
    for i, target in enumerate(targets):
        kind, where = s.kind(target), at(path, i)
        if kind not in allowed:
            crosses = {kind, scope} in (
                {s.CONNECTED_ORGANIZATION_MEMBERS, "specificDirectoryUsers"},
                {s.SINGLE_USER, "specificConnectedOrganizationUsers"},
                {s.GROUP_MEMBERS, "specificConnectedOrganizationUsers"},
            )
            reason = (
                "one policy cannot cover users in and outside the directory: use two policies"
                if crosses
                else f"{GRAPH}{kind} is not a target of {scope}"
            )
            raise Invalid(f"{where}: {reason}", target=where)
        if kind == s.ATTRIBUTE_RULE_MEMBERS:
            if not automatic:
                raise Invalid(
                    f"{where}: attributeRuleMembers targets are for automatic assignment "
                    "policies, which need automaticRequestSettings",
                    target=where,
                )
            _check_rule(str(target["membershipRule"]), at(where, "membershipRule"))
    named = sum(1 for t in targets if s.kind(t) in s.FALLBACKS)
    if named > MAX_USERS_AND_GROUPS:
        message = f"{path} names more than {MAX_USERS_AND_GROUPS} users and groups"
        raise Invalid(message, target=path)
    organizations = sum(1 for t in targets if s.kind(t) == s.CONNECTED_ORGANIZATION_MEMBERS)
    if organizations > MAX_CONNECTED_ORGANIZATIONS:
        message = f"{path} names more than {MAX_CONNECTED_ORGANIZATIONS} connected organizations"
        raise Invalid(message, target=path)
    return targets


def _check_rule(rule: str, where: str) -> None:
    try:
        rules.parse(rule)
    except Invalid as exc:
        raise Invalid(f"{where}: {exc.message}", target=where) from exc


def _automatic(value: Any) -> dict[str, Any] | None:
    path = "automaticRequestSettings"
    if value is None:
        return None
    src = f.obj(value, path)
    grace = src.get("gracePeriodBeforeAccessRemoval")
    out: dict[str, Any] = f.flags(src, path, dict.fromkeys(AUTOMATIC_FLAGS, True))
    out["gracePeriodBeforeAccessRemoval"] = None
    if grace is not None:
        where = at(path, "gracePeriodBeforeAccessRemoval")
        found = f.duration(grace, where)
        if found > MAX_GRACE:
            raise Invalid(f"{where} is longer than {MAX_GRACE.days} days", target=where)
        out["gracePeriodBeforeAccessRemoval"] = f.iso_duration(found)
    return out


# ---------------------------------------------------------------- lifecycle


def _requestor_settings(value: Any) -> dict[str, Any]:
    path = "requestorSettings"
    src = f.obj(value, path)
    out: dict[str, Any] = f.flags(src, path, dict.fromkeys(REQUESTOR_FLAGS, False))
    out["onBehalfRequestors"] = s.parse_list(src, "onBehalfRequestors", path, ON_BEHALF)
    out["acceptRequests"] = f.flag(src, "acceptRequests", path, True)
    on_behalf = [k for k in REQUESTOR_FLAGS if k.startswith("enableOnBehalf") and out[k]]
    if on_behalf and not out["onBehalfRequestors"]:
        where = at(path, "onBehalfRequestors")
        raise Invalid(
            f"{where} must name who may request on behalf ({on_behalf[0]} is on)", target=where
        )
    return out


# ---------------------------------------------------------------- custom extensions


def _extension_settings(src: dict[str, Any]) -> list[dict[str, Any]]:
    path = "customExtensionStageSettings"
    out: list[dict[str, Any]] = []
    for i, item in enumerate(f.items(src, path, "", max_items=MAX_EXTENSION_SETTINGS)):
        here = at(path, i)
        entry = f.obj(item, here)
        extension = f.obj(entry.get("customExtension"), at(here, "customExtension"))
        extension_id = f.text(
            extension, "id", at(here, "customExtension"), required=True, max_len=64
        )
        setting = {
            "id": (f.text(entry, "id", here, max_len=64) or "").strip() or new_id(),
            "stage": f.enum(entry.get("stage"), EXTENSION_STAGES, at(here, "stage")),
            "customExtension": {"id": str(extension_id).strip()},
        }
        if any(
            o["stage"] == setting["stage"] and o["customExtension"] == setting["customExtension"]
            for o in out
        ):
            raise Invalid(f"{here} repeats a stage and custom extension", target=here)
        out.append(setting)
    return out


# ---------------------------------------------------------------- the whole


def _check_consistency(doc: PolicyDocument) -> None:
    requestor, approval = doc.requestor_settings, doc.request_approval_settings
    self_add = "requestorSettings.enableTargetsToSelfAddAccess"
    if doc.allowed_target_scope == "notSpecified" and requestor["enableTargetsToSelfAddAccess"]:
        raise Invalid(
            f"{self_add}: a policy for direct assignments only (allowedTargetScope notSpecified) "
            "cannot take requests; choose who may request",
            target=self_add,
        )
    if doc.is_automatic:
        if requestor["enableTargetsToSelfAddAccess"]:
            raise Invalid(
                f"{self_add}: an automatic assignment policy takes no requests", target=self_add
            )
        if approval["isApprovalRequiredForAdd"] or approval["isApprovalRequiredForUpdate"]:
            where = "requestApprovalSettings.isApprovalRequiredForAdd"
            raise Invalid(f"{where}: automatic assignments are not approved", target=where)


# ---------------------------------------------------------------- rendering


def render(policy: AssignmentPolicy) -> dict[str, Any]:
    """Graph JSON of a policy, with ``@odata.type`` on every polymorphic value."""
    approval = copy.deepcopy(policy.request_approval_settings)
    for stage in approval.get("stages", []):
        stage["@odata.type"] = GRAPH + "accessPackageApprovalStage"
    extensions = copy.deepcopy(policy.custom_extension_stage_settings)
    for setting in extensions:
        request_stage = setting["stage"].startswith("assignmentRequest")
        kind = (
            "accessPackageAssignmentRequestWorkflowExtension"
            if request_stage
            else "accessPackageAssignmentWorkflowExtension"
        )
        setting["customExtension"] = {"@odata.type": GRAPH + kind, **setting["customExtension"]}
    return {
        "id": policy.id,
        "displayName": policy.display_name,
        "description": policy.description,
        "allowedTargetScope": policy.allowed_target_scope,
        "specificAllowedTargets": copy.deepcopy(policy.specific_allowed_targets),
        "automaticRequestSettings": copy.deepcopy(policy.automatic_request_settings),
        "expiration": copy.deepcopy(policy.expiration),
        "requestorSettings": copy.deepcopy(policy.requestor_settings),
        "requestApprovalSettings": approval,
        "reviewSettings": copy.deepcopy(policy.review_settings),
        "questions": copy.deepcopy(policy.questions),
        "notificationSettings": copy.deepcopy(policy.notification_settings),
        "customExtensionStageSettings": extensions,
        "createdDateTime": f.iso_instant(policy.created_at),
        "modifiedDateTime": f.iso_instant(policy.modified_at),
    }


def snapshot(policy: AssignmentPolicy) -> dict[str, Any]:
    """The stored settings by their Graph names (for audit before/after)."""
    return {
        "displayName": policy.display_name,
        "description": policy.description,
        "accessPackageId": policy.access_package_id,
        "allowedTargetScope": policy.allowed_target_scope,
        "specificAllowedTargets": policy.specific_allowed_targets,
        "automaticRequestSettings": policy.automatic_request_settings,
        "expiration": policy.expiration,
        "requestorSettings": policy.requestor_settings,
        "requestApprovalSettings": policy.request_approval_settings,
        "reviewSettings": policy.review_settings,
        "questions": policy.questions,
        "notificationSettings": policy.notification_settings,
        "customExtensionStageSettings": policy.custom_extension_stage_settings,
    }
