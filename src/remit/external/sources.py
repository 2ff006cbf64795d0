"""identitySource values of a connected organization (graph-api §A.4, §A.5).

Each is parsed with its ``@odata.type`` (with or without ``#``/``microsoft.graph.``, any case)
and stored in one normal form: the full ``@odata.type`` and every property of its type. The
keys a source contributes to the matching index are lower-cased domain names and
``tenant:{tenantId}``; a social identity source has none.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from remit import validation
from remit.errors import Invalid
from remit.models.vocabulary import GRAPH

AAD_TENANT = "azureActiveDirectoryTenant"
CROSS_CLOUD_TENANT = "crossCloudAzureActiveDirectoryTenant"
DOMAIN = "domainIdentitySource"
FEDERATION = "externalDomainFederation"
SOCIAL = "socialIdentitySource"
SOCIAL_TYPES = ("facebook",)
MAX_SOURCES = 50  # per organization (not documented; enough for a tenant's verified domains)

_DOMAIN_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_CLOUD = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")


def domain_name(value: Any, target: str) -> str:
    """A DNS domain name, lower-cased ("fabrikam.example")."""
    text = value.strip().lower().rstrip(".") if isinstance(value, str) else ""
    if not _DOMAIN_NAME.match(text):
        raise Invalid(f"{target} must be a domain name such as fabrikam.example", target=target)
    return text


def _tenant_id(value: Any, target: str) -> str:
    if not isinstance(value, str) or not validation.is_uuid(value.strip()):
        raise Invalid(f"{target} must be a tenant id (a GUID)", target=target)
    return value.strip().lower()


def _name(src: dict[str, Any], target: str, *, default: str | None = None) -> str | None:
    value = src.get("displayName")
    if value is None:
        return default
    if not isinstance(value, str):
        raise Invalid(f"{target}.displayName must be a string", target=f"{target}.displayName")
    return validation.display_name(value, f"{target}.displayName") if value.strip() else default


def _aad(src: dict[str, Any], target: str) -> dict[str, Any]:
    tenant = _tenant_id(src.get("tenantId"), f"{target}.tenantId")
    return {"tenantId": tenant, "displayName": _name(src, target, default=tenant)}


def _cross_cloud(src: dict[str, Any], target: str) -> dict[str, Any]:
    tenant = _tenant_id(src.get("tenantId"), f"{target}.tenantId")
    cloud = src.get("cloudInstance")
    if not isinstance(cloud, str) or not _CLOUD.fullmatch(cloud.strip()):
        raise Invalid(
            f"{target}.cloudInstance must name a cloud, such as microsoftonline.us",
            target=f"{target}.cloudInstance",
        )
    return {
        "tenantId": tenant,
        "cloudInstance": cloud.strip(),
        "displayName": _name(src, target, default=tenant),
    }


def _domain(src: dict[str, Any], target: str) -> dict[str, Any]:
    name = domain_name(src.get("domainName"), f"{target}.domainName")
    return {"domainName": name, "displayName": _name(src, target, default=name)}


def _federation(src: dict[str, Any], target: str) -> dict[str, Any]:
    name = domain_name(src.get("domainName"), f"{target}.domainName")
    issuer = src.get("issuerUri")
    if (
        not isinstance(issuer, str)
        or len(issuer) > 2048
        or validation.control_character(issuer) is not None
        or not _URI.match(issuer.strip())
    ):
        raise Invalid(f"{target}.issuerUri must be an absolute URI", target=f"{target}.issuerUri")
    return {
        "domainName": name,
        "issuerUri": issuer.strip(),
        "displayName": _name(src, target, default=name),
    }


def _social(src: dict[str, Any], target: str) -> dict[str, Any]:
    kind = src.get("socialIdentitySourceType")
    found = next(
        (t for t in SOCIAL_TYPES if isinstance(kind, str) and kind.strip().lower() == t), None
    )
    if found is None:
        raise Invalid(
            f"{target}.socialIdentitySourceType must be one of: {', '.join(SOCIAL_TYPES)}",
            target=f"{target}.socialIdentitySourceType",
        )
    return {"displayName": _name(src, target, default=found), "socialIdentitySourceType": found}


_PARSERS: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    AAD_TENANT: _aad,
    CROSS_CLOUD_TENANT: _cross_cloud,
    DOMAIN: _domain,
    FEDERATION: _federation,
    SOCIAL: _social,
}
_BY_LOWER = {name.lower(): name for name in _PARSERS}


def parse_source(src: Any, target: str) -> dict[str, Any]:
    if not isinstance(src, dict):
        raise Invalid(f"{target} must be an object with an @odata.type", target=target)
    raw = src.get("@odata.type")
    short = (
        raw.strip().removeprefix("#").lower().removeprefix("microsoft.graph.")
        if (isinstance(raw, str))
        else ""
    )
    name = _BY_LOWER.get(short)
    if name is None:
        raise Invalid(
            f"{target}.@odata.type must be one of: " + ", ".join(GRAPH + n for n in _PARSERS),
            target=f"{target}.@odata.type",
        )
    return {"@odata.type": GRAPH + name, **_PARSERS[name](src, target)}


def parse_sources(value: Any) -> list[dict[str, Any]]:
    """``identitySources`` in normal form; duplicates (same type and key) are refused."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid("identitySources must be a list", target="identitySources")
    if len(value) > MAX_SOURCES:
        raise Invalid(
            f"an organization has at most {MAX_SOURCES} identity sources", target="identitySources"
        )
    parsed = [parse_source(s, f"identitySources[{i}]") for i, s in enumerate(value)]
    seen: set[tuple[str, ...]] = set()
    for i, source in enumerate(parsed):
        key = identity(source)
        if key in seen:
            raise Invalid(
                f"identitySources[{i}] repeats an identity source", target=f"identitySources[{i}]"
            )
        seen.add(key)
    return parsed


def identity(source: dict[str, Any]) -> tuple[str, ...]:
    """What makes two sources the same one."""
    return (
        source["@odata.type"],
        str(source.get("tenantId") or source.get("domainName") or ""),
        str(source.get("socialIdentitySourceType") or ""),
    )


def match_keys(sources: list[dict[str, Any]]) -> set[str]:
    """The matching-index keys of ``sources``: domains and ``tenant:{id}``."""
    keys: set[str] = set()
    for source in sources:
        if source.get("domainName"):
            keys.add(str(source["domainName"]))
        if source.get("tenantId"):
            keys.add(f"tenant:{source['tenantId']}")
    return keys
