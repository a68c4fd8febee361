"""Sending a notice: one call inside the business transaction writes the notice and a delivery per recipient.

Invariants:
- ``notify`` never sends anything itself: it writes rows in the caller's transaction (the outbox), so a notice
  exists exactly when the change that caused it does, and the worker delivers it afterwards;
- recipients of a client notice are that organisation's members holding one of the type's roles, its members who
  subscribed to the topic, and its enabled webhook endpoints for the topic; nobody of another organisation;
- one person gets one email per notice however many reasons they have (the reasons are recorded together);
- acknowledgement links are HMACs of the delivery id under the portal's secret key: nothing to store, nothing to
  guess, and a link acknowledges exactly one delivery; unsubscribe links are HMACs of the public subscriber's id
  under the same key with another label, so neither kind of link can stand in for the other.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from portal import audit
from portal.accounts.models import Membership, MembershipRole, Organisation, User
from portal.accounts.roles import Role
from portal.actors import Actor
from portal.audit.service import subject_type_of
from portal.db import Base, utcnow
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
from portal.tenancy import scoped_to_ids


@dataclass(frozen=True)
class Recipient:
    channel: Channel
    reason: str
    email: str | None = None
    user_id: uuid.UUID | None = None
    endpoint_id: uuid.UUID | None = None
    subscriber_id: uuid.UUID | None = None


ORG_CHUNK = 1000  # organisations per recipient query in a fan-out


async def recipients_in(session: AsyncSession, org: Organisation, spec: NoticeSpec) -> list[Recipient]:
    """Who in ``org`` receives notices of ``spec``: by role, by subscription, and its webhook endpoints."""
    return (await recipients_by_org(session, [org], spec))[org.id]


async def recipients_by_org(session: AsyncSession, orgs: Sequence[Organisation],
                            spec: NoticeSpec) -> dict[uuid.UUID, list[Recipient]]:
    """``recipients_in`` for many organisations with three queries per thousand of them (a fan-out)."""
    reasons: dict[tuple[uuid.UUID, uuid.UUID], list[str]] = {}
    emails: dict[uuid.UUID, str] = {}
    hooks: dict[uuid.UUID, list[Recipient]] = {}
    ids = [org.id for org in orgs]
    for start in range(0, len(ids), ORG_CHUNK):
        chunk = ids[start:start + ORG_CHUNK]
        if spec.roles:
            rows = (await session.execute(scoped_to_ids(
                select(Membership.org_id, User.id, User.email, MembershipRole.role).select_from(Membership)
                .join(MembershipRole).join(User, User.id == Membership.user_id)
                .where(MembershipRole.role.in_(sorted(spec.roles)), User.disabled_at.is_(None))
                .order_by(MembershipRole.role),
                Membership, chunk,
            ))).all()
            for org_id, user_id, email, role in rows:
                emails[user_id] = email
                reasons.setdefault((org_id, user_id), []).append(f"role: {role.label.lower()}")
            await _admins_stand_in(session, spec, [i for i in chunk if not any(k[0] == i for k in reasons)],
                                   reasons, emails)
        subscribed = (await session.execute(scoped_to_ids(
            select(Subscription.org_id, User.id, User.email).select_from(Subscription)
            .join(User, User.id == Subscription.user_id)
            .join(Membership, Membership.user_id == User.id)
            .where(Subscription.topic == spec.topic.value, User.disabled_at.is_(None),
                   Membership.org_id == Subscription.org_id),  # tenancy: the subscriber must still be a member
            Subscription, chunk,
        ))).all()
        for org_id, user_id, email in subscribed:
            emails[user_id] = email
            reasons.setdefault((org_id, user_id), []).append(f"subscribed to {spec.topic.value}")
        endpoints = (await session.execute(scoped_to_ids(
            select(WebhookEndpoint.org_id, WebhookEndpoint.id, WebhookEndpoint.topics)
            .where(WebhookEndpoint.enabled.is_(True)).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id),
            WebhookEndpoint, chunk,
        ))).all()
        for org_id, endpoint_id, topics in endpoints:
            if spec.topic.value in topics:
                hooks.setdefault(org_id, []).append(
                    Recipient(Channel.WEBHOOK, f"webhook for {spec.topic.value}", endpoint_id=endpoint_id))
    people: dict[uuid.UUID, list[Recipient]] = {}
    for (org_id, user_id), why in sorted(reasons.items(), key=lambda item: emails[item[0][1]]):
        people.setdefault(org_id, []).append(
            Recipient(Channel.EMAIL, "; ".join(why), email=emails[user_id], user_id=user_id))
    return {org_id: people.get(org_id, []) + hooks.get(org_id, []) for org_id in ids}


async def _admins_stand_in(session: AsyncSession, spec: NoticeSpec, org_ids: list[uuid.UUID],
                           reasons: dict[tuple[uuid.UUID, uuid.UUID], list[str]], emails: dict[uuid.UUID, str]) -> None:
    """An organisation without anyone in the type's roles still gets the notice: its admins receive it.

    Contractual notices must reach every client (legal requirement 36: recipients cannot be reduced to zero), and
    an organisation always keeps at least one admin."""
    if not org_ids or Role.ADMIN in spec.roles:
        return
    missing = "/".join(sorted(role.label.lower() for role in spec.roles))
    rows = (await session.execute(scoped_to_ids(
        select(Membership.org_id, User.id, User.email).select_from(Membership)
        .join(MembershipRole).join(User, User.id == Membership.user_id)
        .where(MembershipRole.role == Role.ADMIN, User.disabled_at.is_(None)),
        Membership, org_ids,
    ))).all()
    for org_id, user_id, email in rows:
        emails[user_id] = email
        reasons.setdefault((org_id, user_id), []).append(f"role: admin (no {missing} designated)")


async def public_recipients(session: AsyncSession, spec: NoticeSpec) -> list[Recipient]:
    if not spec.public:
        return []
    subscribers = (await session.execute(
        select(PublicSubscriber).where(PublicSubscriber.status == SubscriberStatus.CONFIRMED)
        .order_by(PublicSubscriber.email)
    )).scalars().all()
    return [Recipient(Channel.EMAIL, f"public subscriber to {spec.topic.value}", email=s.email, subscriber_id=s.id)
            for s in subscribers if spec.topic.value in s.topics]


def _payload(notice_id: uuid.UUID, org_id: uuid.UUID | None, content: NoticeContent) -> dict[str, object]:
    base = {"notice_id": str(notice_id), "notice_type": content.type.value,
            "organisation_id": str(org_id) if org_id else None, "title": content.title,
            "link": content.link, "acknowledge_url": None}
    assert set(base) == set(PAYLOAD_BASE_SCHEMA)
    return {**base, **content.fields}


async def _write_notice(session: AsyncSession, *, actor: Actor, content: NoticeContent, org: Organisation | None,
                        recipients: list[Recipient], subject: object | None) -> Notice:
    [notice] = await _write_notices(session, actor=actor, content=content, targets=[(org, recipients)],
                                    subject=subject)
    return notice


async def _write_notices(session: AsyncSession, *, actor: Actor, content: NoticeContent,
                         targets: Sequence[tuple[Organisation | None, list[Recipient]]],
                         subject: object | None) -> list[Notice]:
    """One notice per target with a delivery per recipient, and its audit event; rows are written in bulk, so a
    notice to ten thousand organisations costs a few statements per thousand of them."""
    spec = spec_for(content.type)
    context = {**content.context, "title": content.title, "link": content.link}
    now = utcnow()
    rows: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for org, recipients in targets:
        row: dict[str, Any] = {
            "id": uuid.uuid4(), "org_id": org.id if org else None, "type": content.type.value,
            "topic": spec.topic.value, "title": content.title, "context": context, "created_by": actor.label,
            "subject_type": subject_type_of(subject) if subject is not None else "",
            "subject_id": str(getattr(subject, "id", "")) if subject is not None else "", "created_at": now}
        row["payload"] = _payload(row["id"], row["org_id"], content)
        rows.append(row)
        deliveries.extend(
            {"id": uuid.uuid4(), "notice_id": row["id"], "org_id": row["org_id"], "channel": r.channel,
             "email": r.email, "user_id": r.user_id, "endpoint_id": r.endpoint_id, "subscriber_id": r.subscriber_id,
             "reason": r.reason, "available_at": now, "created_at": now}
            for r in recipients)
    await session.execute(insert(_table(Notice)), rows)
    for start in range(0, len(deliveries), 5000):
        await session.execute(insert(_table(Delivery)), deliveries[start:start + 5000])
    notices = []
    for row in rows:  # the rows just written, as (detached) objects, without loading them back
        notice = Notice(**row)
        make_transient_to_detached(notice)
        notices.append(notice)
    await audit.record_many(session, actor=actor, tag="notice:created", events=[
        (notice, notice.org_id, {"type": notice.type, "title": notice.title, "recipients": len(recipients),
                                 "emails": sum(r.channel is Channel.EMAIL for r in recipients),
                                 "webhooks": sum(r.channel is Channel.WEBHOOK for r in recipients)})
        for notice, (_org, recipients) in zip(notices, targets, strict=True)])
    return notices


def _table(model: type[Base]) -> Table:
    """The model's table: Core inserts skip the ORM's per-row work, which dominates a fan-out's cost."""
    return cast(Table, model.__table__)


