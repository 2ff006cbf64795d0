"""Delivery of resource roles into target systems."""
