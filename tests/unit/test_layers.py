"""DESIGN.md's rule about arrows: domain packages never import the adapters."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "remit"
DOMAIN = [
    "directory",
    "authz",
    "catalogs",
    "packages",
    "policies",
    "lifecycle",
    "connectors",
    "jobs",
    "external",
    "notify",
    "audit",
]
ADAPTERS = ("remit.api", "remit.cli", "remit.web")


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("package", DOMAIN)
def test_domain_package_does_not_import_adapters(package: str) -> None:
    offenders = {
        f"{path.relative_to(SRC)} imports {name}"
        for path in (SRC / package).rglob("*.py")
        for name in imports(path)
        if name.startswith(ADAPTERS) or name in ("fastapi", "typer", "starlette")
    }
    assert not offenders, sorted(offenders)
