"""Request bodies. Graph clients send camelCase; extra properties (``@odata.type``, read-only
fields echoed back) are ignored rather than rejected, as Graph does.

Every string a ``Body`` reads is one line without control characters, except the multi-line
fields (``MULTILINE``), which may hold tab and line breaks: the operations check their text the
same way (``remit.validation``); checking here as well keeps an id with a control character
away from the database, and names the field in the 400. The two lifecycle bodies at the end
(``AssignmentRequestCreate``, ``StageDecision``) are ``Lenient``: they keep the words in which
remit has always refused their shapes, and leave their texts to the operations."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from remit import validation
from remit.errors import Invalid
from remit.lifecycle.requests import request_type
from remit.models.vocabulary import CatalogState, RequestType

MULTILINE = frozenset({"description", "membershipRule"})


class Lenient(BaseModel):
    """A body that ignores what it does not know, and checks no text itself."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Body(Lenient):
    @model_validator(mode="after")
    def _no_control_characters(self) -> Body:
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            texts = value if isinstance(value, list) else [value]
            for text in texts:
                if not isinstance(text, str):
                    continue
                found = validation.control_character(text, multiline=name in MULTILINE)
                if found is not None:
                    where = info.alias or name
                    raise ValueError(f"{where} contains the control character U+{ord(found):04X}")
        return self

    def changes(self) -> dict[str, Any]:
        """Only what the caller sent, by its Graph name (PATCH semantics)."""
        return self.model_dump(by_alias=True, exclude_unset=True)


Name = Field(max_length=256)
Text = Field(default=None, max_length=4000)


class IdRef(Body):
    id: str = Field(max_length=64)


class CatalogCreate(Body):
    displayName: str = Name
    description: str | None = Text
    state: str = CatalogState.PUBLISHED
    isExternallyVisible: bool = True


class CatalogUpdate(Body):
    displayName: str | None = Field(default=None, max_length=256)
    description: str | None = Text
    state: str | None = None
    isExternallyVisible: bool | None = None
    catalogType: str | None = None


class RoleAssignmentCreate(Body):
    principalId: str = Field(max_length=64)
    roleDefinitionId: str = Field(max_length=64)
    appScopeId: str | None = Field(default=None, max_length=128)
    directoryScopeId: str | None = Field(default=None, max_length=128)


class ResourceRef(Body):
    id: str | None = Field(default=None, max_length=64)
    originId: str | None = Field(default=None, max_length=1024)
    originSystem: str | None = Field(default=None, max_length=64)
    displayName: str | None = Field(default=None, max_length=256)
    description: str | None = Text


class ResourceRequestCreate(Body):
    requestType: str = Field(max_length=32)
    resource: ResourceRef
    catalog: IdRef


class AccessPackageCreate(Body):
    displayName: str = Name
    description: str | None = Text
    isHidden: bool = False
    catalog: IdRef | None = None


class AccessPackageUpdate(Body):
    displayName: str | None = Field(default=None, max_length=256)
    description: str | None = Text
    isHidden: bool | None = None
    catalog: IdRef | None = None


class RoleResourceRef(Body):
    id: str | None = Field(default=None, max_length=64)


class RoleRef(Body):
    id: str | None = Field(default=None, max_length=64)
    originId: str | None = Field(default=None, max_length=128)
    originSystem: str | None = Field(default=None, max_length=64)
    displayName: str | None = Field(default=None, max_length=256)
    resource: RoleResourceRef | None = None


class ScopeRef(Body):
    id: str | None = Field(default=None, max_length=64)
    originId: str | None = Field(default=None, max_length=128)
    originSystem: str | None = Field(default=None, max_length=64)
    isRootScope: bool | None = None


class ResourceRoleScopeCreate(Body):
    role: RoleRef
    scope: ScopeRef | None = None


class Ref(Body):
    odata_id: str = Field(alias="@odata.id", max_length=2048)

    def object_id(self, *collections: str) -> str:
        """The id at the end of an ``@odata.id`` URL whose collection is one of ``collections``."""
        parts = [p for p in self.odata_id.split("?")[0].split("/") if p]
        usable = validation.usable_id(self.odata_id)
        if usable and len(parts) >= 2 and parts[-2] in (*collections, "directoryObjects"):
            return parts[-1]
        raise Invalid(f"@odata.id must end in /{collections[0]}/{{id}}", target="@odata.id")


class UserCreate(Body):
    userPrincipalName: str = Field(max_length=320)
    displayName: str = Name
    mail: str | None = Field(default=None, max_length=320)
    userType: str = "Member"
    accountEnabled: bool = True
    department: str | None = Field(default=None, max_length=128)
    jobTitle: str | None = Field(default=None, max_length=128)
    managerId: str | None = Field(default=None, max_length=64)


class UserUpdate(Body):
    displayName: str | None = Field(default=None, max_length=256)
    mail: str | None = Field(default=None, max_length=320)
    accountEnabled: bool | None = None
    department: str | None = Field(default=None, max_length=128)
    jobTitle: str | None = Field(default=None, max_length=128)


class GroupCreate(Body):
    displayName: str = Name
    description: str | None = Text
    mailNickname: str | None = Field(default=None, max_length=64)
    groupTypes: list[str] = Field(default_factory=list, max_length=4)
    securityEnabled: bool | None = None
    mailEnabled: bool | None = None
    isAssignableToRole: bool = False
    membershipRule: str | None = Field(default=None, max_length=2048)
    owners: list[str] = Field(default_factory=list, alias="owners@odata.bind", max_length=100)
    members: list[str] = Field(default_factory=list, alias="members@odata.bind", max_length=500)


