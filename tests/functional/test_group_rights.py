"""Groups that hold roles (issue #11, decision 0022): what the rule leaves alone, and the CLI.

The R2 rows are in ``test_amplification.py``; here: delivery by an access package still adds
members to such a group (a system action, approved under the package's policy), and the CLI
says the same as the API, in words, for a refusal and for ``remit explain --group``.
"""

from __future__ import annotations

from sqlalchemy import select

from remit.authz.actor import load_actor, system_actor
from remit.authz.tasks import Task
from remit.catalogs import operations as cats
from remit.catalogs import resources as res
from remit.catalogs.operations import GENERAL_CATALOG_ID
from remit.context import Ctx
from remit.jobs.runner import Worker
from remit.lifecycle import package_roles, requests
from remit.models.catalogs import ResourceRole
from remit.models.directory import GroupMember
from remit.packages import operations as pkgs
from remit.policies import operations as policies
from remit.settings import Settings
from tests.conftest import CliRun
from tests.factories import Tenant, upn
from tests.matrix_support import direct_policy


def test_delivery_still_adds_members_to_a_group_that_holds_a_role(
    tenant: Tenant, settings: Settings
) -> None:
    """An administrator put Department managers (catalog creators) in a package: a direct
    assignment delivers Kenji's membership, which makes him a catalog creator, although Kenji
    himself (a Groups Administrator) may not join the group."""
    t = tenant
    refused = t.post(
        "kenji",
        f"/v1.0/groups/{t.ids['managers']}/members/$ref",
        {"@odata.id": f"https://graph.microsoft.com/v1.0/users/{t.ids['kenji']}"},
    )
    assert refused.status_code == 403, refused.text
    with t.db.write() as s:
        root = Ctx(s, system_actor("test"), t.clock())
        catalog = cats.create_catalog(root, display_name="Delegation", description="roles").id
        resource = res.add_resource(
            root, catalog_id=catalog, origin_system_name="AadGroup", origin_id=t.ids["managers"]
        ).resource_id
        package = pkgs.create_package(root, display_name="Catalog creators", catalog_id=catalog)
        member = s.execute(
            select(ResourceRole.id).where(
                ResourceRole.resource_id == resource, ResourceRole.display_name == "Member"
            )
        ).scalar_one()
        package_roles.add_resource_role_scope(root, package.id, role_id=member)
        policy = policies.create_policy(root, direct_policy(package.id)).id
        requests.submit(
            root,
            kind="adminAdd",
            package_id=package.id,
            policy_id=policy,
            target_id=t.ids["kenji"],
        )
    Worker(t.db, settings, clock=t.clock, worker_id="test").drain()
    with t.db.write() as s:
        edge = s.get(GroupMember, (t.ids["managers"], t.ids["kenji"]))
        assert edge is not None
        assert edge.valid_until is not None  # delivered, for the policy's 30 days
        assert Task.CATALOG_CREATE in load_actor(s, t.ids["kenji"]).tenant_tasks


def test_the_cli_refuses_and_explains_in_words(tenant: Tenant, cli: CliRun) -> None:
    db = tenant.db
    joined = cli(
        "--as",
        upn("kenji"),
        "group",
        "add-member",
        "Department managers",
        upn("kenji"),
    )
    assert joined.returncode == 1, joined.stdout
    assert joined.stderr.strip() == (
        "remit: error: you may not change the members of Department managers because "
        "Department managers holds Catalog creator (tenant) and you may not assign it"
    ), joined.stderr
    denied = cli("explain", "--user", upn("kenji"), "--group", "Department managers")
    assert denied.returncode == 3, denied.stderr
    assert (
        f"DENIED {upn('kenji')} may not change the members or owners of Department managers"
        in denied.stdout
    ), denied.stdout
    assert "holds Catalog creator (tenant)" in denied.stdout, denied.stdout
    onboard = cli(
        "explain",
        "--user",
        upn("kenji"),
        "--task",
        "catalog:resources:manage",
        "--catalog",
        GENERAL_CATALOG_ID,
        "--group",
        "Department managers",
    )
    assert onboard.returncode == 3, onboard.stderr
    assert (
        f"DENIED {upn('kenji')} may not add Department managers to catalog {GENERAL_CATALOG_ID}"
        in onboard.stdout
    ), onboard.stdout
    allowed = cli("explain", "--user", upn("hana"), "--group", "Department managers")
    assert allowed.returncode == 0, allowed.stderr
    assert "owner of group Department managers" in allowed.stdout, allowed.stdout
    # A task's verdict is in words too.
    creator = cli("explain", "--user", upn("sofia"), "--task", "catalog:create")
    assert creator.returncode == 3, creator.stderr
    assert f"DENIED {upn('sofia')} may not create catalogs" in creator.stdout, creator.stdout
    listed = cli("explain", "--user", upn("sofia"), "--list-tasks")
    assert "em:catalogCreators:manage\tmanage catalog creators" in listed.stdout.splitlines()
    with db.read() as conn:
        members = conn.execute(
            select(GroupMember.member_id).where(GroupMember.group_id == tenant.ids["managers"])
        ).scalars()
        assert tenant.ids["kenji"] not in set(members)
