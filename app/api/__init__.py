"""Conventions every API shares: pagination, idempotency, documentation helpers."""