class AppRoleBody(Body):
    displayName: str = Name
    value: str = Field(max_length=120)
    description: str | None = Text


class ApplicationCreate(Body):
    displayName: str = Name
    description: str | None = Text
    appRoles: list[AppRoleBody] = Field(default_factory=list, max_length=100)


class SiteCreate(Body):
    displayName: str = Name
    webUrl: str = Field(max_length=1024)
    description: str | None = Text
    roles: list[str] = Field(
        default_factory=lambda: ["Owners", "Members", "Visitors"], max_length=50
    )


class DirectoryRoleAssignmentCreate(Body):
    principalId: str = Field(max_length=64)
    roleDefinitionId: str = Field(max_length=64)
    directoryScopeId: str = Field(default="/", max_length=128)


def bound_id(url: str) -> str:
    """The object id at the end of an ``…@odata.bind`` URL."""
    return Ref.model_validate({"@odata.id": url}).object_id("users", "groups")


# ---------------------------------------------------------------- assignment requests, approvals


def _object(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object; otherwise the 400 a ``dict`` body gets from FastAPI."""
    if not isinstance(value, dict):
        raise PydanticCustomError("dict_type", "Input should be a valid dictionary")
    return value


def _pick(source: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` that holds a value (an empty string holds none)."""
    return next((source[n] for n in names if source.get(n) not in (None, "")), None)


def _nested_id(source: dict[str, Any], name: str, key: str = "id") -> Any:
    value = source.get(name)
    return value.get(key) if isinstance(value, dict) else None


class RequestTarget(Lenient):
    """Whom a request is for, when not the caller: a user by ``objectId``, or someone not yet
    in the directory by ``email``."""

    objectId: str | None = None
    email: str | None = None


class RequestedAssignment(Lenient):
    """The assignment a request adds (``accessPackageId``, ``assignmentPolicyId``, ``target``)
    or changes (``id``)."""

    id: str | None = None
    accessPackageId: str | None = None
    assignmentPolicyId: str | None = None
    target: RequestTarget = Field(default_factory=RequestTarget)


class AssignmentRequestCreate(Lenient):
    """graph-api §A.3.5, read as leniently as clients write it: ``assignment`` or
    ``accessPackageAssignment``; its ids flat (camelCase, or snake_case as the Graph SDK's
    additional_data sends them: ``access_package_id``, ``assignment_policy_id``, ``target_id``)
    or as navigations (``accessPackage: {id}``, ``assignmentPolicy: {id}``,
    ``target: {objectId, email}``, or ``targetId``)."""

    requestType: RequestType
    assignment: RequestedAssignment = Field(default_factory=RequestedAssignment)
    justification: str | None = None
    answers: list[Any] | None = None
    schedule: dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, value: Any) -> dict[str, Any]:
        # A wrong shape is refused in the words, and the order, of the reader this replaced;
        # the request type last, by the lifecycle's own parser (as ``requests.submit`` did).
        body = _object(value)
        raw = body.get("assignment") or body.get("accessPackageAssignment") or {}
        if not isinstance(raw, dict):
            raise Invalid("assignment must be an object", target="assignment")
        for name, kind, what in (
            ("answers", list, "a list"),
            ("schedule", dict, "an object"),
            ("justification", str, "a string"),
        ):
            if body.get(name) is not None and not isinstance(body[name], kind):
                raise Invalid(f"{name} must be {what}", target=name)
        target: dict[str, Any] = raw["target"] if isinstance(raw.get("target"), dict) else {}
        ids = {
            "package_id": _pick(raw, "accessPackageId", "access_package_id")
            or _nested_id(raw, "accessPackage"),
            "policy_id": _pick(raw, "assignmentPolicyId", "assignment_policy_id")
            or _nested_id(raw, "assignmentPolicy"),
            "target_id": _pick(raw, "targetId", "target_id") or target.get("objectId") or None,
            "target_email": target.get("email") or None,
            "assignment_id": raw.get("id"),
        }
        for key, found in ids.items():
            if found is not None and (not isinstance(found, str) or len(found) > 320):
                raise Invalid(f"{key} must be a string", target=key)
        return {
            "requestType": request_type(body.get("requestType")),
            "assignment": {
                "id": ids["assignment_id"],
                "accessPackageId": ids["package_id"],
                "assignmentPolicyId": ids["policy_id"],
                "target": {"objectId": ids["target_id"], "email": ids["target_email"]},
            },
            "justification": body.get("justification"),
            "answers": body.get("answers"),
            "schedule": body.get("schedule"),
        }


class StageDecision(Lenient):
    """An approver's decision on a stage (graph-api §A.3.7): ``reviewResult`` Approve or Deny
    (the approval refuses any other word), with an optional ``justification``."""

    reviewResult: str
    justification: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="before")
    @classmethod
    def _in_remits_words(cls, value: Any) -> dict[str, Any]:
        body = _object(value)
        if not isinstance(body.get("reviewResult"), str):
            raise Invalid("reviewResult (Approve or Deny) is required", target="reviewResult")
        justification = body.get("justification")
        if justification is not None and (
            not isinstance(justification, str) or len(justification) > 4000
        ):
            raise Invalid(
                "justification must be a string of at most 4,000 characters",
                target="justification",
            )
        return body
