"""R4: schemathesis over remit's OpenAPI document, as three personas (QUALITY.md R4).

One test per (persona, operation) of the document served at ``/remit/openapi.json``: Hana (an
Identity Governance Administrator), Mamta (owner of the catalog she created) and Nora (a plain
member who can only request). Each draws ``REMIT_FUZZ_EXAMPLES`` cases (default 100) from
schemathesis's positive and negative strategies against a freshly seeded tenant. Many positive
cases get real ids in their path parameters and id-valued body fields, and well-formed but
hostile OData query options, so that the handlers run past "not found" and "cannot parse"; an
administrator's reads must reach a 2xx at least once, or the seed has stopped doing its job.

Every response must be below 500; every 4xx must be Graph error JSON with an application/json
Content-Type; a body on a 2xx must be JSON too (the SDK silently drops anything else);
schemathesis's negative data must be refused.

Hypothesis runs derandomized (same cases every run) without an example database.
"""

from __future__ import annotations

import copy
import os
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import negative_data_rejection

from remit.api.app import create_app
from remit.authz.roles import EM_ROLES, PACKAGE_MANAGER, DirectoryRole
from remit.authz.tasks import Task
from remit.db import Database
from remit.settings import Settings
from tests.factories import EM, RM, Tenant

EXAMPLES = int(os.environ.get("REMIT_FUZZ_EXAMPLES", "100"))
PERSONAS = {"admin": "hana", "owner": "mamta", "requestor": "nobody"}
OPENAPI = "/remit/openapi.json"
GRAPH = "https://graph.microsoft.com/v1.0"


