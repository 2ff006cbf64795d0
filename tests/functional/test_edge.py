"""The HTTP edge (issue #11, api/edge.py), through the ASGI app: what is refused before a route
runs, the headers every response carries, and the limit on failed sign-ins per client address.

The same edge under a real ``remit serve`` process (memory under a 50 MB upload, uvicorn's
bound on a request's head, no ``server`` banner) is in test_edge_server.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from remit.api.edge import MAX_BODY, script_hash
from remit.db import Database
from remit.models.catalogs import Catalog
from tests.conftest import SteppingClock
from tests.factories import EM, Tenant

CATALOGS = f"{EM}/catalogs"
ME = "/v1.0/me"
BAD = {"Authorization": "Bearer not-a-token"}


def catalogs(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Catalog)).scalar_one())


def assert_graph_error(response: object, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    error: dict[str, object] = response.json()["error"]  # type: ignore[attr-defined]
    assert error["code"] == code
    assert "request-id" in error["innerError"]  # type: ignore[operator]
    return error


# ------------------------------------------------------------------ headers on every response


@pytest.mark.parametrize(
    ("path", "authorized", "status"),
    [
        (CATALOGS, True, 200),
        (CATALOGS, False, 401),
        (f"{EM}/nothingHere", True, 404),
        ("/remit/health", False, 200),
        ("/remit/openapi.json", False, 200),
    ],
)
def test_every_response_is_uncacheable_and_unframeable(
    tenant: Tenant, path: str, authorized: bool, status: int
) -> None:
    headers = tenant.headers("hana") if authorized else {}
    r = tenant.client.get(path, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert r.headers["request-id"]


def test_the_docs_page_may_run_its_own_script_and_no_other(app_client: TestClient) -> None:
    r = app_client.get("/remit/docs")
    assert r.status_code == 200
    policy = dict(
        part.strip().split(" ", 1) for part in r.headers["content-security-policy"].split(";")
    )
    assert policy["frame-ancestors"] == "'none'"
    assert policy["default-src"] == "'none'"
    scripts = policy["script-src"].split()
    assert "'unsafe-inline'" not in scripts
    # Swagger UI's bundle and CSS come from jsDelivr; its one inline script is allowed by hash.
    assert re.findall(r'<script src="(https://cdn\.jsdelivr\.net/[^"]+)"', r.text)
    assert re.findall(
        r'<link type="text/css" rel="stylesheet" href="https://cdn\.jsdelivr\.net/', r.text
    )
    assert "https://cdn.jsdelivr.net" in scripts
    assert "https://cdn.jsdelivr.net" in policy["style-src"].split()
    assert policy["connect-src"] == "'self'"  # the OpenAPI document and "try it out"
    inline = re.findall(r"<script>(.*?)</script>", r.text, re.DOTALL)
    assert inline
    for script in inline:
        assert f"'sha256-{script_hash(script)}'" in scripts


# ------------------------------------------------------------------ control characters


@pytest.mark.parametrize(
    "path",
    [
        f"{CATALOGS}/abc%00def",
        f"{CATALOGS}/%01",
        f"{CATALOGS}/a%1Fb",
        f"{CATALOGS}/a%7Fb",
        f"{CATALOGS}/a%0Bb",
    ],
)
def test_a_control_character_in_the_path_is_refused(tenant: Tenant, path: str) -> None:
    error = assert_graph_error(
        tenant.client.get(path, headers=tenant.headers("hana")), 400, "invalidRequest"
    )
    assert "control character" in str(error["message"])


@pytest.mark.parametrize(
    "query",
    [
        "$filter=displayName eq 'a%00b'",
        "$filter=displayName%20eq%20%27%00%27",
        "$select=id%01",
        "$top=1&na%00me=x",
        "$filter=displayName eq 'a+%1B'",
    ],
)
def test_a_control_character_in_the_query_string_is_refused(tenant: Tenant, query: str) -> None:
    r = tenant.client.get(f"{CATALOGS}?{query}", headers=tenant.headers("hana"))
    error = assert_graph_error(r, 400, "invalidRequest")
    assert "control character" in str(error["message"])


def test_tab_and_newline_in_the_query_string_are_left_to_the_route(tenant: Tenant) -> None:
    assert tenant.client.get("/remit/health?note=a%09b%0Ac%0Dd").status_code == 200
    # $filter's own rule on string literals answers, not the edge.
    r = tenant.client.get(
        f"{CATALOGS}?$filter=displayName eq 'a%09b%0Ac'", headers=tenant.headers("hana")
    )
    assert "the URL holds" not in r.text


@pytest.mark.parametrize(
    "body",
    [
        b'{"displayName": "nul\\u0000here", "description": "d"}',
        b'{"displayName": "ok", "description": "bell \\u0007"}',
        b'{"displayName": "ok", "description": "DEL \\u007F"}',
        b'{"displayName": "ok", "description": "raw DEL \x7f"}',
        b'{"displayName": "ok", "descr\\u0001iption": "key"}',
        b'{"displayName": "ok", "nested": [{"deep": ["\\u001f"]}]}',
        # The short escapes of two controls, in a field no model reads.
        b'{"displayName": "ok", "extra": "back\\bspace"}',
        b'{"displayName": "ok", "extra": "form\\ffeed"}',
        # UTF-16 and UTF-32, which json.loads detects: no "\\u00" byte string in them.
        '{"displayName": "ok", "extra": "nul\\u0000"}'.encode("utf-16-le"),
        '{"displayName": "ok", "extra": "nul\\u0000"}'.encode("utf-32-be"),
    ],
)
def test_a_control_character_in_a_json_body_is_refused_and_nothing_is_stored(
    tenant: Tenant, db: Database, body: bytes
) -> None:
    before = catalogs(db)
    headers = {**tenant.headers("hana"), "Content-Type": "application/json"}
    r = tenant.client.post(CATALOGS, content=body, headers=headers)
    error = assert_graph_error(r, 400, "invalidRequest")
    assert "control character" in str(error["message"])
    assert catalogs(db) == before


def test_an_escape_split_between_two_chunks_is_seen(tenant: Tenant, db: Database) -> None:
    before = catalogs(db)
    body = b'{"displayName": "split \\u0000 here"}'
    cut = body.index(b"\\u00") + 2  # "\u" in one chunk, "0000" in the next

    def chunks() -> Iterator[bytes]:
        yield body[:cut]
        yield body[cut:]

    headers = {**tenant.headers("hana"), "Content-Type": "application/json"}
    r = tenant.client.post(CATALOGS, content=chunks(), headers=headers)
    assert_graph_error(r, 400, "invalidRequest")
    assert catalogs(db) == before


def test_multi_line_text_and_escaped_letters_pass(tenant: Tenant) -> None:
    body = b'{"displayName": "Caf\\u00e9", "description": "line one\\nline two\\r\\n\\ttabbed"}'
    headers = {**tenant.headers("hana"), "Content-Type": "application/json"}
    r = tenant.client.post(CATALOGS, content=body, headers=headers)
    assert r.status_code == 201, r.text
    assert r.json()["displayName"] == "Café"
    assert r.json()["description"] == "line one\nline two\r\n\ttabbed"


# ------------------------------------------------------------------ sizes


def test_a_chunked_body_past_the_limit_is_refused_with_a_good_token(
    tenant: Tenant, db: Database
) -> None:
    before = catalogs(db)

    def chunks() -> Iterator[bytes]:
        yield b'{"displayName": "big", "description": "'
        for _ in range(2 * MAX_BODY // 65536):
            yield b"x" * 65536
        yield b'"}'

    headers = {**tenant.headers("hana"), "Content-Type": "application/json"}
    r = tenant.client.post(CATALOGS, content=chunks(), headers=headers)
    assert_graph_error(r, 413, "requestTooLarge")
    assert r.headers["connection"] == "close"
    assert catalogs(db) == before


def test_a_declared_length_past_the_limit_is_refused_before_the_token(tenant: Tenant) -> None:
    body = b"x" * (MAX_BODY + 1)
    r = tenant.client.post(CATALOGS, content=body, headers=BAD)
    assert_graph_error(r, 413, "requestTooLarge")


def test_a_body_up_to_the_limit_is_read(tenant: Tenant) -> None:
    text = "x" * (MAX_BODY - 200)
    headers = {**tenant.headers("hana"), "Content-Type": "application/json"}
    body = b'{"displayName": "near the limit", "description": "' + text.encode() + b'"}'
    r = tenant.client.post(CATALOGS, content=body, headers=headers)
    # The route's own length rule answers, not the edge.
    assert r.status_code in (201, 400), r.text
    assert "too large" not in r.text


def test_too_many_header_fields_are_refused(tenant: Tenant) -> None:
    many = [(f"x-field-{i}", "v") for i in range(200)]
    r = tenant.client.get(CATALOGS, headers=[*tenant.headers("hana").items(), *many])
    assert_graph_error(r, 431, "invalidRequest")


def test_a_huge_header_field_is_refused(tenant: Tenant) -> None:
    headers = {**tenant.headers("hana"), "X-Big": "a" * 1_000_000}
    assert_graph_error(tenant.client.get(CATALOGS, headers=headers), 431, "invalidRequest")


# ------------------------------------------------------------------ authentication first


def test_a_body_without_a_token_is_refused_and_the_connection_closed(
    tenant: Tenant, db: Database
) -> None:
    # The body would be refused for its NUL too: the token is checked first. (That the body is
    # not read at all is seen against a real server process: test_edge_server.py.)
    before = catalogs(db)

    def chunks() -> Iterator[bytes]:
        yield b'{"displayName": "\\u0000"}'
        yield b" " * 1000

    r = tenant.client.post(CATALOGS, content=chunks(), headers={"Content-Type": "application/json"})
    error = assert_graph_error(r, 401, "unauthenticated")
    assert error["message"] == "a bearer token is required"
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["connection"] == "close"
    assert catalogs(db) == before


# ------------------------------------------------------------------ failed sign-ins


def test_a_burst_of_bad_tokens_is_throttled_and_a_good_token_still_works(
    tenant: Tenant, clock: SteppingClock
) -> None:
    limit = tenant.client.app.state.remit.settings.auth_failures_per_window  # type: ignore[attr-defined]
    window = tenant.client.app.state.remit.settings.auth_failure_window_seconds  # type: ignore[attr-defined]
    for _ in range(limit):
        assert_graph_error(tenant.client.get(ME, headers=BAD), 401, "unauthenticated")
    # A request with no Authorization header at all is how a client learns it needs one:
    # it is not a failed sign-in, and is answered 401 as before.
    assert_graph_error(tenant.client.get(ME), 401, "unauthenticated")

    throttled = tenant.client.post(CATALOGS, json={"displayName": "x"}, headers=BAD)
    assert_graph_error(throttled, 429, "activityLimitReached")
    assert 1 <= int(throttled.headers["retry-after"]) <= window
    assert throttled.headers["cache-control"] == "no-store"
    # A good token from the very same address is never throttled.
    assert tenant.get("hana", ME).status_code == 200

    clock.advance(seconds=window / 2)
    still = tenant.client.get(ME, headers=BAD)
    assert_graph_error(still, 429, "activityLimitReached")
    assert int(still.headers["retry-after"]) <= window / 2 + 1

    clock.advance(seconds=window / 2)
    assert_graph_error(tenant.client.get(ME, headers=BAD), 401, "unauthenticated")
