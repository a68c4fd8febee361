"""Hash-chained audit events: recording, browsing, export and verification."""

from portal.audit.service import record, record_many

__all__ = ["record", "record_many"]
