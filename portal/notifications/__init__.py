"""Notices to people and machines (email now; the outbox and webhooks build on it)."""
