"""The CLI as an operator uses it: a real process, the real database, one readable error line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import EM, Tenant, upn

REMIT = [sys.executable, "-m", "remit"]


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("remit: error: ")
    return lines[0]


def test_scenario_through_the_cli(tenant: Tenant, cli) -> None:  # type: ignore[no-untyped-def]
    created = cli("catalog", "create", "Marketing", "--description", "Marketing", as_="mamta")
    assert created.returncode == 0, created.stderr
    catalog_id = created.stdout.strip().splitlines()[-1]

    listed = cli("catalog", "list", as_="mamta")
    assert "Marketing" in listed.stdout
    assert "General" not in listed.stdout

    assert (
        cli(
            "resource", "add", "--catalog", "Marketing", "--group", "Marketing", as_="mamta"
        ).returncode
        == 0
    )
    assert (
        cli(
            "resource", "add", "--catalog", "Marketing", "--app", "Campaign Planner", as_="mamta"
        ).returncode
        == 0
    )
    denied = cli("resource", "add", "--catalog", "Marketing", "--group", "Finance", as_="mamta")
    assert "right to manage Finance" in _one_line_error(denied)

    assert (
        cli(
            "role", "assign", upn("omar"), "Catalog owner", "--catalog", "Marketing", as_="mamta"
        ).returncode
        == 0
    )
    assert (
        cli(
            "role",
            "assign",
            upn("lena"),
            "Access package manager",
            "--catalog",
            "Marketing",
            as_="mamta",
        ).returncode
        == 0
    )
    package = cli("package", "create", "Campaign 2027", "--catalog", "Marketing", as_="lena")
    assert package.returncode == 0, package.stderr
    package_id = package.stdout.strip().splitlines()[-1]
    role = f"Member_{tenant.ids['marketing']}"
    assert cli("package", "add-role", package_id, role, as_="lena").returncode == 0

    # Outside her catalog Lena finds nothing, and learns nothing about what exists.
    outside = cli("package", "create", "Sneaky", "--catalog", "General", as_="lena")
    assert _one_line_error(outside) == "remit: error: no catalog 'General'"

    # The API sees what the CLI did.
    body = tenant.get(
        "lena",
        f"{EM}/accessPackages/{package_id}",
        **{"$expand": "resourceRoleScopes($expand=role)"},
    ).json()
    assert body["resourceRoleScopes"][0]["role"]["originId"] == role
    assert tenant.get("mamta", f"{EM}/catalogs/{catalog_id}").status_code == 200

    verified = cli("audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "audit chain OK" in verified.stdout


def test_token_issue_prints_a_working_token_alone_on_the_last_line(
    tenant: Tenant,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    issued = cli("token", "issue", "--user", upn("sofia"), "--ttl", "600")
    assert issued.returncode == 0, issued.stderr
    token = issued.stdout.strip().splitlines()[-1]
    assert token.count(".") == 2
    me = tenant.client.get("/v1.0/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200
    assert me.json()["userPrincipalName"] == upn("sofia")


def test_explain_names_the_group_and_exits_3_when_denied(
    tenant: Tenant,
    cli,  # type: ignore[no-untyped-def]
) -> None:
    allowed = cli("explain", "--user", upn("mark"), "--task", "catalog:create")
    assert allowed.returncode == 0, allowed.stderr
    assert "Catalog creator" in allowed.stdout
    assert "Department managers" in allowed.stdout
    denied = cli("explain", "--user", upn("sofia"), "--task", "catalog:create")
    assert denied.returncode == 3
    assert "DENIED" in denied.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("user", "add", "not-an-email", "--name", "X"), "userPrincipalName"),
        (("token", "issue", "--user", "ghost@contoso.example"), "no user"),
        (("explain", "--user", "mark@contoso.example", "--task", "fly"), "unknown task"),
        (("role", "assign", "ghost@contoso.example", "Catalog owner"), "no user or group"),
        (("catalog", "create", "   "), "displayName is required"),
        (("app", "add", "X", "--role", "no-equals-sign"), "Name=value"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(
    tenant: Tenant,
    cli,
    args: tuple[str, ...],
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    assert message in _one_line_error(cli(*args))


def test_db_upgrade_on_a_fresh_sqlite_data_dir(tmp_path: Path) -> None:
    env = {**os.environ, "REMIT_DATA_DIR": str(tmp_path), "REMIT_DATABASE_URL": ""}
    done = subprocess.run(
        [*REMIT, "db", "upgrade"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "remit.db").exists()
    again = subprocess.run(
        [*REMIT, "demo", "load"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert again.returncode == 0, again.stderr
    assert "demo tenant loaded" in again.stdout
