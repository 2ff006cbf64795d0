"""Input rules of issue #11 point 4 for the lifecycle, the webhooks and the ids the CLI passes.

Justifications (of requests and of decisions) and answers are multi-line: they keep tab and line
breaks and refuse NUL, the other C0 controls and DEL, with a 400 (``Invalid``) naming the field.
A custom extension's URL is one line. An id holding a control character names nothing: "not
found" before the database is asked. And any NUL that still reaches PostgreSQL (whose driver
refuses it with ``DataError``) is ``Invalid``, a 400, never a 500. All through the operations
themselves, the CLI's path below any HTTP edge, and the same on both engines.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from remit.app import create_app
from remit.audit.queries import history_events
from remit.authz.roles import CATALOG_OWNER
from remit.context import Ctx
from remit.db import Database
from remit.errors import Invalid, NotFound
from remit.lifecycle import operations as ops
from remit.lifecycle import queries as lifecycle_queries
from remit.lifecycle import requests
from remit.models.catalogs import Catalog
from remit.models.directory import User
from remit.models.lifecycle import ApprovalStage, AssignmentRequest
from remit.notify import extensions
from remit.notify import queries as extension_queries
from remit.roles import operations as authz_ops
from remit.roles import queries as role_queries
from remit.settings import Settings
from tests.conftest import CliRun, SteppingClock
from tests.factories import Tenant, upn
from tests.lifecycle_support import (
    Campaign,
    actor_at,
    build_campaign,
    employees_policy,
    in_transaction,
)
from tests.matrix_support import fingerprint

G = "#microsoft.graph."
ANSWER = G + "accessPackageAnswerString"
NOTE, CODE = "note", "code"
QUESTIONS = [
    {
        "@odata.type": G + "accessPackageTextInputQuestion",
        "id": NOTE,
        "text": "Anything else?",
        "isRequired": False,
        "isSingleLineQuestion": False,
    },
    {
        "@odata.type": G + "accessPackageTextInputQuestion",
        "id": CODE,
        "text": "Cost centre?",
        "isRequired": False,
        "isSingleLineQuestion": True,
    },
]
# Refused in every field (the edge refuses them too, but the CLI does not pass the edge) ...
HARD = ["\x00", "\x01", "\x1b", "\x1f", "\x7f"]
# ... and kept in multi-line text.
MULTILINE = "first line\n\tindented\r\nlast line"
PG = pytest.mark.skipif(
    not os.environ.get("REMIT_TEST_DATABASE_URL", "").startswith("postgres"),
    reason="only PostgreSQL refuses a NUL (SQLite stores it)",
)


@pytest.fixture
def c(db: Database, app_client: TestClient, clock: SteppingClock) -> Campaign:
    return build_campaign(Tenant.build(db, app_client, clock))


@pytest.fixture
def package(c: Campaign) -> str:
    """A package whose one policy asks two questions: free text, and one line."""
    package = c.new_package("lena", "Campaign 2027 (asked)", {"Member"})
    c.policy("lena", employees_policy(package, c.t, questions=QUESTIONS))
    return package


def answer(question: str, value: str, display: str | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"@odata.type": ANSWER, "value": value}
    found["answeredQuestion"] = {"id": question}
    if display is not None:
        found["displayValue"] = display
    return found


def as_user(c: Campaign, alias: str, call: Callable[[Ctx], Any]) -> Any:
    return in_transaction(c.t, actor_at(c.t, c.t.ids[alias]), call)


def submit(c: Campaign, package: str, **given: Any) -> Callable[[Ctx], AssignmentRequest]:
    given.setdefault("justification", "Working on the 2027 campaign")
    return lambda ctx: requests.submit(
        ctx, kind="userAdd", package_id=package, target_id=c.t.ids["sofia"], **given
    )


def refused(c: Campaign, alias: str, call: Callable[[Ctx], Any], target: str) -> str:
    """``call`` as ``alias`` is ``Invalid`` naming ``target``, and nothing changed."""
    before = fingerprint(c.t.db)
    with pytest.raises(Invalid) as caught:
        as_user(c, alias, call)
    assert caught.value.target == target, caught.value.message
    assert fingerprint(c.t.db) == before
    return caught.value.message


def not_found(c: Campaign, alias: str, call: Callable[[Ctx], Any]) -> None:
    before = fingerprint(c.t.db)
    with pytest.raises(NotFound):
        as_user(c, alias, call)
    assert fingerprint(c.t.db) == before


# ---------------------------------------------------------------- justifications and answers


@pytest.mark.parametrize("ch", HARD, ids=repr)
@pytest.mark.parametrize("kind", ["userAdd", "userRemove"])
def test_a_request_justification_with_a_control_is_invalid(
    c: Campaign, package: str, ch: str, kind: str
) -> None:
    why = f"Working on{ch} the campaign"
    if kind == "userAdd":
        message = refused(c, "sofia", submit(c, package, justification=why), "justification")
    else:
        message = refused(
            c,
            "sofia",
            lambda ctx: requests.submit(
                ctx, kind="userRemove", assignment_id="any", justification=why
            ),
            "justification",
        )
    assert f"U+{ord(ch):04X}" in message


def test_a_request_justification_keeps_tabs_and_line_breaks(c: Campaign, package: str) -> None:
    made = as_user(c, "sofia", submit(c, package, justification=MULTILINE))
    with c.t.db.write() as s:
        assert s.get(AssignmentRequest, made.id).justification == MULTILINE  # type: ignore[union-attr]


@pytest.mark.parametrize("ch", HARD, ids=repr)
def test_an_approver_justification_with_a_control_is_invalid(
    c: Campaign, package: str, ch: str
) -> None:
    made = as_user(c, "sofia", submit(c, package))
    stage = _open_stage(c, made.id)
    refused(
        c,
        "omar",
        lambda ctx: ops.decide_stage(
            ctx, made.id, stage, result="Approve", justification=f"fine{ch}"
        ),
        "justification",
    )
    with c.t.db.write() as s:
        assert s.get(ApprovalStage, stage).status == "InProgress"  # type: ignore[union-attr]


def test_an_approver_justification_keeps_tabs_and_line_breaks(c: Campaign, package: str) -> None:
    made = as_user(c, "sofia", submit(c, package))
    stage = _open_stage(c, made.id)
    outcome = as_user(
        c,
        "omar",
        lambda ctx: ops.decide_stage(
            ctx, made.id, stage, result="Approve", justification=MULTILINE
        ),
    )
    assert outcome == "next stage"
    with c.t.db.write() as s:
        assert s.get(ApprovalStage, stage).justification == MULTILINE  # type: ignore[union-attr]


def _open_stage(c: Campaign, request_id: str) -> str:
    with c.t.db.write() as s:
        return str(
            s.execute(
                select(ApprovalStage.id).where(
                    ApprovalStage.request_id == request_id, ApprovalStage.status == "InProgress"
                )
            ).scalar_one()
        )


@pytest.mark.parametrize("ch", HARD, ids=repr)
@pytest.mark.parametrize(
    ("given", "target"),
    [
        (lambda ch: [answer(NOTE, f"a{ch}b")], "answers[0].value"),
        (lambda ch: [answer(CODE, "MK-1"), answer(NOTE, f"{ch}")], "answers[1].value"),
        (lambda ch: [answer(NOTE, "fine", f"shown{ch}")], "answers[0].displayValue"),
    ],
    ids=["value", "second", "displayValue"],
)
def test_an_answer_with_a_control_is_invalid(
    c: Campaign, package: str, ch: str, given: Callable[[str], list[Any]], target: str
) -> None:
    refused(c, "sofia", submit(c, package, answers=given(ch)), target)


@pytest.mark.parametrize("ch", ["\t", "\r"], ids=repr)
def test_a_single_line_answer_refuses_tab_and_carriage_return(
    c: Campaign, package: str, ch: str
) -> None:
    refused(c, "sofia", submit(c, package, answers=[answer(CODE, f"MK{ch}1")]), "answers[0].value")


def test_a_free_text_answer_keeps_tabs_and_line_breaks(c: Campaign, package: str) -> None:
    made = as_user(c, "sofia", submit(c, package, answers=[answer(NOTE, MULTILINE)]))
    with c.t.db.write() as s:
        stored = s.get(AssignmentRequest, made.id)
        assert stored is not None
        assert stored.answers[0]["value"] == MULTILINE
        assert stored.answers[0]["displayValue"] == MULTILINE


# ---------------------------------------------------------------- a custom extension's URL


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.contoso.example/run\n",
        "\thttps://hooks.contoso.example/run",
        "https://hooks.contoso.example/r\tun",
        "https://hooks.contoso.example/run\r\n",
        "https://hooks.contoso.example/run\x00",
        "https://hooks.contoso.example/run\x1f",
        "https://hooks.contoso.example/run\x7f",
        "https://hooks.contoso.example\x00.evil.example/run",
    ],
    ids=repr,
)
def test_an_extension_url_with_a_control_is_invalid(c: Campaign, url: str) -> None:
    endpoint = {"url": url}
    message = refused(
        c,
        "mamta",
        lambda ctx: extensions.create_extension(
            ctx, catalog_id=c.catalog, display_name="Hook", endpoint_configuration=endpoint
        ),
        "endpointConfiguration.url",
    )
    assert "control character" in message
    with pytest.raises(Invalid):
        extensions.endpoint_url(url)


def test_an_extension_url_update_with_a_control_is_invalid_and_keeps_the_old_one(
    c: Campaign,
) -> None:
    good = "https://hooks.contoso.example/run"
    ext, _ = as_user(
        c,
        "mamta",
        lambda ctx: extensions.create_extension(
            ctx, catalog_id=c.catalog, display_name="Hook", endpoint_configuration={"url": good}
        ),
    )
    refused(
        c,
        "mamta",
        lambda ctx: extensions.update_extension(
            ctx, c.catalog, ext.id, {"endpointConfiguration": {"url": good + "\n"}}
        ),
        "endpointConfiguration.url",
    )
    assert as_user(c, "mamta", lambda ctx: ops_url(ctx, c.catalog, ext.id)) == good


def ops_url(ctx: Ctx, catalog: str, extension: str) -> str:
    return extension_queries.extension(ctx, catalog, extension).endpoint_url


# ---------------------------------------------------------------- ids from the CLI


@pytest.mark.parametrize("ch", ["\x00", "\x1f", "\n"], ids=repr)
def test_an_id_with_a_control_is_not_found_before_the_database_is_asked(
    c: Campaign, package: str, ch: str
) -> None:
    made = as_user(c, "sofia", submit(c, package))
    bad = made.id + ch
    for alias, call in [
        ("mamta", lambda ctx: lifecycle_queries.request(ctx, bad)),
        ("sofia", lambda ctx: requests.cancel(ctx, bad)),
        ("mamta", lambda ctx: requests.reprocess_request(ctx, bad)),
        ("mamta", lambda ctx: requests.delete_record(ctx, bad)),
        ("mamta", lambda ctx: lifecycle_queries.approval_stages(ctx, bad)),
        ("mamta", lambda ctx: ops.decide_stage(ctx, bad, bad, result="Approve", justification="")),
        ("mamta", lambda ctx: lifecycle_queries.assignment(ctx, bad)),
        ("mamta", lambda ctx: ops.reprocess_assignment(ctx, bad)),
        ("mamta", lambda ctx: lifecycle_queries.package_pair(ctx, package + ch, package)),
        ("mamta", lambda ctx: lifecycle_queries.package_pair(ctx, package, package + ch)),
        (
            "sofia",
            lambda ctx: requests.submit(ctx, kind="userRemove", assignment_id=bad),
        ),
        (
            "sofia",
            lambda ctx: requests.submit(
                ctx, kind="userAdd", package_id=package + ch, justification="why"
            ),
        ),
        ("mamta", lambda ctx: extension_queries.extension(ctx, c.catalog, bad)),
        ("mamta", lambda ctx: extensions.delete_extension(ctx, c.catalog, bad)),
        ("mamta", lambda ctx: role_queries.role_assignment(ctx, bad)),
        ("mamta", lambda ctx: authz_ops.delete_role_assignment(ctx, bad)),
        (
            "mamta",
            lambda ctx: role_queries.explain_for(
                ctx, user=upn("mamta"), task="catalog:read", catalog_id=c.catalog + ch
            ),
        ),
    ]:
        not_found(c, alias, call)
    stage = _open_stage(c, made.id)
    not_found(
        c,
        "omar",
        lambda ctx: ops.decide_stage(ctx, made.id, stage + ch, result="Approve", justification=""),
    )


@pytest.mark.parametrize("ch", ["\x00", "\x1f"], ids=repr)
def test_an_id_with_a_control_in_a_reference_is_invalid_not_a_database_error(
    c: Campaign, package: str, ch: str
) -> None:
    """Ids a request or a role assignment refers to: the usual 400 of a reference to nothing."""
    refused(
        c,
        "mamta",
        lambda ctx: requests.submit(
            ctx, kind="adminAdd", package_id=package, target_id=c.t.ids["sofia"] + ch
        ),
        "targetId",
    )
    refused(
        c,
        "mamta",
        lambda ctx: requests.submit(
            ctx,
            kind="adminAdd",
            package_id=package,
            policy_id=c.employees + ch,
            target_id=c.t.ids["sofia"],
        ),
        "assignmentPolicyId",
    )
    refused(
        c,
        "mamta",
        lambda ctx: requests.submit(
            ctx,
            kind="adminAdd",
            package_id=package,
            policy_id=c.contractors,
            target_email=f"guest{ch}@fabrikam.example",
        ),
        "target.email",
    )
    with pytest.raises(Invalid):
        as_user(
            c,
            "mamta",
            lambda ctx: authz_ops.create_role_assignment(
                ctx,
                principal_id=c.t.ids["omar"] + ch,
                role_definition_id=CATALOG_OWNER.id,
                app_scope_id=f"/AccessPackageCatalog/{c.catalog}",
            ),
        )
    with pytest.raises(NotFound):
        as_user(
            c,
            "mamta",
            lambda ctx: authz_ops.create_role_assignment(
                ctx,
                principal_id=c.t.ids["omar"],
                role_definition_id=CATALOG_OWNER.id,
                app_scope_id=f"/AccessPackageCatalog/{c.catalog}{ch}",
            ),
        )


@pytest.mark.parametrize("ch", ["\x00", "\x1f"], ids=repr)
def test_a_history_for_an_id_with_a_control_is_empty(c: Campaign, ch: str) -> None:
    rows = as_user(
        c,
        "hana",
        lambda ctx: history_events(ctx, c.t.ids["sofia"] + ch),
    )
    assert rows == []


# ---------------------------------------------------------------- the backstop on PostgreSQL


@PG
def test_a_nul_that_reaches_postgresql_in_a_write_is_invalid(db: Database) -> None:
    before = fingerprint(db)
    with pytest.raises(Invalid) as caught, db.write() as s:
        s.execute(
            insert(User).values(
                id="nul-user",
                upn_key="nul@contoso.example",
                user_principal_name="nul@contoso.example",
                display_name="N\x00",
                created_at=datetime.now(UTC),
            )
        )
    assert caught.value.message == "text may not hold a NUL character"
    assert fingerprint(db) == before
    with pytest.raises(Invalid), db.write() as s:
        s.get(Catalog, "x\x00")


@PG
def test_a_nul_that_reaches_postgresql_through_the_api_is_a_400(
    db: Database, settings: Settings, clock: SteppingClock, tenant: Tenant
) -> None:
    """A route that lets a NUL through (none should: this one is made to) answers 400, on a
    write and on a read outside ``Database.write()``."""
    app = create_app(settings, db=db, clock=clock)

    @app.get("/v1.0/test-nul/{how}")
    def _nul(how: str) -> dict[str, Any]:
        if how == "write":
            with db.write() as s:
                s.get(Catalog, "x\x00")
        else:
            with db.read() as conn:
                conn.execute(select(Catalog.id).where(Catalog.id == "x\x00")).all()
        return {}

    with TestClient(app, base_url="http://remit.test") as client:
        for how in ("write", "read"):
            r = client.get(f"/v1.0/test-nul/{how}", headers=tenant.headers("hana"))
            assert r.status_code == 400, r.text
            error = r.json()["error"]
            assert error["message"] == "text may not hold a NUL character"
            assert "SELECT" not in r.text


# ---------------------------------------------------------------- the CLI itself


def test_the_cli_refuses_a_control_in_a_justification(c: Campaign, cli: CliRun) -> None:
    """argv cannot hold a NUL; an escape sequence is the control a terminal user can pass."""
    before = fingerprint(c.t.db)
    result = cli(
        "request",
        "submit",
        "--package",
        "Campaign 2027",
        "--justification",
        "Working\x1b[2J on it",
        as_="sofia",
    )
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "justification contains the control character U+001B" in result.stderr
    assert fingerprint(c.t.db) == before
