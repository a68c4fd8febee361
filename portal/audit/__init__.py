"""Hash-chained audit events: recording, browsing, export and verification."""

from portal.audit.service import record

__all__ = ["record"]
