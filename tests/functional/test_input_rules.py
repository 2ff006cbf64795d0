"""Input rules of issue #11 (points 4, 5, 8): control characters, mail addresses, display names.

Single-line text (names, ids, UPNs, mail, origin ids) holds no control character at all;
multi-line text (descriptions, question text, rules) may hold tab and line breaks but nothing
else; a mail address is one real address; a display name has something visible and no
bidirectional control. Each refusal is a 400 in Graph's error shape that changes nothing, the
same on both engines (PostgreSQL cannot store a NUL, SQLite would). Through the ASGI app, and
through the operations themselves for NUL (the CLI's path, below any HTTP edge).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import select

from remit import validation
from remit.authz.actor import system_actor
from remit.catalogs import operations as catalogs
from remit.catalogs import queries as catalog_queries
from remit.context import Ctx
from remit.directory import operations as d
from remit.directory import queries as directory_queries
from remit.errors import Invalid, NotFound
from remit.external import guests, orgs
from remit.external import queries as external_queries
from remit.listing import F, parse_filter
from remit.models.catalogs import Catalog
from remit.models.directory import Group, User
from remit.packages import operations as packages
from remit.policies import document
from tests.factories import EM, Tenant
from tests.fuzz_lifecycle import request_policy
from tests.matrix_support import fingerprint

GRAPH = "https://graph.microsoft.com/v1.0"
# Let through by the HTTP edge (every field-agnostic check stops at C0 other than these) ...
LINE_BREAKS = ["\t", "\n", "\r", "\r\n"]
# ... and refused by it as well as by the domain.
HARD = ["\x00", "\x01", "\x1b", "\x7f"]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]
INVISIBLE = [
    "\u200b",
    "\u2060\ufeff",
    "\u3164",
    "\u115f\u1160",
    "\uffa0",
    "\u2800",
    "\u180e",
    " \u200b\u00a0",
    "\u17b4",
    "\ufe0f",
]
BAD_MAILS = [
    "x@contoso.example\r\nBcc: leak@evil.example",
    "x@contoso.example\nBcc: leak@evil.example",
    "a@contoso.example, b@contoso.example",
    "a@contoso.example;b@contoso.example",
    "a@contoso.example\x00",
    "a\x00@contoso.example",
    "a@b@c",
    "a b@contoso.example",
    "Ann <ann@contoso.example>",
    "ann",
    "ann@",
    "@contoso.example",
    "ann@localhost",
    "ann@[127.0.0.1]",
    "ann@contoso.test",
    "\u00e4nn@contoso.example",  # needs SMTPUTF8, which the mail builder does not speak
]


def graph_400(r: httpx.Response) -> dict[str, Any]:
    """A 400 in Graph's error shape (never a 500, never a bare framework error)."""
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"]
    assert isinstance(body["error"]["message"], str)
    assert {"date", "request-id"} <= set(body["error"]["innerError"])
    return dict(body["error"])


def refused(t: Tenant, alias: str, method: str, path: str, body: Any) -> dict[str, Any]:
    """The call is a Graph 400 and leaves every table as it was."""
    before = fingerprint(t.db)
    error = graph_400(t.call(alias, method, path, body))
    assert fingerprint(t.db) == before
    return error


def mark(ch: str, where: str = "middle") -> str:
    """A plain name with ``ch`` in it."""
    return {"middle": f"Sales{ch}team", "end": f"Sales team{ch}", "start": f"{ch}Sales team"}[where]


@contextmanager
def as_operator(t: Tenant) -> Iterator[Ctx]:
    with t.db.write() as s:
        yield Ctx(s, system_actor("test"), t.clock())


# ---------------------------------------------------------------- single-line names, every kind