async def notify(session: AsyncSession, *, actor: Actor, content: NoticeContent, orgs: Sequence[Organisation],
                 include_public: bool = False, subject: object | None = None) -> list[Notice]:
    """Queue ``content`` for every recipient in each of ``orgs`` (and public subscribers when asked and allowed),
    one notice per organisation, in the caller's transaction."""
    spec = spec_for(content.type)
    recipients = await recipients_by_org(session, orgs, spec)
    targets: list[tuple[Organisation | None, list[Recipient]]] = [(org, recipients[org.id]) for org in orgs]
    if include_public and spec.public:
        targets.append((None, await public_recipients(session, spec)))
    if not targets:
        return []
    return await _write_notices(session, actor=actor, content=content, targets=targets, subject=subject)


async def notify_subscriber(session: AsyncSession, *, actor: Actor, content: NoticeContent,
                            subscriber: PublicSubscriber) -> Notice:
    """Queue a notice to one public subscriber (their confirmation mail)."""
    recipient = Recipient(Channel.EMAIL, "asked to subscribe", email=subscriber.email, subscriber_id=subscriber.id)
    return await _write_notice(session, actor=actor, content=content, org=None, recipients=[recipient],
                               subject=subscriber)


async def notify_endpoint(session: AsyncSession, *, actor: Actor, content: NoticeContent, org: Organisation,
                          endpoint: WebhookEndpoint) -> Notice:
    """Queue a notice to one webhook endpoint of ``org`` alone, whatever its topics (a test event)."""
    if endpoint.org_id != org.id:  # tenancy: a guard against mixing objects, not a query filter
        raise ValueError("the endpoint belongs to another organisation")
    recipient = Recipient(Channel.WEBHOOK, "test event requested", endpoint_id=endpoint.id)
    return await _write_notice(session, actor=actor, content=content, org=org, recipients=[recipient],
                               subject=endpoint)


