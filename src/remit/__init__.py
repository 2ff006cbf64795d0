"""remit: delegated access governance with a Graph-shaped API."""

__version__ = "0.1.0"
