"""Access packages: resource role scopes and separation-of-duties links."""
