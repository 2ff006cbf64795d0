"""Role assignments: who holds which entitlement-management role, and `explain`."""
