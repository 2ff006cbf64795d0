"""Synthetic tenants, bulk-loaded with Core ``executemany`` inserts (not the ORM operations).

Everything is derived from a seed, so a loaded database can be kept and reused: its name carries
a fingerprint of the sizes, this file and the migrations, and it is loaded under a temporary name
and renamed only when complete.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, insert

from bench.common import ROOT, progress
from remit import bootstrap
from remit.authz.roles import (
    ASSIGNMENT_MANAGER,
    CATALOG_OWNER,
    CATALOG_READER,
    PACKAGE_MANAGER,
    DirectoryRole,
)
from remit.db import Database
from remit.models.authz import RoleAssignment
from remit.models.catalogs import Catalog
from remit.models.directory import DirectoryRoleAssignment, Group, GroupMember, User

NAMESPACE = uuid.UUID("6f1c2a52-5a7e-4a43-9b55-3c1f0b6e9a10")
CHUNK = 5_000
TOP_GROUPS = 100  # groups 0..99 are departments; group i >= 100 is nested in group i // 10


@dataclass(frozen=True)
class Spec:
    catalogs: int
    users: int
    groups: int
    groups_per_user: int = 2
    wide_catalogs: int = 2_500  # catalogs the "many" persona reads through nested groups
    seed: int = 7

    def fingerprint(self) -> str:
        h = hashlib.sha256(repr(sorted(asdict(self).items())).encode())
        h.update(Path(__file__).read_bytes())
        for migration in sorted((ROOT / "migrations" / "versions").glob("*.py")):
            h.update(migration.read_bytes())
        return h.hexdigest()[:10]


def uid(kind: str, n: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{kind}-{n}"))


# The personas, by deterministic id.
DELEGATE = uid("persona", 1)  # roles on a few catalogs, directly and through nested groups
WIDE = uid("persona", 2)  # reads `wide_catalogs` catalogs through a nested group
ADMIN = uid("persona", 3)  # Identity Governance Administrator: sees every catalog
PERSONAS = {"delegate": DELEGATE, "wide": WIDE, "admin": ADMIN}
DELEGATE_LEAF, DELEGATE_MID, DELEGATE_TOP = uid("pgroup", 1), uid("pgroup", 2), uid("pgroup", 3)
WIDE_LEAF, WIDE_TOP = uid("pgroup", 4), uid("pgroup", 5)


def catalog_id(n: int) -> str:
    return uid("catalog", n)


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _load(db: Database, table: Table, rows: Iterator[dict[str, Any]]) -> int:
    count = 0
    with db.engine.begin() as conn:
        for batch in _chunks(rows):
            conn.execute(insert(table), batch)
            count += len(batch)
    return count


def load(db: Database, spec: Spec) -> dict[str, int]:
    """Migrate ``db`` and fill it; returns the row count per table."""
    bootstrap.upgrade(db)
    rng = random.Random(spec.seed)
    now = datetime.now(UTC)
    counts: dict[str, int] = {}

    def users() -> Iterator[dict[str, Any]]:
        extra = [("delegate", DELEGATE), ("wide", WIDE), ("admin", ADMIN)]
        for n, (alias, id_) in enumerate(
            [(f"user{n}", uid("user", n)) for n in range(spec.users)] + extra
        ):
            upn = f"{alias}@contoso.example"
            yield {
                "id": id_,
                "user_principal_name": upn,
                "upn_key": upn,
                "display_name": f"User {alias}",
                "mail": upn,
                "user_type": "Member",
                "account_enabled": True,
                "manager_id": None,
                "department": f"Department {n % TOP_GROUPS}",
                "job_title": None,
                "created_at": now,
            }

    def groups() -> Iterator[dict[str, Any]]:
        ids = [uid("group", n) for n in range(spec.groups)]
        ids += [DELEGATE_LEAF, DELEGATE_MID, DELEGATE_TOP, WIDE_LEAF, WIDE_TOP]
        for n, id_ in enumerate(ids):
            yield {
                "id": id_,
                "display_name": f"Group {n}",
                "description": None,
                "kind": "security",
                "mail_nickname": f"group{n}",
                "is_assignable_to_role": False,
                "membership_rule": None,
                "on_premises_sync_enabled": False,
                "created_at": now,
            }

    def members() -> Iterator[dict[str, Any]]:
        for n in range(TOP_GROUPS, spec.groups):
            yield {
                "group_id": uid("group", n // 10),
                "member_id": uid("group", n),
                "member_type": "group",
            }
        for n in range(spec.users):
            for g in rng.sample(range(spec.groups), spec.groups_per_user):
                yield {
                    "group_id": uid("group", g),
                    "member_id": uid("user", n),
                    "member_type": "user",
                }
        # delegate ∈ leaf ∈ mid ∈ top (and the leaf in an ordinary department too);
        # wide ∈ leaf ∈ top, where top reads `wide_catalogs` catalogs.
        edges = [
            (DELEGATE_LEAF, DELEGATE, "user"),
            (DELEGATE_MID, DELEGATE_LEAF, "group"),
            (DELEGATE_TOP, DELEGATE_MID, "group"),
            (uid("group", spec.groups - 1), DELEGATE, "user"),
            (WIDE_LEAF, WIDE, "user"),
            (WIDE_TOP, WIDE_LEAF, "group"),
        ]
        for group, member, kind in edges:
            yield {"group_id": group, "member_id": member, "member_type": kind}

    def catalogs() -> Iterator[dict[str, Any]]:
        for n in range(spec.catalogs):
            name = f"Catalog {n:06d}"
            yield {
                "id": catalog_id(n),
                "display_name": name,
                "name_key": name.lower(),
                "description": f"Synthetic catalog number {n}",
                "state": "published",
                "is_externally_visible": True,
                "catalog_type": "userManaged",
                "created_at": now,
                "modified_at": now,
                "created_by": None,
            }

    def assignment(principal: str, kind: str, role: str, catalog: int) -> dict[str, Any]:
        cid = catalog_id(catalog)
        return {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "principal_id": principal,
            "principal_type": kind,
            "role_definition_id": role,
            "app_scope_id": f"/AccessPackageCatalog/{cid}",
            "catalog_id": cid,
            "created_at": now,
            "created_by": None,
        }

    def role_assignments() -> Iterator[dict[str, Any]]:
        group_roles = (CATALOG_READER.id, PACKAGE_MANAGER.id, ASSIGNMENT_MANAGER.id)
        for n in range(spec.catalogs):
            # every catalog has an owner and a group holding a narrower role on it
            yield assignment(uid("user", rng.randrange(spec.users)), "user", CATALOG_OWNER.id, n)
            yield assignment(
                uid("group", rng.randrange(spec.groups)), "group", group_roles[n % 3], n
            )
        picks = iter(rng.sample(range(spec.catalogs), 15 + spec.wide_catalogs))
        for role, principal, kind, count in (
            (CATALOG_OWNER.id, DELEGATE, "user", 3),
            (CATALOG_READER.id, DELEGATE, "user", 2),
            (PACKAGE_MANAGER.id, DELEGATE_TOP, "group", 5),
            (CATALOG_READER.id, DELEGATE_MID, "group", 5),
            (CATALOG_READER.id, WIDE_TOP, "group", spec.wide_catalogs),
        ):
            for _ in range(count):
                yield assignment(principal, kind, role, next(picks))

    tables: list[tuple[Any, Iterator[dict[str, Any]]]] = [
        (User, users()),
        (Group, groups()),
        (GroupMember, members()),
        (Catalog, catalogs()),
        (RoleAssignment, role_assignments()),
    ]
    for model, rows in tables:
        name = model.__tablename__
        progress(f"loading {name}")
        counts[name] = _load(db, model.__table__, rows)
    admin_role = {
        "id": uid("dra", 1),
        "principal_id": ADMIN,
        "principal_type": "user",
        "role_definition_id": DirectoryRole.IDENTITY_GOVERNANCE_ADMINISTRATOR.value,
        "created_at": now,
    }
    counts["directory_role_assignments"] = _load(
        db, DirectoryRoleAssignment.__table__, iter([admin_role])
    )
    if db.dialect == "postgresql":
        autocommit = db.engine.execution_options(isolation_level="AUTOCOMMIT")
        with autocommit.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    else:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return counts


def row_counts(db: Database) -> dict[str, int]:
    """What a (possibly reused) database holds, per table the benchmarks care about."""
    names = ("users", "groups", "group_members", "catalogs", "em_role_assignments")
    with db.engine.connect() as conn:
        return {
            n: int(conn.exec_driver_sql(f"SELECT count(*) FROM {n}").scalar_one())  # noqa: S608
            for n in names
        }


def describe(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counts.items())
