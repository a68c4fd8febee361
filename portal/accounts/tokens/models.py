"""API tokens.

Invariants: the token is shown once; only its SHA-256 is stored, with a short non-secret prefix to recognise it;
a revoked or expired token authenticates nothing; scopes are a subset of ``SCOPES``.
"""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import Organisation, User
from portal.db import Base, created_at, optional_timestamp, short_text
from portal.tenancy import TenantScoped


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
