"""Notices, their deliveries (the outbox), delivery attempts, and who receives what.

Invariants:
- a ``Notice`` is one notice to one client organisation (or, with no organisation, to public subscribers); its
  ``context`` is the template context and ``payload`` the webhook ``data``, both fixed when it is created;
- a ``Delivery`` is one recipient of one notice on one channel; it is written in the same transaction as the change
  that causes it, and its id is the webhook's ``webhook-id`` (stable across retries);
- a delivery is claimed for sending by a lease (``lease_until``/``leased_by``); every attempt leaves a
  ``DeliveryAttempt`` row, so what happened to each recipient can be shown to a regulator;
- webhook secrets and public subscribers' addresses are only ever shown to their own organisation / themselves.
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.db import Base, StrEnumColumn, created_at, email_address, optional_timestamp, timestamp, uuid_pk
from portal.tenancy import PossiblyTenantScoped, TenantScoped


class Channel(enum.StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(enum.StrEnum):
    QUEUED = "queued"  # waiting for its first attempt or for a retry (see available_at)
    SENT = "sent"  # accepted by the SMTP server / answered 2xx by the endpoint
    ACKNOWLEDGED = "acknowledged"  # the recipient confirmed receipt (link or API)
    DEAD = "dead"  # retries exhausted, or the endpoint is gone (410): needs a person
    CANCELLED = "cancelled"  # the endpoint was disabled or the subscriber left before sending


class Notice(PossiblyTenantScoped, Base):
    __tablename__ = "notices"

    id: Mapped[uuid_pk]
    type: Mapped[str] = mapped_column(String(60), index=True)
    topic: Mapped[str] = mapped_column(String(40))
    subject_type: Mapped[str] = mapped_column(String(80), default="")
    subject_id: Mapped[str] = mapped_column(String(80), default="")
    title: Mapped[str] = mapped_column(String(300))
    context: Mapped[dict[str, Any]]
    payload: Mapped[dict[str, Any]]
    created_by: Mapped[str] = mapped_column(String(400))
    created_at: Mapped[created_at]

    deliveries: Mapped[list[Delivery]] = relationship(back_populates="notice", lazy="raise")


class Delivery(PossiblyTenantScoped, Base):
    __tablename__ = "deliveries"
    __table_args__ = (
        # The worker's claim query: due rows in order.
        Index("ix_deliveries_due", "status", "available_at"),
    )

    id: Mapped[uuid_pk]
    notice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"), index=True)
    channel: Mapped[Channel] = mapped_column(StrEnumColumn(Channel, 20))
    # Exactly one of: an email address (user_id or subscriber_id says whose), or a webhook endpoint.
    email: Mapped[str | None] = mapped_column(String(320))
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    subscriber_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("public_subscribers.id", ondelete="SET NULL"))
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(200), default="")  # why this recipient: "role: security contact"
    status: Mapped[DeliveryStatus] = mapped_column(StrEnumColumn(DeliveryStatus, 20), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[timestamp]
    lease_until: Mapped[optional_timestamp]
    leased_by: Mapped[str | None] = mapped_column(String(100))
    last_error: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(300), default="")  # the email's Message-ID
    created_at: Mapped[created_at]
    sent_at: Mapped[optional_timestamp]
    acknowledged_at: Mapped[optional_timestamp]
    acknowledged_by: Mapped[str] = mapped_column(String(400), default="")
    dead_at: Mapped[optional_timestamp]

    notice: Mapped[Notice] = relationship(back_populates="deliveries", lazy="raise")
    attempt_rows: Mapped[list[DeliveryAttempt]] = relationship(
        back_populates="delivery", lazy="raise", order_by="DeliveryAttempt.number")
    endpoint: Mapped[WebhookEndpoint | None] = relationship(lazy="raise")

    @property
    def webhook_id(self) -> str:
        return f"msg_{self.id.hex}"


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempts"

    id: Mapped[uuid_pk]
    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[timestamp]
    duration_ms: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    # The peer's answer: the SMTP reply ("250 2.0.0 queued as ...") or the HTTP status line ("HTTP 503").
    response: Mapped[str] = mapped_column(String(500), default="")
    error: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str] = mapped_column(String(100), default="")

    delivery: Mapped[Delivery] = relationship(back_populates="attempt_rows", lazy="raise")


class WebhookEndpoint(TenantScoped, Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid_pk]
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    topics: Mapped[list[str]]
    secret_encrypted: Mapped[str] = mapped_column(String(500))
    # During a rotation both secrets sign every message until ``previous_secret_until``.
    previous_secret_encrypted: Mapped[str | None] = mapped_column(String(500))
    previous_secret_until: Mapped[optional_timestamp]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_at: Mapped[optional_timestamp]
    disabled_reason: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[created_at]


class Subscription(TenantScoped, Base):
    """A member's explicit wish to receive a topic's notices, beyond what their roles bring."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("org_id", "user_id", "topic"),)

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    topic: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[created_at]


class SubscriberStatus(enum.StrEnum):
    PENDING = "pending"  # asked, confirmation mail sent
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"


class PublicSubscriber(Base):
    """Someone without an account who follows public notices (double opt-in, one-click unsubscribe)."""

    __tablename__ = "public_subscribers"

    id: Mapped[uuid_pk]
    email: Mapped[email_address] = mapped_column(unique=True)
    topics: Mapped[list[str]]
    status: Mapped[SubscriberStatus] = mapped_column(StrEnumColumn(SubscriberStatus, 20),
                                                     default=SubscriberStatus.PENDING)
    confirm_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[created_at]
    confirmed_at: Mapped[optional_timestamp]
    unsubscribed_at: Mapped[optional_timestamp]
