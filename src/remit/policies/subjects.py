"""subjectSet values (graph-api §A.4): parsed case-insensitively, stored in one normal form.

Every stored subjectSet carries its full ``@odata.type`` and every property of its type:

    singleUser {userId, description}          groupMembers {groupId, description}
    connectedOrganizationMembers {connectedOrganizationId, description}
    attributeRuleMembers {membershipRule, description}
    requestorManager {managerLevel}           targetManager {managerLevel}
    internalSponsors {} externalSponsors {} targetUserSponsors {}
    singleServicePrincipal {servicePrincipalId, description}
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from remit.errors import Invalid
from remit.models.vocabulary import GRAPH
from remit.policies import fields as f
from remit.policies.fields import at

SINGLE_USER = "singleUser"
GROUP_MEMBERS = "groupMembers"
CONNECTED_ORGANIZATION_MEMBERS = "connectedOrganizationMembers"
ATTRIBUTE_RULE_MEMBERS = "attributeRuleMembers"
REQUESTOR_MANAGER = "requestorManager"
TARGET_MANAGER = "targetManager"
INTERNAL_SPONSORS = "internalSponsors"
EXTERNAL_SPONSORS = "externalSponsors"
TARGET_USER_SPONSORS = "targetUserSponsors"
SINGLE_SERVICE_PRINCIPAL = "singleServicePrincipal"

# type → the property holding the id (or rule) it names, or None for the dynamic types
_KEYS: dict[str, str | None] = {
    SINGLE_USER: "userId",
    GROUP_MEMBERS: "groupId",
    CONNECTED_ORGANIZATION_MEMBERS: "connectedOrganizationId",
    ATTRIBUTE_RULE_MEMBERS: "membershipRule",
    SINGLE_SERVICE_PRINCIPAL: "servicePrincipalId",
    REQUESTOR_MANAGER: None,
    TARGET_MANAGER: None,
    INTERNAL_SPONSORS: None,
    EXTERNAL_SPONSORS: None,
    TARGET_USER_SPONSORS: None,
}
_BY_LOWER = {name.lower(): name for name in _KEYS}
MANAGERS = (REQUESTOR_MANAGER, TARGET_MANAGER)
# Approvers resolved when a stage starts; they may be missing, so they need fallbacks.
DYNAMIC_APPROVERS = (REQUESTOR_MANAGER, INTERNAL_SPONSORS, EXTERNAL_SPONSORS, TARGET_USER_SPONSORS)
APPROVERS = (SINGLE_USER, GROUP_MEMBERS, *DYNAMIC_APPROVERS)
FALLBACKS = (SINGLE_USER, GROUP_MEMBERS)
MAX_RULE_LENGTH = 3072
MAX_SUBJECTS = 100  # per list of approvers, reviewers or on-behalf requestors (not documented)


def kind(subject: dict[str, Any]) -> str:
    """The short type name of a stored subjectSet ("singleUser")."""
    return str(subject["@odata.type"]).removeprefix(GRAPH)


def subject_id(subject: dict[str, Any]) -> str | None:
    key = _KEYS[kind(subject)]
    return None if key is None else str(subject[key])


@dataclass(frozen=True)
class Reference:
    """A directory object a document names, to be checked for existence by the operation."""

    kind: str  # singleUser | groupMembers | connectedOrganizationMembers | singleServicePrincipal
    id: str
    target: str


def parse(value: Any, path: str, allowed: Collection[str]) -> dict[str, Any]:
    """One subjectSet in normal form; its type must be one of ``allowed``."""
    if value is None:
        raise Invalid(f"{path} must be a subjectSet", target=path)
    src = f.obj(value, path)
    name = _BY_LOWER.get(f.type_name(src.get("@odata.type"), path))
    if name is None or name not in allowed:
        where = at(path, "@odata.type")
        expected = ", ".join(GRAPH + a for a in allowed)
        raise Invalid(f"{where} must be one of {expected}", target=where)
    out: dict[str, Any] = {"@odata.type": GRAPH + name}
    key = _KEYS[name]
    if name in MANAGERS:
        out["managerLevel"] = f.integer(src, "managerLevel", path, default=1, low=1, high=2)
    elif key is not None:
        limit = MAX_RULE_LENGTH if name == ATTRIBUTE_RULE_MEMBERS else 64
        rule = name == ATTRIBUTE_RULE_MEMBERS  # a rule may span lines
        out[key] = f.text(src, key, path, required=True, max_len=limit, multiline=rule)
        if name != ATTRIBUTE_RULE_MEMBERS:
            out[key] = str(out[key]).strip()
        out["description"] = f.text(src, "description", path, multiline=True)
    return out


def parse_list(
    src: dict[str, Any],
    key: str,
    path: str,
    allowed: Collection[str],
    *,
    max_items: int = MAX_SUBJECTS,
) -> list[dict[str, Any]]:
    """A list of subjectSets, each at most once."""
    where = at(path, key)
    found = [
        parse(item, at(where, i), allowed)
        for i, item in enumerate(f.items(src, key, path, max_items=max_items))
    ]
    seen: set[tuple[str, str | None, int | None]] = set()
    for i, subject in enumerate(found):
        identity = (kind(subject), subject_id(subject), subject.get("managerLevel"))
        if identity in seen:
            raise Invalid(f"{at(where, i)} appears twice in {where}", target=at(where, i))
        seen.add(identity)
    return found


def references(subjects: Iterable[dict[str, Any]], path: str) -> list[Reference]:
    """The directory objects named by a list of subjectSets (rules and dynamic types name none)."""
    out: list[Reference] = []
    for i, subject in enumerate(subjects):
        name = kind(subject)
        key = _KEYS[name]
        if key is not None and name != ATTRIBUTE_RULE_MEMBERS:
            out.append(Reference(name, str(subject[key]), at(at(path, i), key)))
    return out
