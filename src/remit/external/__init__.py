"""External users: connected organizations, tenant settings, the guest lifecycle (spec §7)."""