@cache
def load_schema() -> Any:
    """The document as a throwaway app serves it; tests then call their own seeded app."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database("sqlite://")  # never connected: serving the document needs no database
        app = create_app(Settings(data_dir=Path(tmp)), db=db)
        schema = schemathesis.openapi.from_asgi(OPENAPI, app)
        db.dispose()
    return schema


OPERATIONS = [
    pytest.param(label, id=label.replace("/v1.0/identityGovernance/entitlementManagement", "EM"))
    for label in (result.ok().label for result in load_schema().get_all_operations())
]


# ---------------------------------------------------------------- the seeded tenant


@dataclass
class Seed:
    """Real values: by path-parameter name, by query-parameter name, and for body fields by
    ``parent.key`` (``.key`` at the top level) or by ``key``. A pool may hold whole objects."""

    path: dict[str, list[str]]
    query: dict[str, list[str]]
    body: dict[str, list[Any]]


def _ids(t: Tenant, alias: str, path: str, **params: str) -> list[str]:
    return [str(item["id"]) for item in _items(t, alias, path, **params)]


def _items(t: Tenant, alias: str, path: str, **params: str) -> list[dict[str, Any]]:
    r = t.get(alias, path, **params)
    assert r.status_code == 200, r.text
    return list(r.json()["value"])


def seed(t: Tenant) -> Seed:
    """Two department catalogs with resources, packages, a role scope and incompatibilities."""
    marketing = t.create_catalog("mamta", "Marketing")
    finance = t.create_catalog("mark", "Finance")
    for alias, catalog, system, key in (
        ("mamta", marketing, "AadGroup", "marketing"),
        ("mamta", marketing, "AadApplication", "planner"),
        ("mamta", marketing, "SharePointOnline", "mksite"),
        ("mark", finance, "AadGroup", "finance"),
    ):
        r = t.add_resource(alias, catalog, system, t.ids[key])
        assert r.status_code == 201, r.text
    assert t.assign_role("mamta", "lena", PACKAGE_MANAGER.id, marketing).status_code == 201
    packages = []
    for alias, catalog, name in (
        ("mamta", marketing, "Campaign 2027"),
        ("mamta", marketing, "Brand refresh"),
        ("mark", finance, "Budget review"),
    ):
        r = t.create_package(alias, catalog, name)
        assert r.status_code == 201, r.text
        packages.append(str(r.json()["id"]))
    roles = _items(t, "hana", f"{EM}/catalogs/{marketing}/resourceRoles", **{"$expand": "resource"})
    roles += _items(t, "hana", f"{EM}/catalogs/{finance}/resourceRoles", **{"$expand": "resource"})
    role_refs = [
        {"id": r["id"], "originId": r["originId"], "originSystem": r["originSystem"],
         "resource": {"id": r["resource"]["id"]}}
        for r in roles
    ]  # fmt: skip
    scope_refs = [
        {"originId": r["resource"]["originId"], "originSystem": r["originSystem"],
         "isRootScope": True}
        for r in roles
    ]  # fmt: skip
    member = next(r for r in role_refs if r["originId"] == f"Member_{t.ids['marketing']}")
    r = t.post(
        "mamta",
        f"{EM}/accessPackages/{packages[0]}/resourceRoleScopes",
        {"role": member, "scope": scope_refs[role_refs.index(member)]},
    )
    assert r.status_code == 201, r.text
    incompatible = f"{GRAPH}/identityGovernance/entitlementManagement/accessPackages/"
    r = t.post(
        "mamta",
        f"{EM}/accessPackages/{packages[0]}/incompatibleAccessPackages/$ref",
        {"@odata.id": incompatible + packages[1]},
    )
    assert r.status_code == 204, r.text
    r = t.post(
        "mamta",
        f"{EM}/accessPackages/{packages[0]}/incompatibleGroups/$ref",
        {"@odata.id": f"{GRAPH}/groups/{t.ids['campaigns']}"},
    )
    assert r.status_code == 204, r.text
    r = t.call(
        "admin",
        "PUT",
        f"/v1.0/users/{t.ids['mamta']}/manager/$ref",
        {"@odata.id": f"{GRAPH}/users/{t.ids['hana']}"},
    )
    assert r.status_code == 204, r.text

    general = [c for c in _ids(t, "hana", f"{EM}/catalogs") if c not in (marketing, finance)]
    catalogs = [marketing, finance, *general]
    resources = _ids(t, "hana", f"{EM}/catalogs/{marketing}/resources")
    resources += _ids(t, "hana", f"{EM}/catalogs/{finance}/resources")
    scopes = _ids(t, "hana", f"{EM}/catalogs/{marketing}/resourceScopes")
    rrs = _ids(t, "hana", f"{EM}/accessPackages/{packages[0]}/resourceRoleScopes")
    em_assignments = _ids(t, "hana", f"{RM}/roleAssignments")
    dir_assignments = _ids(t, "hana", "/v1.0/roleManagement/directory/roleAssignments")
    requests = _ids(t, "hana", f"{EM}/resourceRequests")
    events = _ids(t, "hana", "/v1.0/auditLogs/directoryAudits", **{"$top": "5"})
    events += _ids(
        t, "hana", "/v1.0/auditLogs/directoryAudits", **{"$filter": f"catalogId eq '{marketing}'"}
    )
    users = [t.ids[a] for a in ("mamta", "hana", "lena", "nobody", "mark", "admin")]
    groups = [t.ids[g] for g in ("marketing", "campaigns", "finance", "managers", "tier0")]
    apps = [t.ids[a] for a in ("planner", "brand", "ledger")]
    sites = [t.ids[s] for s in ("mksite", "finsite")]
    upns = ["mamta@contoso.example", "NOBODY@contoso.example", "ghost@contoso.example"]
    path = {
        "catalog_id": catalogs,
        "package_id": packages,
        "other_id": packages[::-1],
        "resource_id": resources,
        "rrs_id": rrs,
        "request_id": requests,
        "assignment_id": em_assignments + dir_assignments,
        "role_id": list(EM_ROLES),
        "event_id": events,
        "user_id": users + upns,
        "member_id": users + groups,
        "owner_id": users,
        "group_id": groups,
        "app_id": apps,
        "site_id": sites,
    }
    query = {
        "task": [task.value for task in Task] + ["catalog:nonsense"],
        "user": upns + users,
        "catalog": catalogs,
    }
    every_id = [i for pool in path.values() for i in pool]
    catalog_scopes = ["/", *(f"/AccessPackageCatalog/{c}" for c in catalogs)]
    urls = [f"{GRAPH}/users/{u}" for u in users] + [f"{GRAPH}/groups/{g}" for g in groups]
    urls += [incompatible + p for p in packages]
    resource_refs: list[dict[str, Any]] = [
        *({"originId": g, "originSystem": "AadGroup"} for g in groups),
        *({"originId": a, "originSystem": "AadApplication"} for a in apps),
        *({"originId": s, "originSystem": "SharePointOnline"} for s in sites),
        *({"id": r} for r in resources),
        {"originId": apps[0], "originSystem": "AadGroup"},
    ]
    body: dict[str, list[Any]] = {
        ".resource": resource_refs,
        ".role": role_refs,
        ".scope": scope_refs + [{"id": s} for s in scopes],
        ".catalog": [{"id": c} for c in catalogs],
        "id": every_id,
        "principalId": users + groups,
        "roleDefinitionId": list(EM_ROLES) + [r.value for r in DirectoryRole],
        "appScopeId": catalog_scopes,
        "directoryScopeId": catalog_scopes,
        "requestType": ["adminAdd", "adminRemove", "AdminAdd", "adminUpdate"],
        "state": ["published", "unpublished", "Published"],
        "managerId": users,
        "@odata.id": urls,
        "owners@odata.bind": [urls[:2], urls[-1:]],
        "members@odata.bind": [urls[:4], urls[-2:]],
        "userPrincipalName": upns,
    }
    return Seed(path, query, body)


# ---------------------------------------------------------------- hostile but well-formed OData

PROPERTIES = [
    "id", "displayName", "description", "state", "catalogType", "isExternallyVisible",
    "isHidden", "createdDateTime", "modifiedDateTime", "originId", "originSystem",
    "resource/id", "catalog/id", "role/id", "scope/id", "principalId", "roleDefinitionId",
    "appScopeId", "userPrincipalName", "accountEnabled", "isRootScope", "requestType",
    "activityDateTime", "initiatedBy/user/id", "catalogId", "mail", "department",
    "nonexistent", "resource/displayName",
]  # fmt: skip
LITERALS = [
    "'Marketing'", "'O''Brien'", "''", "'%'", "'_'", "1", "-1", "0", "1.5", "1e308",
    "99999999999999999999999", "true", "false", "null", "2026-01-01T00:00:00Z", "2026-01-01",
    "'2026-01-01T00:00:00Z'", "00000000-0000-0000-0000-000000000000", "duration'P1D'",
    "('a','b')", "('published')", "'published'", "'PUBLISHED'", "'AadGroup'", "'x\u00e9\u4e2d'",
]  # fmt: skip


@st.composite
def odata_filter(draw: st.DrawFn) -> str:
    prop = st.sampled_from(PROPERTIES)
    literal = st.sampled_from(LITERALS)
    comparison = st.builds(
        lambda p, op, v: f"{p} {op} {v}",
        prop,
        st.sampled_from(["eq", "ne", "gt", "ge", "lt", "le", "in", "has"]),
        literal,
    )
    function = st.builds(
        lambda f, p, v: f"{f}({p},{v})",
        st.sampled_from(["contains", "startswith", "endswith", "indexof", "concat"]),
        st.one_of(prop, st.builds(lambda p: f"tolower({p})", prop)),
        literal,
    )
    unary = st.builds(
        lambda f, p, v: f"{f}({p}) eq {v}",
        st.sampled_from(["tolower", "toupper", "length", "trim", "year", "day", "date"]),
        prop,
        literal,
    )
    atom = st.one_of(comparison, function, unary, st.sampled_from(["true", "not", "()", "eq"]))
    tree = st.recursive(
        atom,
        lambda inner: st.one_of(
            st.builds(lambda a, b: f"{a} and {b}", inner, inner),
            st.builds(lambda a, b: f"({a}) or ({b})", inner, inner),
            st.builds(lambda a: f"not ({a})", inner),
        ),
        max_leaves=4,
    )
    return draw(tree)


def odata_query() -> st.SearchStrategy[dict[str, str]]:
    names = st.lists(st.sampled_from(PROPERTIES), min_size=1, max_size=3)
    expand_items = st.sampled_from([
        "accessPackages", "roles", "scopes", "resource", "catalog", "principal",
        "roleDefinition", "resourceRoleScopes($expand=role,scope)", "resourceRoleScopes",
        "incompatibleAccessPackages", "incompatibleGroups", "accessPackagesIncompatibleWith",
        "role($select=id)", "nope", "roles(", "scopes)", "a($expand=b($expand=c))",
    ])  # fmt: skip
    options: dict[str, st.SearchStrategy[str]] = {
        "$filter": odata_filter(),
        "$select": names.map(",".join),
        "$expand": st.lists(expand_items, min_size=1, max_size=3).map(",".join),
        "$orderby": st.lists(
            st.builds(lambda p, d: f"{p}{d}", st.sampled_from(PROPERTIES),
                      st.sampled_from(["", " asc", " desc", " sideways"])),
            min_size=1, max_size=2,
        ).map(",".join),
        "$top": st.sampled_from(["0", "1", "2", "999999999", "-1", "1.5", "x"]),
        "$skip": st.sampled_from(["0", "1", "5", "999999999", "-3"]),
        "$skiptoken": st.sampled_from(
            ["IiI", "MQ", "bnVsbA", "W10", "eyJhIjogMX0", "%%%", "ImZmZmZmZmZmIg", "e30"]
        ),
        "$count": st.sampled_from(["true", "false", "TRUE", "yes"]),
    }  # fmt: skip
    others = {k: v for k, v in options.items() if k != "$filter"}
    return st.one_of(
        st.fixed_dictionaries({"$filter": options["$filter"]}, optional=others),
        st.fixed_dictionaries({}, optional=options),
    )


# ---------------------------------------------------------------- real ids into positive cases


def _replace_ids(draw: st.DrawFn, value: Any, seed: Seed, parent: str = "") -> Any:
    """Every id-valued field (by ``parent.key``, else by ``key``) gets a value from the seed."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            pool = seed.body.get(f"{parent}.{key}") or seed.body.get(key)
            if pool:
                out[key] = copy.deepcopy(draw(st.sampled_from(pool)))
            else:
                out[key] = _replace_ids(draw, item, seed, key)
        return out
    if isinstance(value, list):
        return [_replace_ids(draw, item, seed, parent) for item in value]
    return value


