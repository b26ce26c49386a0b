"""Audit: the append-only, hash-chained record of every call and authentication event."""
