"""Directory rules that the delegation relies on."""

from __future__ import annotations

from tests.factories import Tenant


def ref(tenant: Tenant, key: str) -> dict[str, str]:
    return {"@odata.id": f"https://graph.microsoft.com/v1.0/groups/{tenant.ids[key]}"}


def test_nested_groups_cannot_form_a_cycle(tenant: Tenant) -> None:
    marketing, campaigns = tenant.ids["marketing"], tenant.ids["campaigns"]
    assert (
        tenant.post(
            "admin", f"/v1.0/groups/{marketing}/members/$ref", ref(tenant, "campaigns")
        ).status_code
        == 204
    )
    # campaigns ⊂ marketing: marketing may not go into campaigns, nor a group into itself.
    back = tenant.post("admin", f"/v1.0/groups/{campaigns}/members/$ref", ref(tenant, "marketing"))
    assert back.status_code == 400
    assert "cycle" in back.json()["error"]["message"]
    own = tenant.post("admin", f"/v1.0/groups/{marketing}/members/$ref", ref(tenant, "marketing"))
    assert own.status_code == 400
    # Membership is transitive: Lena (in campaigns) is now in marketing through it.
    groups = tenant.get("admin", f"/v1.0/users/{tenant.ids['lena']}/transitiveMemberOf").json()
    assert {g["displayName"] for g in groups["value"]} >= {"Marketing", "Marketing campaigns"}