def cases(operation: Any, seed: Seed) -> st.SearchStrategy[Any]:
    """Positive cases made to reach the handler, then schemathesis's own positive and negative.

    A reaching case is a generated positive one with real ids in its path, body and known query
    parameters, and either no OData options (random strings mostly stop at the parser) or
    well-formed hostile ones.
    """
    generated = operation.as_strategy(GenerationMode.POSITIVE)

    @st.composite
    def reaching(draw: st.DrawFn, odata: bool) -> Any:
        case = draw(generated)
        for name in list(case.path_parameters or {}):
            if name in seed.path:
                case.path_parameters[name] = draw(st.sampled_from(seed.path[name]))
        if isinstance(case.body, dict):
            case.body = _replace_ids(draw, case.body, seed)
        query = {
            k: draw(st.sampled_from(seed.query[k])) for k in case.query or {} if k in seed.query
        }
        case.query = {**query, **draw(odata_query())} if odata else query
        return case

    branches = [reaching(odata=False)]
    if operation.method.upper() == "GET" and operation.query:
        branches.append(reaching(odata=True))
    branches += [generated, operation.as_strategy(GenerationMode.NEGATIVE)]
    return st.one_of(branches)


# ---------------------------------------------------------------- checks


def graph_shaped(_ctx: Any, response: Any, case: Any) -> bool | None:
    """4xx: Graph error JSON. 2xx: a body, when there is one, is JSON."""
    status = response.status_code
    content_type = ", ".join(response.headers.get("content-type", []))
    if 400 <= status < 500:
        assert content_type.startswith("application/json"), f"{status} with {content_type!r}"
        body = response.json()
        assert isinstance(body, dict), body
        assert set(body) == {"error"}, body
        error = body["error"]
        assert isinstance(error.get("code"), str), error
        assert error["code"], error
        assert isinstance(error.get("message"), str), error
        assert isinstance(error.get("innerError"), dict), error
        assert {"date", "request-id"} <= set(error["innerError"]), error
        if status == 401:
            assert response.headers.get("www-authenticate"), response.headers
    elif 200 <= status < 300 and status != 204 and case.method.upper() != "HEAD":
        assert content_type.startswith("application/json"), f"{status} with {content_type!r}"
        assert isinstance(response.json(), dict)
    if status == 204:
        assert not response.content, response.content
    return None


