"""Organisations, people, memberships, invitations and everything a login leaves behind.

Invariants:
- exactly one organisation is the vendor (a partial unique index enforces it);
- an email address belongs to one user (stored lower-case);
- secrets (session ids, invitation and reset tokens) are stored only as SHA-256 hashes;
- a membership's roles match its organisation's kind (checked by the services through ``roles.parse_roles``).
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import Boolean, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.accounts.roles import MFA_VENDOR_ROLES, OrgKind, Permission, Role, permissions_of
from portal.db import Base, StrEnumColumn, created_at, email_address, optional_timestamp, short_text, timestamp, uuid_pk
from portal.tenancy import TenantScoped


class Organisation(Base):
    __tablename__ = "organisations"
    __table_args__ = (
        Index("uq_organisations_one_vendor", "kind", unique=True,
              sqlite_where=text("kind = 'vendor'"), postgresql_where=text("kind = 'vendor'")),
    )

    id: Mapped[uuid_pk]
    kind: Mapped[OrgKind] = mapped_column(StrEnumColumn(OrgKind, 20))
    name: Mapped[short_text]
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    sso_enforced: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[created_at]

    memberships: Mapped[list[Membership]] = relationship(back_populates="org", lazy="raise")

    @property
    def is_vendor(self) -> bool:
        return self.kind is OrgKind.VENDOR


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid_pk]
    email: Mapped[email_address] = mapped_column(unique=True)
    name: Mapped[short_text]
    password_hash: Mapped[str | None] = mapped_column(String(200))
    totp_secret: Mapped[str | None] = mapped_column(String(300))  # encrypted with the portal's secret key
    totp_enabled_at: Mapped[optional_timestamp]
    totp_last_step: Mapped[int | None]  # the last accepted 30-second step, so a code cannot be replayed
    created_at: Mapped[created_at]
    disabled_at: Mapped[optional_timestamp]

    memberships: Mapped[list[Membership]] = relationship(back_populates="user", lazy="raise")

    @property
    def has_totp(self) -> bool:
        return self.totp_enabled_at is not None


class Membership(TenantScoped, Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[created_at]

    org: Mapped[Organisation] = relationship(back_populates="memberships", lazy="raise")
    user: Mapped[User] = relationship(back_populates="memberships", lazy="raise")
    role_rows: Mapped[list[MembershipRole]] = relationship(
        back_populates="membership", lazy="raise", cascade="all, delete-orphan"
    )

    @property
    def roles(self) -> frozenset[Role]:
        return frozenset(Role(row.role) for row in self.role_rows)

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_of(self.roles)

    def can(self, permission: Permission | str) -> bool:
        # Templates pass plain strings; Enum members hash by name, so convert before the set lookup.
        return Permission(permission) in self.permissions

    @property
    def needs_vendor_mfa(self) -> bool:
        return bool(self.roles & MFA_VENDOR_ROLES)


class MembershipRole(Base):
    __tablename__ = "membership_roles"

    membership_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("memberships.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[Role] = mapped_column(StrEnumColumn(Role, 40), primary_key=True)

    membership: Mapped[Membership] = relationship(back_populates="role_rows", lazy="raise")


class Invitation(TenantScoped, Base):
    __tablename__ = "invitations"

    id: Mapped[uuid_pk]
    email: Mapped[email_address]
    name: Mapped[short_text] = mapped_column(default="")
    roles: Mapped[list[str]]
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[created_at]
    expires_at: Mapped[timestamp]
    accepted_at: Mapped[optional_timestamp]
    revoked_at: Mapped[optional_timestamp]

    org: Mapped[Organisation] = relationship(lazy="raise")

    def is_open(self, now: dt.datetime) -> bool:
        return self.accepted_at is None and self.revoked_at is None and self.expires_at > now


class LoginSession(Base):
    """A server-side session. The cookie carries a random token; only its SHA-256 is stored here."""

    __tablename__ = "login_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    auth_method: Mapped[str] = mapped_column(String(20))  # "password" or "sso"
    second_factor_done: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[created_at]
    last_seen_at: Mapped[timestamp]
    expires_at: Mapped[timestamp]
    ended_at: Mapped[optional_timestamp]
    ip: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")

    user: Mapped[User] = relationship(lazy="raise")
    org: Mapped[Organisation] = relationship(lazy="raise")


class PasswordReset(Base):
    __tablename__ = "password_resets"

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[created_at]
    expires_at: Mapped[timestamp]
    used_at: Mapped[optional_timestamp]

    user: Mapped[User] = relationship(lazy="raise")


class LoginFailure(Base):
    """One failed login, kept for the rate limit (per account and per client address)."""

    __tablename__ = "login_failures"

    id: Mapped[uuid_pk]
    key: Mapped[str] = mapped_column(String(400), index=True)
    at: Mapped[timestamp] = mapped_column(index=True)
