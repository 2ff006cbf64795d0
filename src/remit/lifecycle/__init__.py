"""Requests, approvals, assignments, delivery and expiry (spec §6)."""
