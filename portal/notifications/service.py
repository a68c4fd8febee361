"""Sending a notice: one call inside the business transaction writes the notice and a delivery per recipient.

Invariants:
- ``notify`` never sends anything itself: it writes rows in the caller's transaction (the outbox), so a notice
  exists exactly when the change that caused it does, and the worker delivers it afterwards;
- recipients of a client notice are that organisation's members holding one of the type's roles, its members who
  subscribed to the topic, and its enabled webhook endpoints for the topic; nobody of another organisation;
- one person gets one email per notice however many reasons they have (the reasons are recorded together);
- acknowledgement links are HMACs of the delivery id under the portal's secret key: nothing to store, nothing to
  guess, and a link acknowledges exactly one delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import Membership, MembershipRole, Organisation, User
from portal.actors import Actor
from portal.audit.service import subject_type_of
from portal.db import utcnow
from portal.notifications.catalog import PAYLOAD_BASE_SCHEMA, NoticeContent, NoticeSpec, spec_for
from portal.notifications.models import (
    Channel,
    Delivery,
    Notice,
    PublicSubscriber,
    SubscriberStatus,
    Subscription,
    WebhookEndpoint,
)
from portal.tenancy import scoped


@dataclass(frozen=True)
class Recipient:
    channel: Channel
    reason: str
    email: str | None = None
    user_id: uuid.UUID | None = None
    endpoint_id: uuid.UUID | None = None
    subscriber_id: uuid.UUID | None = None


async def recipients_in(session: AsyncSession, org: Organisation, spec: NoticeSpec) -> list[Recipient]:
    """Who in ``org`` receives notices of ``spec``: by role, by subscription, and its webhook endpoints."""
    reasons: dict[uuid.UUID, list[str]] = {}
    emails: dict[uuid.UUID, str] = {}
    if spec.roles:
        rows = (await session.execute(scoped(
            select(User.id, User.email, MembershipRole.role).select_from(Membership)
            .join(MembershipRole).join(User, User.id == Membership.user_id)
            .where(MembershipRole.role.in_(sorted(spec.roles)), User.disabled_at.is_(None)),
            Membership, org,
        ))).all()
        for user_id, email, role in rows:
            emails[user_id] = email
            reasons.setdefault(user_id, []).append(f"role: {role.label.lower()}")
    subscribed = (await session.execute(scoped(
        select(User.id, User.email).select_from(Subscription).join(User, User.id == Subscription.user_id)
        .join(Membership, Membership.user_id == User.id)
        .where(Subscription.topic == spec.topic.value, User.disabled_at.is_(None),
               Membership.org_id == Subscription.org_id),  # tenancy: the subscriber must still be a member
        Subscription, org,
    ))).all()
    for user_id, email in subscribed:
        emails[user_id] = email
        reasons.setdefault(user_id, []).append(f"subscribed to {spec.topic.value}")
    people = [Recipient(Channel.EMAIL, "; ".join(reasons[uid]), email=emails[uid], user_id=uid)
              for uid in sorted(reasons, key=lambda uid: emails[uid])]
    endpoints = (await session.execute(scoped(
        select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True)), WebhookEndpoint, org
    ))).scalars().all()
    hooks = [Recipient(Channel.WEBHOOK, f"webhook for {spec.topic.value}", endpoint_id=e.id)
             for e in endpoints if spec.topic.value in e.topics]
    return people + hooks


async def public_recipients(session: AsyncSession, spec: NoticeSpec) -> list[Recipient]:
    if not spec.public:
        return []
    subscribers = (await session.execute(
        select(PublicSubscriber).where(PublicSubscriber.status == SubscriberStatus.CONFIRMED)
        .order_by(PublicSubscriber.email)
    )).scalars().all()
    return [Recipient(Channel.EMAIL, f"public subscriber to {spec.topic.value}", email=s.email, subscriber_id=s.id)
            for s in subscribers if spec.topic.value in s.topics]


def _payload(notice: Notice, content: NoticeContent) -> dict[str, object]:
    base = {"notice_id": str(notice.id), "notice_type": content.type.value,
            "organisation_id": str(notice.org_id) if notice.org_id else None, "title": content.title,
            "link": content.link, "acknowledge_url": None}
    assert set(base) == set(PAYLOAD_BASE_SCHEMA)
    return {**base, **content.fields}


async def _write_notice(session: AsyncSession, *, actor: Actor, content: NoticeContent, org: Organisation | None,
                        recipients: list[Recipient], subject: object | None) -> Notice:
    spec = spec_for(content.type)
    notice = Notice(id=uuid.uuid4(), org_id=org.id if org else None, type=content.type.value,
                    topic=spec.topic.value, title=content.title, context={**content.context, "title": content.title,
                                                                          "link": content.link},
                    payload={}, created_by=actor.label,
                    subject_type=subject_type_of(subject) if subject is not None else "",
                    subject_id=str(getattr(subject, "id", "")) if subject is not None else "")
    notice.payload = _payload(notice, content)
    session.add(notice)
    now = utcnow()
    session.add_all([
        Delivery(id=uuid.uuid4(), notice_id=notice.id, org_id=notice.org_id, channel=r.channel, email=r.email,
                 user_id=r.user_id, endpoint_id=r.endpoint_id, subscriber_id=r.subscriber_id, reason=r.reason,
                 available_at=now)
        for r in recipients
    ])
    await session.flush()
    await audit.record(session, actor=actor, tag="notice:created", subject=notice, org_id=notice.org_id,
                       data={"type": notice.type, "title": notice.title, "recipients": len(recipients),
                             "emails": sum(r.channel is Channel.EMAIL for r in recipients),
                             "webhooks": sum(r.channel is Channel.WEBHOOK for r in recipients)})
    return notice


async def notify(session: AsyncSession, *, actor: Actor, content: NoticeContent, orgs: Sequence[Organisation],
                 include_public: bool = False, subject: object | None = None) -> list[Notice]:
    """Queue ``content`` for every recipient in each of ``orgs`` (and public subscribers when asked and allowed),
    one notice per organisation, in the caller's transaction."""
    spec = spec_for(content.type)
    notices = []
    for org in orgs:
        recipients = await recipients_in(session, org, spec)
        notices.append(await _write_notice(session, actor=actor, content=content, org=org, recipients=recipients,
                                           subject=subject))
    if include_public and spec.public:
        recipients = await public_recipients(session, spec)
        notices.append(await _write_notice(session, actor=actor, content=content, org=None, recipients=recipients,
                                           subject=subject))
    return notices


async def notify_subscriber(session: AsyncSession, *, actor: Actor, content: NoticeContent,
                            subscriber: PublicSubscriber) -> Notice:
    """Queue a notice to one public subscriber (their confirmation mail)."""
    recipient = Recipient(Channel.EMAIL, "asked to subscribe", email=subscriber.email, subscriber_id=subscriber.id)
    return await _write_notice(session, actor=actor, content=content, org=None, recipients=[recipient],
                               subject=subscriber)


# ---------------------------------------------------------------- acknowledgement links

def ack_token(secret_key: str, delivery_id: uuid.UUID) -> str:
    mac = hmac.new(secret_key.encode(), b"ack:" + delivery_id.bytes, hashlib.sha256).hexdigest()[:32]
    return f"{delivery_id.hex}.{mac}"


def delivery_id_from_ack_token(secret_key: str, token: str) -> uuid.UUID | None:
    """The delivery an acknowledgement link names, or None when the link was not made by this portal."""
    raw_id, _, _mac = token.partition(".")
    try:
        delivery_id = uuid.UUID(hex=raw_id)
    except ValueError:
        return None
    return delivery_id if hmac.compare_digest(ack_token(secret_key, delivery_id), token) else None
