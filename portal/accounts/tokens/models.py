"""API tokens.

Invariants: the token is shown once; only its SHA-256 is stored, with a short non-secret prefix to
recognise it; a revoked or expired token authenticates nothing; scopes are a subset of ``SCOPES``.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import Organisation, User
from portal.db import Base, created_at, optional_timestamp, short_text, utcnow
from portal.tenancy import TenantScoped

# Every scope a token can hold and what it allows; the token form, the CLI and the OpenAPI document use it.
SCOPES: dict[str, str] = {
    "org:read": "Read the organisation and its members (for vendor tokens: every client organisation).",
    "audit:read": "Read the organisation's audit events.",
    "notices:read": "Read the organisation's notices and their delivery evidence.",
    "notices:write": "Acknowledge notices and choose the notice topics of the person who created the token.",
    "contacts:write": "Designate which members are the organisation's privacy and security contacts "
                      "(no other role can be changed with a token).",
    "webhooks:write": "Manage the organisation's webhook endpoints.",
    "subprocessors:read": "Read the sub-processor list as it applies to the organisation, with its authorisation "
                          "states, deadlines and objections.",
    "agreements:read": "Read the organisation's data processing agreements, their states and signatures, and "
                       "download their documents and evidence bundles.",
    "incidents:read": "Read the personal-data breach notices the organisation received, with their timeline; for "
                      "vendor tokens, the incident register with each client's clock.",
    "incidents:acknowledge": "Acknowledge the organisation's breach notices.",
    "ai_commitments:read": "Read the AI data-use commitments: every version, and what applies to the organisation "
                           "with its timeline, acceptances and training instructions.",
    "ai_commitments:instruct": "Accept or decline a version of the AI commitments that widens what applies to the "
                               "organisation, and record training instructions (client tokens).",
}


class ApiToken(TenantScoped, Base):
    __tablename__ = "api_tokens"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[short_text]
    prefix: Mapped[str] = mapped_column(String(24), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]]
    created_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
    expires_at: Mapped[optional_timestamp]
    last_used_at: Mapped[optional_timestamp]
    revoked_at: Mapped[optional_timestamp]

    org: Mapped[Organisation] = relationship(lazy="raise")
    created_by: Mapped[User | None] = relationship(lazy="raise")

    def status_at(self, now: dt.datetime) -> str:
        """``revoked``, ``expired`` or ``active``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    @property
    def status(self) -> str:
        return self.status_at(utcnow())

    @property
    def is_active(self) -> bool:
        return self.status == "active"