CHECKS = [not_a_server_error, negative_data_rejection, graph_shaped]


# ---------------------------------------------------------------- the tests


@pytest.mark.slow
@pytest.mark.parametrize("label", OPERATIONS)
@pytest.mark.parametrize("persona", list(PERSONAS))
def test_operation_never_crashes_and_answers_in_graph_shape(
    persona: str, label: str, tenant: Tenant
) -> None:
    seeded = seed(tenant)
    operation = load_schema().find_operation_by_label(label)
    assert operation is not None
    app = tenant.client.app
    headers = tenant.headers(PERSONAS[persona])
    statuses: dict[int, int] = {}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=True,
        # One seeded tenant serves all examples; too_slow/filter_too_much do not apply here.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )
    @given(case=cases(operation, seeded))
    def run(case: Any) -> None:
        response = case.call(app=app, headers=headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()
    assert statuses
    if persona == "admin" and operation.method.upper() == "GET" and EXAMPLES >= 20:
        # The seed must keep the fuzz deep: an administrator reads every kind of object.
        assert any(200 <= status < 300 for status in statuses), sorted(statuses.items())


def test_the_fuzzed_document_is_the_one_the_app_serves(tenant: Tenant) -> None:
    served = tenant.client.get(OPENAPI)
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("application/json")
    labels = {
        f"{method.upper()} {path}"
        for path, methods in served.json()["paths"].items()
        for method in methods
    }
    assert labels == {param.values[0] for param in OPERATIONS}


# The fuzz above holds the line on malformed $filter; these hold it on well-formed ones, whose
# meaning must survive the type check (same answers on both engines).
FILTERS = [
    ("contains(tolower(displayName),'mark')", {"Marketing", "Mark's_100%"}),
    ("startswith(displayName,'Mark')", {"Marketing", "Mark's_100%"}),
    ("contains(displayName,'_100%')", {"Mark's_100%"}),  # LIKE wildcards are literal
    ("state eq 'Unpublished'", {"Marketing"}),
    ("state in ('unpublished','x')", {"Marketing"}),
    ("state eq 'unpublished' or displayName eq 'General'", {"Marketing", "General"}),
    ("createdDateTime ge 2020-01-01T00:00:00Z", {"General", "Marketing", "Mark's_100%"}),
    ("createdDateTime ge 2020-01-01", {"General", "Marketing", "Mark's_100%"}),
    ("createdDateTime lt 2020-01-01T00:00:00+02:00", set()),
    ("isExternallyVisible eq true and not (state eq 'published')", {"Marketing"}),
    ("length(displayName) eq 7 and toupper(displayName) eq 'GENERAL'", {"General"}),
    ("description eq null", set()),
]
REFUSED = [
    "displayName eq 1",  # text against a number: PostgreSQL would raise, SQLite would coerce
    "createdDateTime eq 'yesterday'",
    "contains(displayName, description)",
    "year(createdDateTime) eq 2026",
    "indexof(displayName,'a') eq 1",
    "displayName add 1 eq 2",
    "displayName",
    "not displayName",
    "isHidden and true",
    "description gt 99999999999999999999999",
]


@pytest.mark.parametrize(("expression", "expected"), FILTERS)
def test_well_formed_filters_keep_their_meaning(
    expression: str, expected: set[str], tenant: Tenant
) -> None:
    marketing = tenant.create_catalog("hana", "Marketing")
    tenant.create_catalog("hana", "Mark's_100%")
    r = tenant.call("hana", "PATCH", f"{EM}/catalogs/{marketing}", {"state": "unpublished"})
    assert r.status_code == 204, r.text
    r = tenant.get("hana", f"{EM}/catalogs", **{"$filter": expression})
    assert r.status_code == 200, r.text
    assert {c["displayName"] for c in r.json()["value"]} == expected


@pytest.mark.parametrize("expression", REFUSED)
def test_filters_outside_the_supported_subset_are_a_400(expression: str, tenant: Tenant) -> None:
    r = tenant.get("hana", f"{EM}/catalogs", **{"$filter": expression})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "invalidRequest"
    assert r.json()["error"]["target"] == "$filter"