# ---------------------------------------------------------------- signed links (acknowledge, unsubscribe)

def _signed_id(secret_key: str, purpose: bytes, object_id: uuid.UUID) -> str:
    mac = hmac.new(secret_key.encode(), purpose + b":" + object_id.bytes, hashlib.sha256).hexdigest()[:32]
    return f"{object_id.hex}.{mac}"


def _id_from_signed(secret_key: str, purpose: bytes, token: str) -> uuid.UUID | None:
    raw_id, _, _mac = token.partition(".")
    try:
        object_id = uuid.UUID(hex=raw_id)
    except ValueError:
        return None
    return object_id if hmac.compare_digest(_signed_id(secret_key, purpose, object_id), token) else None


def ack_token(secret_key: str, delivery_id: uuid.UUID) -> str:
    return _signed_id(secret_key, b"ack", delivery_id)


def delivery_id_from_ack_token(secret_key: str, token: str) -> uuid.UUID | None:
    """The delivery an acknowledgement link names, or None when the link was not made by this portal."""
    return _id_from_signed(secret_key, b"ack", token)


def unsubscribe_token(secret_key: str, subscriber_id: uuid.UUID) -> str:
    """The one-click unsubscribe link's token (RFC 8058): the link itself is the authority."""
    return _signed_id(secret_key, b"unsubscribe", subscriber_id)


def subscriber_id_from_unsubscribe_token(secret_key: str, token: str) -> uuid.UUID | None:
    """The public subscriber an unsubscribe link names, or None when the link was not made by this portal."""
    return _id_from_signed(secret_key, b"unsubscribe", token)
