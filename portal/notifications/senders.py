"""Senders: one per channel behind a small protocol, the dispatch of a delivery to its channel's sender, and the
loading of what a message needs.

Invariants:
- a sender never touches the database: the worker hands it a loaded ``Job`` outside any transaction and records
  the ``AttemptResult`` it returns;
- a sender reports failure as a result, not an exception; an exception that escapes anyway is turned into a failed
  attempt by the worker, so nothing is silently dropped;
- a channel whose sender is missing fails every attempt with a message that says so (and is retried, then dead);
- a delivery whose endpoint was disabled or deleted, whose public subscriber left, or whose person was disabled or
  left the organisation is withdrawn when loaded, never sent (nobody gets an organisation's notice after leaving).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from portal.accounts.models import Membership, Organisation, User
from portal.accounts.service import vendor_org
from portal.notifications.models import (
    Channel,
    Delivery,
    Notice,
    PublicSubscriber,
    SubscriberStatus,
    WebhookEndpoint,
)
from portal.notifications.outbox import AttemptResult
from portal.settings import Settings
from portal.tenancy import scoped_to_ids

log = logging.getLogger("portal.notifications.senders")


@dataclass(frozen=True)
class Job:
    """One delivery loaded for sending, with what its message needs besides the notice."""

    delivery: Delivery
    notice: Notice
    endpoint: WebhookEndpoint | None = None
    recipient_name: str = ""
    org_name: str = ""
    vendor_name: str = ""


class Sender(Protocol):
    async def send(self, job: Job) -> AttemptResult:
        """Make one attempt; report the peer's answer (or the failure) in the result."""
        ...

    async def idle(self) -> None:
        """The worker has nothing to send for now: let go of connections kept for reuse."""
        ...

    async def aclose(self) -> None: ...


class WebhookSending(Protocol):
    """What ``portal.notifications.webhooks.WebhookSender`` offers."""

    async def send(self, delivery: Delivery, notice: Notice, endpoint: WebhookEndpoint) -> AttemptResult: ...


class WebhookChannel:
    """Adapts the webhook sender to ``Sender``."""

    def __init__(self, sender: WebhookSending) -> None:
        self.sender = sender

    async def send(self, job: Job) -> AttemptResult:
        if job.endpoint is None:
            return AttemptResult(ok=False, error="The delivery has no webhook endpoint.")
        return await self.sender.send(job.delivery, job.notice, job.endpoint)

    async def idle(self) -> None:
        return None

    async def aclose(self) -> None:
        close = getattr(self.sender, "aclose", None)
        if close is not None:
            await close()


@dataclass(frozen=True)
class Unavailable:
    """A channel that cannot send here; every attempt fails with ``reason``."""

    reason: str

    async def send(self, job: Job) -> AttemptResult:
        return AttemptResult(ok=False, error=self.reason)

    async def idle(self) -> None:
        return None

    async def aclose(self) -> None:
        return None


def webhook_sender_from_settings(settings: Settings) -> Sender:
    """The webhook channel, or an ``Unavailable`` one when this installation has no webhook sender."""
    try:
        from portal.notifications.webhooks import WebhookSender
    except ImportError as exc:
        log.error("webhook deliveries cannot be sent: %s", exc)
        return Unavailable(f"Webhook sending is not available in this installation ({exc}).")
    return WebhookChannel(WebhookSender(settings))


class Senders:
    """The sender of each channel; ``send`` dispatches a job by its delivery's channel."""

    def __init__(self, by_channel: dict[Channel, Sender]) -> None:
        self.by_channel = by_channel

    @classmethod
    def from_settings(cls, settings: Settings) -> Senders:
        from portal.notifications.email_sender import EmailSender

        return cls({Channel.EMAIL: EmailSender.from_settings(settings),
                    Channel.WEBHOOK: webhook_sender_from_settings(settings)})

    async def send(self, job: Job) -> AttemptResult:
        sender = self.by_channel.get(job.delivery.channel)
        if sender is None:
            return AttemptResult(ok=False, error=f"No sender for the {job.delivery.channel} channel.")
        return await sender.send(job)

    async def idle(self) -> None:
        for sender in self.by_channel.values():
            await sender.idle()

    async def aclose(self) -> None:
        for sender in self.by_channel.values():
            await sender.aclose()


