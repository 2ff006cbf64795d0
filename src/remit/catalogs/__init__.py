"""Catalogs, their resources, resource roles and scopes, and resource requests."""
