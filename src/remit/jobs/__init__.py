"""The durable job queue: a table written in the same transaction as the change (outbox)."""
