"""Identity providers configured by organisations, the email domains they cover and the identities they
vouch for.

Invariants:
- an email domain is covered by at most one identity provider (unique ``sso_domains.domain``);
- the client secret is stored encrypted with the portal's secret key;
- a user is linked to an identity by (provider, ``sub``), never by email alone (ASVS 10.5.2).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.models import Organisation, User
from portal.accounts.roles import Role
from portal.db import Base, StrEnumColumn, created_at, optional_timestamp
from portal.tenancy import TenantScoped


class IdentityProvider(TenantScoped, Base):
    __tablename__ = "identity_providers"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(300))
    client_secret_encrypted: Mapped[str] = mapped_column(String(1000))
    default_role: Mapped[Role] = mapped_column(StrEnumColumn(Role, 40), default=Role.MEMBER)
    jit_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Discovery document as fetched when the configuration was last saved (endpoints, jwks_uri, features).
    metadata_json: Mapped[dict[str, Any]]
    created_at: Mapped[created_at]
    updated_at: Mapped[optional_timestamp]

    org: Mapped[Organisation] = relationship(lazy="raise")
    domains: Mapped[list[SSODomain]] = relationship(back_populates="provider", lazy="raise",
                                                     cascade="all, delete-orphan")


class SSODomain(Base):
    __tablename__ = "sso_domains"

    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("identity_providers.id", ondelete="CASCADE"),
                                                   index=True)

    provider: Mapped[IdentityProvider] = relationship(back_populates="domains", lazy="raise")


class ExternalIdentity(Base):
    __tablename__ = "external_identities"
    __table_args__ = (UniqueConstraint("provider_id", "subject"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    provider_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("identity_providers.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[created_at]
    last_login_at: Mapped[optional_timestamp]

    user: Mapped[User] = relationship(lazy="raise")
