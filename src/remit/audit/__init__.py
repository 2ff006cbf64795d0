"""The tamper-evident audit log: one event per change, hash-chained."""
