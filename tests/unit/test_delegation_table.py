"""Spec §1.2, transcribed as a test table, against remit's role → task table.

Columns: IGA (and GA), catalog creator, catalog owner, AP manager, AP assignment manager, and the
inferred catalog reader. The transcription is independent of remit's own table on purpose.
"""

from __future__ import annotations

import pytest

from remit.authz.roles import (
    ASSIGNMENT_MANAGER,
    CATALOG_CREATOR,
    CATALOG_OWNER,
    CATALOG_READER,
    DIRECTORY_ROLE_TASKS,
    EM_ROLE_TASKS,
    PACKAGE_MANAGER,
    DirectoryRole,
)
from remit.authz.tasks import Task

IGA, CREATOR, OWNER, APM, APAM, READER = "IGA", "creator", "owner", "APM", "APAM", "reader"
ROLE_IDS = {
    CREATOR: CATALOG_CREATOR.id,
    OWNER: CATALOG_OWNER.id,
    APM: PACKAGE_MANAGER.id,
    APAM: ASSIGNMENT_MANAGER.id,
    READER: CATALOG_READER.id,
}

# (spec row, task, who may)
MATRIX = [
    ("Delegate to a catalog creator", Task.CATALOG_CREATORS_MANAGE, {IGA}),
    ("Add / manage a connected organization", Task.CONNECTED_ORGS_MANAGE, {IGA}),
    ("Create a new catalog", Task.CATALOG_CREATE, {IGA, CREATOR}),
    ("Add a resource to a catalog", Task.CATALOG_RESOURCES_MANAGE, {IGA, OWNER}),
    ("Add a catalog owner", Task.CATALOG_OWNERS_MANAGE, {IGA, OWNER}),
    ("Edit a catalog", Task.CATALOG_UPDATE, {IGA, OWNER}),
    ("Delete a catalog", Task.CATALOG_DELETE, {IGA, OWNER}),
    ("Add / remove an access package manager", Task.CATALOG_ROLES_MANAGE, {IGA, OWNER}),
    ("Create a new access package", Task.PACKAGE_CREATE, {IGA, OWNER, APM}),
    (
        "Change resource roles in an access package",
        Task.PACKAGE_RESOURCE_ROLES_MANAGE,
        {IGA, OWNER, APM},
    ),
    ("Create and edit policies", Task.POLICY_MANAGE, {IGA, OWNER, APM}),
    ("Directly assign a user", Task.ASSIGNMENT_DIRECT_ADD, {IGA, OWNER, APM, APAM}),
    ("Directly remove a user", Task.ASSIGNMENT_DIRECT_REMOVE, {IGA, OWNER, APM, APAM}),
    ("View who has an assignment", Task.ASSIGNMENT_READ, {IGA, OWNER, APM, APAM, READER}),
    ("View an access package's requests", Task.REQUEST_READ, {IGA, OWNER, APM, APAM, READER}),
    ("View a request's delivery errors", Task.REQUEST_ERRORS_READ, {IGA, OWNER, APM, APAM}),
    ("Reprocess a request", Task.REQUEST_REPROCESS, {IGA, OWNER, APM, APAM}),
    ("Cancel a pending request", Task.REQUEST_CANCEL, {IGA, OWNER, APM, APAM}),
    ("Hide an access package", Task.PACKAGE_HIDE, {IGA, OWNER, APM}),
    ("Delete an access package", Task.PACKAGE_DELETE, {IGA, OWNER, APM}),
    # The additional per-task rules below the matrix
    ("Create an automatic assignment policy", Task.AUTO_ASSIGNMENT_POLICY_MANAGE, {IGA}),
    ("Configure separation of duties", Task.PACKAGE_INCOMPATIBLE_MANAGE, {IGA, OWNER, APM}),
    ("Edit EM settings", Task.SETTINGS_UPDATE, {IGA}),
    (
        "View the catalog (reader: view existing access packages)",
        Task.PACKAGE_READ,
        {IGA, OWNER, APM, APAM, READER},
    ),
]


def holders(task: Task) -> set[str]:
    found = {name for name, rid in ROLE_IDS.items() if task in EM_ROLE_TASKS[rid]}
    if task in DIRECTORY_ROLE_TASKS[DirectoryRole.IDENTITY_GOVERNANCE_ADMINISTRATOR]:
        found.add(IGA)
    return found


@pytest.mark.parametrize(("row", "task", "allowed"), MATRIX, ids=[r[0] for r in MATRIX])
def test_matrix_row(row: str, task: Task, allowed: set[str]) -> None:
    assert holders(task) == allowed, row


def test_global_administrator_can_do_every_task() -> None:
    assert DIRECTORY_ROLE_TASKS[DirectoryRole.GLOBAL_ADMINISTRATOR] == frozenset(Task)


@pytest.mark.parametrize(
    "role",
    [
        DirectoryRole.USER_ADMINISTRATOR,
        DirectoryRole.GROUPS_ADMINISTRATOR,
        DirectoryRole.APPLICATION_ADMINISTRATOR,
        DirectoryRole.SHAREPOINT_ADMINISTRATOR,
        DirectoryRole.PRIVILEGED_ROLE_ADMINISTRATOR,
    ],
)
def test_other_directory_roles_hold_no_entitlement_management_task(role: DirectoryRole) -> None:
    em_tasks = {task for _, task, _ in MATRIX}
    assert not (DIRECTORY_ROLE_TASKS[role] & em_tasks)