def _create_bodies(t: Tenant, catalog: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """One valid creation body per kind of object: (alias, path, body)."""
    return {
        "user": (
            "admin",
            "/v1.0/users",
            {"userPrincipalName": "newbie@contoso.example", "displayName": "New"},
        ),
        "group": ("admin", "/v1.0/groups", {"displayName": "New", "mailNickname": "new"}),
        "application": ("admin", "/v1.0/applications", {"displayName": "New"}),
        "site": (
            "admin",
            "/v1.0/sites",
            {"displayName": "New", "webUrl": "https://sites.contoso.example/new"},
        ),
        "catalog": ("hana", f"{EM}/catalogs", {"displayName": "New"}),
        "package": (
            "hana",
            f"{EM}/accessPackages",
            {"displayName": "New", "catalog": {"id": catalog}},
        ),
        "organization": ("hana", f"{EM}/connectedOrganizations", {"displayName": "New"}),
    }


KINDS = ["user", "group", "application", "site", "catalog", "package", "organization"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "name",
    [mark(ch, where) for ch in LINE_BREAKS + HARD for where in ("middle", "end")]
    + [f"Sales{c}team" for c in BIDI]
    + INVISIBLE,
    ids=repr,
)
def test_a_display_name_with_a_control_a_bidi_control_or_nothing_visible_is_a_400(
    tenant: Tenant, kind: str, name: str
) -> None:
    catalog = tenant.create_catalog("hana", "Host")
    alias, path, body = _create_bodies(tenant, catalog)[kind]
    error = refused(tenant, alias, "POST", path, {**body, "displayName": name})
    if not any(ch in name for ch in HARD):  # those the HTTP edge may refuse first
        assert "displayName" in error["message"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_same_bodies_with_a_plain_name_are_created(tenant: Tenant, kind: str) -> None:
    """The control for the test above: only the name made them 400s."""
    catalog = tenant.create_catalog("hana", "Host")
    alias, path, body = _create_bodies(tenant, catalog)[kind]
    r = tenant.call(
        alias, "POST", path, {**body, "displayName": "Sales team \u05e9\u05dc\u05d5\u05dd"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["displayName"] == "Sales team \u05e9\u05dc\u05d5\u05dd"  # RTL text is fine


@pytest.mark.parametrize("ch", LINE_BREAKS + HARD + BIDI[:1], ids=repr)
def test_renaming_to_a_bad_name_is_a_400_and_keeps_the_old_one(tenant: Tenant, ch: str) -> None:
    catalog = tenant.create_catalog("hana", "Marketing")
    r = tenant.create_package("hana", catalog, "Campaign")
    package = r.json()["id"]
    for path in (f"/v1.0/users/{tenant.ids['lena']}",):
        refused(tenant, "admin", "PATCH", path, {"displayName": mark(ch)})
    refused(tenant, "hana", "PATCH", f"{EM}/catalogs/{catalog}", {"displayName": mark(ch)})
    refused(tenant, "hana", "PATCH", f"{EM}/accessPackages/{package}", {"displayName": mark(ch)})
    with tenant.db.write() as s:
        assert s.get(Catalog, catalog).display_name == "Marketing"  # type: ignore[union-attr]


# ---------------------------------------------------------------- other single-line fields


@pytest.mark.parametrize("ch", ["\t", "\n", "\x00"], ids=repr)
@pytest.mark.parametrize(
    ("alias", "path", "body"),
    [
        ("admin", "/v1.0/users", {"userPrincipalName": "n{c}@contoso.example", "displayName": "N"}),
        ("admin", "/v1.0/users", {"userPrincipalName": "n@contoso.example{c}", "displayName": "N"}),
        (
            "admin",
            "/v1.0/users",
            {"userPrincipalName": "n@contoso.example", "displayName": "N", "department": "R{c}D"},
        ),
        (
            "admin",
            "/v1.0/users",
            {"userPrincipalName": "n@contoso.example", "displayName": "N", "jobTitle": "{c}CEO"},
        ),
        ("admin", "/v1.0/groups", {"displayName": "N", "mailNickname": "n{c}n"}),
        (
            "admin",
            "/v1.0/sites",
            {"displayName": "N", "webUrl": "https://sites.contoso.example/n{c}"},
        ),
        (
            "admin",
            "/v1.0/sites",
            {"displayName": "N", "webUrl": "https://x.example/n", "roles": ["A{c}"]},
        ),
        (
            "admin",
            "/v1.0/applications",
            {"displayName": "N", "appRoles": [{"displayName": "R", "value": "r{c}"}]},
        ),
    ],
)
def test_a_control_in_a_single_line_field_is_a_400(
    tenant: Tenant, ch: str, alias: str, path: str, body: dict[str, Any]
) -> None:
    def fill(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("{c}", ch)
        if isinstance(value, list):
            return [fill(v) for v in value]
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    refused(tenant, alias, "POST", path, fill(body))


@pytest.mark.parametrize("ch", ["\t", "\n", "\x00"], ids=repr)
def test_a_control_in_an_id_of_a_body_is_a_400_not_a_database_error(
    tenant: Tenant, ch: str
) -> None:
    catalog = tenant.create_catalog("hana", "Marketing")
    for body in (
        {"requestType": "adminAdd", "catalog": {"id": catalog},
         "resource": {"originId": tenant.ids["marketing"] + ch, "originSystem": "AadGroup"}},
        {"requestType": "adminAdd", "catalog": {"id": catalog + ch},
         "resource": {"originId": tenant.ids["marketing"], "originSystem": "AadGroup"}},
    ):  # fmt: skip
        refused(tenant, "hana", "POST", f"{EM}/resourceRequests", body)
    refused(
        tenant,
        "hana",
        "POST",
        f"{EM}/accessPackages",
        {"displayName": "P", "catalog": {"id": f"{catalog}{ch}"}},
    )
    bind = {"@odata.id": f"{GRAPH}/users/{tenant.ids['lena']}{ch}"}
    refused(tenant, "admin", "POST", f"/v1.0/groups/{tenant.ids['marketing']}/members/$ref", bind)


# ---------------------------------------------------------------- multi-line fields


@pytest.mark.parametrize(
    ("alias", "path", "body"),
    [
        ("admin", "/v1.0/groups", {"displayName": "G"}),
        ("admin", "/v1.0/applications", {"displayName": "A"}),
        ("hana", f"{EM}/catalogs", {"displayName": "C"}),
        ("hana", f"{EM}/connectedOrganizations", {"displayName": "O"}),
    ],
)
def test_a_description_keeps_tabs_and_line_breaks_and_refuses_other_controls(
    tenant: Tenant, alias: str, path: str, body: dict[str, Any]
) -> None:
    text = "First line\r\n\tindented\nlast"
    r = tenant.call(alias, "POST", path, {**body, "description": text})
    assert r.status_code == 201, r.text
    assert r.json()["description"] == text
    again = tenant.call(alias, "GET", f"{path}/{r.json()['id']}")
    assert again.json()["description"] == text
    for ch in [*HARD, "\x0b", "\x0c"]:
        refused(
            tenant, alias, "POST", path, {**body, "displayName": "Other", "description": f"a{ch}b"}
        )


def test_question_text_is_multi_line_and_its_values_are_single_line(tenant: Tenant) -> None:
    catalog = tenant.create_catalog("mamta", "Marketing")
    package = tenant.create_package("mamta", catalog, "Campaign").json()["id"]
    policies = f"{EM}/assignmentPolicies"
    good = request_policy(tenant, package)
    good["questions"][0]["text"] = "Cost centre?\n\t(four digits)"
    good["description"] = "Line one\nLine two"
    r = tenant.post("mamta", policies, good)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["description"] == "Line one\nLine two"
    questions = tenant.get("mamta", f"{policies}/{created['id']}", **{"$expand": "questions"})
    assert questions.json()["questions"][0]["text"] == "Cost centre?\n\t(four digits)"

    def with_change(change: Any) -> dict[str, Any]:
        body = request_policy(tenant, package)
        body["displayName"] = "Other"
        change(body)
        return body

    bad_changes = [
        lambda b: b["questions"][0].__setitem__("text", "Cost\x00centre?"),
        lambda b: b["questions"][1]["choices"][0].__setitem__("actualValue", "em\tea"),
        lambda b: b["questions"][1]["choices"][0].__setitem__("actualValue", "em\x00ea"),
        lambda b: b["questions"][0].__setitem__("id", "q\n1"),
        lambda b: b.__setitem__("description", "a\x00b"),
        lambda b: b.__setitem__("displayName", "Employee\nrequests"),
        lambda b: b["accessPackage"].__setitem__("id", package + "\x00"),
        lambda b: b["requestApprovalSettings"]["stages"][0]["primaryApprovers"][0].__setitem__(
            "userId", tenant.ids["mamta"] + "\x00"
        ),
    ]
    for change in bad_changes:
        refused(tenant, "mamta", "POST", policies, with_change(change))


def test_identity_sources_refuse_controls(tenant: Tenant) -> None:
    for source in (
        {"@odata.type": "#microsoft.graph.externalDomainFederation",
         "domainName": "fabrikam.example", "issuerUri": "https://idp.fabrikam.example/\x00saml"},
        {"@odata.type": "#microsoft.graph.domainIdentitySource",
         "domainName": "fabrikam.example", "displayName": "Fab\nrikam"},
        {"@odata.type": "#microsoft.graph.domainIdentitySource",
         "domainName": "fab\x00rikam.example"},
    ):  # fmt: skip
        body = {"displayName": "Fabrikam", "identitySources": [source]}
        refused(tenant, "hana", "POST", f"{EM}/connectedOrganizations", body)


# ---------------------------------------------------------------- mail addresses


@pytest.mark.parametrize("mail", BAD_MAILS, ids=repr)
def test_a_user_mail_that_is_not_one_address_is_a_400(tenant: Tenant, mail: str) -> None:
    body = {"userPrincipalName": "newbie@contoso.example", "displayName": "New", "mail": mail}
    error = refused(tenant, "admin", "POST", "/v1.0/users", body)
    if not any(ch in mail for ch in HARD):  # those the HTTP edge may refuse first
        assert error.get("target") == "mail" or "mail" in error["message"]
    refused(tenant, "admin", "PATCH", f"/v1.0/users/{tenant.ids['lena']}", {"mail": mail})


@pytest.mark.parametrize(
    ("mail", "stored"),
    [
        ("new.bie@contoso.example", "new.bie@contoso.example"),
        ("O'Brien+tag@mail.contoso.example", "O'Brien+tag@mail.contoso.example"),
        # An internationalised domain is stored in the ASCII form every mail server takes.
        ("x@b\u00fccher.example", "x@xn--bcher-kva.example"),
    ],
)
def test_a_good_mail_is_stored_as_given(tenant: Tenant, mail: str, stored: str) -> None:
    body = {"userPrincipalName": "newbie@contoso.example", "displayName": "New", "mail": mail}
    r = tenant.post("admin", "/v1.0/users", body)
    assert r.status_code == 201, r.text
    assert r.json()["mail"] == stored
    r = tenant.call("admin", "PATCH", f"/v1.0/users/{tenant.ids['lena']}", {"mail": mail})
    assert r.status_code in (200, 204), r.text
    assert tenant.get("admin", f"/v1.0/users/{tenant.ids['lena']}").json()["mail"] == stored


def test_a_user_without_mail_gets_the_upn_and_mail_may_be_cleared(tenant: Tenant) -> None:
    body = {"userPrincipalName": "newbie@contoso.example", "displayName": "New"}
    r = tenant.post("admin", "/v1.0/users", body)
    assert r.status_code == 201, r.text
    assert r.json()["mail"] == "newbie@contoso.example"
    r = tenant.call("admin", "PATCH", f"/v1.0/users/{r.json()['id']}", {"mail": None})
    assert r.status_code in (200, 204), r.text


@pytest.mark.parametrize("mail", BAD_MAILS, ids=repr)
def test_a_guest_address_is_validated_before_anything_is_created(tenant: Tenant, mail: str) -> None:
    before = fingerprint(tenant.db)
    with pytest.raises(Invalid), as_operator(tenant) as ctx:
        guests.ensure_guest(ctx, email=mail)
    assert fingerprint(tenant.db) == before


# ---------------------------------------------------------------- $filter literals and path ids


@pytest.mark.parametrize("ch", LINE_BREAKS + HARD, ids=repr)
@pytest.mark.parametrize(
    "expression",
    ["displayName eq 'a{c}b'", "startswith(displayName,'{c}')", "displayName in ('x','y{c}')"],
)
def test_a_control_in_a_filter_literal_is_a_400(tenant: Tenant, ch: str, expression: str) -> None:
    r = tenant.get("hana", f"{EM}/catalogs", **{"$filter": expression.replace("{c}", ch)})
    error = graph_400(r)
    if ch not in HARD:  # those the HTTP edge may refuse first
        assert "$filter" in error["message"]


@pytest.mark.parametrize("ch", ["\t", "\n", "\x00", "\x1f"], ids=repr)
@pytest.mark.parametrize(
    "path",
    [
        "/v1.0/users/{x}",
        "/v1.0/users/lena{x}@contoso.example",
        "/v1.0/groups/{x}",
        "/v1.0/applications/{x}",
        "/v1.0/sites/{x}",
        f"{EM}/catalogs/{{x}}",
        f"{EM}/accessPackages/{{x}}",
        f"{EM}/assignmentPolicies/{{x}}",
        f"{EM}/connectedOrganizations/{{x}}",
    ],
)
def test_a_control_in_a_path_id_is_not_found_or_refused_never_a_500(
    tenant: Tenant, ch: str, path: str
) -> None:
    """The domain answers "not found" without asking the database (the HTTP edge may refuse the
    hard controls first, with a 400)."""
    r = tenant.get("hana", path.replace("{x}", f"{tenant.ids['lena']}{quote(ch)}"))
    assert r.status_code in ((404,) if ch in "\t\n" else (400, 404)), (r.status_code, r.text)
    assert set(r.json()) == {"error"}


def test_a_control_in_a_skiptoken_is_a_400(tenant: Tenant) -> None:
    import base64
    import json

    token = base64.urlsafe_b64encode(json.dumps("a\u0000b").encode()).decode().rstrip("=")
    graph_400(tenant.get("hana", f"{EM}/catalogs", **{"$skiptoken": token}))


# ---------------------------------------------------------------- the operations (the CLI's path)


def test_the_operations_refuse_nul_on_their_own(tenant: Tenant) -> None:
    """Below the HTTP edge: what the CLI and the portal call."""
    t = tenant
    catalog = t.create_catalog("hana", "Marketing")
    before = fingerprint(t.db)
    calls = [
        lambda c: d.create_user(c, user_principal_name="n@contoso.example", display_name="N\x00"),
        lambda c: d.create_user(
            c,
            user_principal_name="n@contoso.example",
            display_name="N",
            mail="n\x00@contoso.example",
        ),
        lambda c: d.create_user(
            c, user_principal_name="n@contoso.example", display_name="N", department="R\x00D"
        ),
        lambda c: d.update_user(
            c, t.ids["lena"], {"mail": "lena@contoso.example\r\nBcc: x@evil.example"}
        ),
        lambda c: d.update_user(c, t.ids["lena"], {"jobTitle": "Boss\n"}),
        lambda c: d.create_group(c, display_name="G", description="a\x00b"),
        lambda c: d.create_group(c, display_name="\u202eG"),
        lambda c: d.create_application(c, display_name="\u200b\u2060"),
        lambda c: d.create_application(c, display_name="A", app_roles=[("R\x00", "r")]),
        lambda c: d.create_site(c, display_name="S", web_url="https://x.example/\x00"),
        lambda c: catalogs.create_catalog(c, display_name="C", description="a\x00"),
        lambda c: catalogs.update_catalog(c, catalog, {"displayName": "C\x00"}),
        lambda c: packages.create_package(c, catalog_id=catalog, display_name="P\x00"),
        lambda c: orgs.create_organization(c, display_name="O", description="\x00"),
    ]
    for call in calls:
        with pytest.raises(Invalid), as_operator(t) as ctx:
            call(ctx)
    lookups = [
        lambda c: directory_queries.get_user(c, "\x00"),
        lambda c: directory_queries.find_user(c, "lena\x00@contoso.example"),
        lambda c: directory_queries.get_group(c, t.ids["marketing"] + "\x00"),
        lambda c: directory_queries.get_application(c, "\x00"),
        lambda c: directory_queries.get_site(c, "\x00"),
        lambda c: catalog_queries.get_catalog(c, catalog + "\x00"),
        lambda c: packages.get_package(c, "\x00"),
        lambda c: external_queries.organization(c, "\x00"),
    ]
    for lookup in lookups:
        with pytest.raises(NotFound), as_operator(t) as ctx:
            lookup(ctx)
    assert fingerprint(t.db) == before
    with as_operator(t) as ctx:
        assert ctx.session.execute(select(User).where(User.display_name == "N")).first() is None
        assert ctx.session.execute(select(Group).where(Group.display_name == "G")).first() is None


def test_filter_literals_are_checked_before_any_sql() -> None:
    fields = {"displayName": F(Catalog.display_name)}
    for text in ("displayName eq 'a\x00'", "contains(displayName,'\x1b[2J')"):
        with pytest.raises(Invalid):
            parse_filter(text, fields)
    parse_filter("displayName eq 'O''Brien \u00e9'", fields)


# ---------------------------------------------------------------- the rules themselves


@pytest.mark.parametrize("name", [mark(c) for c in LINE_BREAKS + HARD] + BIDI + INVISIBLE, ids=repr)
def test_display_name_refuses(name: str) -> None:
    with pytest.raises(Invalid):
        validation.display_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "Sales",
        "  Sales  ",
        "\u05e9\u05dc\u05d5\u05dd",
        "Caf\u00e9 \u2615",
        "a\u200bb",
        "\U0001f600",
    ],
)
def test_display_name_accepts(name: str) -> None:
    assert validation.display_name(name) == name.strip()


def test_policy_text_reader_refuses_controls_by_field() -> None:
    body = {"displayName": "P", "description": "a\nb", "accessPackage": {"id": "x\x00"}}
    with pytest.raises(Invalid):
        document.body_package_id(body)
