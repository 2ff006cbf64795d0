"""Request bodies. Graph clients send camelCase; extra properties (``@odata.type``, read-only
fields echoed back) are ignored rather than rejected, as Graph does.

Every string a body model reads is one line without control characters, except the multi-line
fields (``MULTILINE``), which may hold tab and line breaks: the operations check their text the
same way (``remit.validation``); checking here as well keeps an id with a control character
away from the database, and names the field in the 400."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from remit import validation
from remit.errors import Invalid

MULTILINE = frozenset({"description", "membershipRule"})


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

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
    state: str = "published"
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