# ---------------------------------------------------------------- loading what a message needs

async def load_jobs(session: AsyncSession, ids: Iterable[uuid.UUID],
                    settings: Settings) -> tuple[list[Job], list[tuple[uuid.UUID, str]]]:
    """The jobs for ``ids``, and the deliveries among them that must be withdrawn instead, with the reason."""
    deliveries = (await session.execute(
        select(Delivery).where(Delivery.id.in_(list(ids)))
        .options(selectinload(Delivery.notice), selectinload(Delivery.endpoint))
    )).scalars().all()
    user_ids = {d.user_id for d in deliveries if d.user_id}
    users = (await session.execute(
        select(User.id, User.name, User.disabled_at).where(User.id.in_(user_ids))
    )).all() if user_ids else []
    names = {user_id: name for user_id, name, _disabled in users}
    active = {user_id for user_id, _name, disabled_at in users if disabled_at is None}
    org_ids = {d.org_id for d in deliveries if d.org_id}
    memberships = (await session.execute(scoped_to_ids(
        select(Membership.org_id, Membership.user_id).where(Membership.user_id.in_(user_ids)),
        Membership, list(org_ids),
    ))).all() if user_ids and org_ids else []
    members = {(org_id, user_id) for org_id, user_id in memberships}
    subscriber_ids = {d.subscriber_id for d in deliveries if d.subscriber_id}
    subscribers = dict((await session.execute(
        select(PublicSubscriber.id, PublicSubscriber.status).where(PublicSubscriber.id.in_(subscriber_ids))
    )).all()) if subscriber_ids else {}
    org_names = dict((await session.execute(
        select(Organisation.id, Organisation.name).where(Organisation.id.in_(org_ids))
    )).all()) if org_ids else {}
    vendor_name = settings.vendor_name
    if not vendor_name:
        vendor = await vendor_org(session)
        vendor_name = vendor.name if vendor else "DPA portal"

    jobs: list[Job] = []
    withdrawn: list[tuple[uuid.UUID, str]] = []
    for delivery in deliveries:
        reason = _withdrawal_reason(delivery, active, members, subscribers)
        if reason:
            withdrawn.append((delivery.id, reason))
            continue
        jobs.append(Job(delivery=delivery, notice=delivery.notice, endpoint=delivery.endpoint,
                        recipient_name=names.get(delivery.user_id, "") if delivery.user_id else "",
                        org_name=org_names.get(delivery.org_id, "") if delivery.org_id else "",
                        vendor_name=vendor_name))
    return jobs, withdrawn


def _withdrawal_reason(delivery: Delivery, active_users: set[uuid.UUID],
                       members: set[tuple[uuid.UUID, uuid.UUID]],
                       subscribers: dict[uuid.UUID, SubscriberStatus]) -> str:
    """Why ``delivery`` must not be sent any more, or "" when it must."""
    if delivery.channel is Channel.WEBHOOK:
        if delivery.endpoint is None:
            return "The webhook endpoint was deleted."
        if not delivery.endpoint.enabled:
            return f"The webhook endpoint was disabled. {delivery.endpoint.disabled_reason}".strip()
        return ""
    if delivery.subscriber_id is not None:
        status = subscribers.get(delivery.subscriber_id)
        if status is None or status is SubscriberStatus.UNSUBSCRIBED:
            return "The subscriber unsubscribed."
        return ""
    if delivery.user_id is not None:
        if delivery.user_id not in active_users:
            return "The recipient's account was disabled."
        if delivery.org_id is not None and (delivery.org_id, delivery.user_id) not in members:
            return "The recipient is no longer a member of the organisation."
        return ""
    return "The recipient no longer exists."
