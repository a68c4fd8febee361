"""Who receives what: members' own topic subscriptions, the recipients of each notice type, and public subscribers.

Invariants:
- a member's subscriptions belong to one organisation and only that member changes them;
- the recipients shown for a notice type are computed by the same function ``notify`` uses, so the page tells the
  truth about who would receive the next notice;
- public subscribers follow public topics only and receive nothing before they confirm from their inbox (double
  opt-in); the confirmation token is random and only its SHA-256 is stored on the subscriber; confirming or
  leaving retires it;
- asking to subscribe answers the same whatever the address's state, so the page reveals no subscriber; an address
  gets at most ``CONFIRMATIONS_PER_ADDRESS`` confirmation mails an hour and the portal at most
  ``CONFIRMATIONS_PER_HOUR``, so the form cannot be used to flood an inbox;
- leaving (one-click unsubscribe) also cancels what is still queued for the subscriber.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import Membership, Organisation
from portal.accounts.roles import Role
from portal.accounts.service import members, normalise_email
from portal.actors import Actor
from portal.db import utcnow
from portal.errors import Forbidden, InvalidInput, NotFound, TooManyRequests
from portal.notifications import catalog
from portal.notifications.catalog import NoticeType, Topic
from portal.notifications.models import (
    Channel,
    Delivery,
    DeliveryStatus,
    Notice,
    PublicSubscriber,
    SubscriberStatus,
    Subscription,
)
from portal.notifications.service import (
    Recipient,
    notify_subscriber,
    recipients_in,
    subscriber_id_from_unsubscribe_token,
)
from portal.security import hash_token, new_token
from portal.tenancy import scoped

PUBLIC_TOPICS: tuple[Topic, ...] = tuple(dict.fromkeys(s.topic for s in catalog.SPECS.values() if s.public))
CONFIRMATIONS_PER_ADDRESS = 3  # confirmation mails to one address per hour
CONFIRMATIONS_PER_HOUR = 300  # confirmation mails the whole portal sends per hour
CAP_WINDOW = dt.timedelta(hours=1)
INVALID_CONFIRM_LINK = ("This confirmation link is not valid any more: it was used already or replaced by a newer "
                        "one. Subscribe again to get a new link.")
INVALID_UNSUBSCRIBE_LINK = "This unsubscribe link is not valid. Use the link in the most recent email you received."
NOTICE_LABELS: dict[NoticeType, str] = {
    NoticeType.SUBSCRIPTION_CONFIRMATION: "Subscription confirmation",
    NoticeType.SUBPROCESSOR_CHANGE: "Sub-processor change",
    NoticeType.DPA_VERSION: "New DPA version",
    NoticeType.SIGNATURE_REQUEST: "Signature request",
    NoticeType.AGREEMENT_EXECUTED: "Agreement executed",
    NoticeType.BREACH_NOTICE: "Breach notice",
    NoticeType.BREACH_UPDATE: "Breach update",
    NoticeType.AI_COMMITMENT_CHANGE: "AI commitment change",
    NoticeType.OBJECTION_RESOLVED: "Objection resolved",
    NoticeType.SUBPROCESSOR_FAILURE: "Sub-processor failure",
    NoticeType.COMPLIANCE_INABILITY: "Inability to comply",
    NoticeType.AUTHORITY_REQUEST: "Public authority request",
}
TOPIC_NAMES: dict[str, str] = {t.value: t.label for t in Topic}


def notice_label(notice_type: str) -> str:
    """A notice type as people read it."""
    try:
        return NOTICE_LABELS[NoticeType(notice_type)]
    except (KeyError, ValueError):
        return notice_type.replace("_", " ").capitalize()


# Client roles that must be held by someone for notices the DPA requires (legal requirement 8).
REQUIRED_CONTACTS: tuple[tuple[Role, str], ...] = (
    (Role.PRIVACY_CONTACT, "sub-processor changes and AI commitment notices"),
    (Role.SECURITY_CONTACT, "personal-data breach notices"),
)


# ---------------------------------------------------------------- members' own subscriptions

def parse_topics(values: Iterable[str], *, allowed: Iterable[Topic] = tuple(Topic)) -> list[str]:
    """The topics named in ``values`` (deduplicated, in catalog order); InvalidInput for an unknown one."""
    allowed_values = [t.value for t in allowed]
    chosen = set(values)
    unknown = chosen - set(allowed_values)
    if unknown:
        raise InvalidInput(f"Unknown topic: {sorted(unknown)[0][:40]!r}.", fields={"topics": "Unknown topic."})
    return [t for t in allowed_values if t in chosen]


async def member_topics(session: AsyncSession, *, membership: Membership) -> list[str]:
    """The topics ``membership``'s person subscribed to in its organisation."""
    rows = (await session.execute(scoped(
        select(Subscription.topic).where(Subscription.user_id == membership.user_id), Subscription, membership.org
    ))).scalars().all()
    return [t.value for t in Topic if t.value in set(rows)]


async def set_member_topics(session: AsyncSession, *, actor: Actor, membership: Membership,
                            topics: Iterable[str]) -> list[str]:
    """A member chooses the topics they receive beyond their roles; only they (or a token they created in this
    organisation) can change their own."""
    own_session = actor.membership is not None and actor.membership.id == membership.id
    own_token = (actor.on_behalf_of == membership.user_id and actor.org is not None
                 and actor.org.id == membership.org_id)  # tenancy: a guard on loaded objects, not a query filter
    if not (own_session or own_token):
        raise Forbidden("Only members of this organisation choose their own subscriptions.")
    wanted = parse_topics(topics)
    current = await member_topics(session, membership=membership)
    added = [t for t in wanted if t not in current]
    removed = [t for t in current if t not in wanted]
    if removed:
        for row in (await session.execute(scoped(
            select(Subscription).where(Subscription.user_id == membership.user_id, Subscription.topic.in_(removed)),
            Subscription, membership.org,
        ))).scalars():
            await session.delete(row)
    session.add_all([Subscription(id=uuid.uuid4(), org_id=membership.org.id, user_id=membership.user_id, topic=t)
                     for t in added])
    await session.flush()
    if added or removed:
        await audit.record(session, actor=actor, tag="subscription:updated", subject=membership,
                           data={"added": added, "removed": removed})
    return wanted


# ---------------------------------------------------------------- who receives what

@dataclass(frozen=True)
class TypeRecipients:
    spec: catalog.NoticeSpec
    people: list[tuple[str, str, str]]  # (name, email, reason)
    webhooks: list[Recipient]


@dataclass(frozen=True)
class TopicRecipients:
    topic: Topic
    types: list[TypeRecipients]


@dataclass(frozen=True)
class MissingContact:
    role: Role
    needed_for: str


async def recipients_by_topic(session: AsyncSession, *, org: Organisation) -> list[TopicRecipients]:
    """For each topic and notice type, who in ``org`` would receive the next notice and why."""
    names = {m.user_id: m.user.name for m in await members(session, org=org)}
    found: list[TopicRecipients] = []
    for topic in Topic:
        types = []
        for spec in catalog.SPECS.values():
            if spec.topic is not topic or not spec.roles:  # those without roles go to one chosen recipient
                continue
            recipients = await recipients_in(session, org, spec)
            people = [(names.get(r.user_id, "") if r.user_id else "", r.email or "", r.reason)
                      for r in recipients if r.channel is Channel.EMAIL]
            types.append(TypeRecipients(spec, people, [r for r in recipients if r.channel is Channel.WEBHOOK]))
        found.append(TopicRecipients(topic, types))
    return found


async def missing_contacts(session: AsyncSession, *, org: Organisation) -> list[MissingContact]:
    """The designated contacts ``org`` lacks: nobody active holds the privacy or the security contact role."""
    held = {role for m in await members(session, org=org) if m.user.disabled_at is None for role in m.roles}
    return [MissingContact(role, needed) for role, needed in REQUIRED_CONTACTS if role not in held]


# ---------------------------------------------------------------- public subscribers (double opt-in)

async def _subscriber_by_email(session: AsyncSession, email: str) -> PublicSubscriber | None:
    return (await session.execute(
        select(PublicSubscriber).where(PublicSubscriber.email == email)
    )).scalar_one_or_none()


async def _confirmations_since(session: AsyncSession, since: dt.datetime,
                               subscriber: PublicSubscriber | None = None) -> int:
    statement = (select(func.count()).select_from(Delivery).join(Notice, Notice.id == Delivery.notice_id)
                 .where(Notice.type == NoticeType.SUBSCRIPTION_CONFIRMATION.value, Delivery.created_at > since))
    if subscriber is not None:
        statement = statement.where(Delivery.subscriber_id == subscriber.id)
    return int((await session.execute(statement)).scalar_one())


async def request_subscription(session: AsyncSession, *, actor: Actor, email: str, topics: Iterable[str],
                               base_url: str) -> None:
    """Queue a confirmation mail for ``email`` and ``topics`` (public topics only); a confirmed address is left
    as it is and gets no mail, and every case answers the same so the form reveals no subscriber."""
    address = normalise_email(email)
    wanted = parse_topics(topics, allowed=PUBLIC_TOPICS)
    if not wanted:
        raise InvalidInput("Choose at least one kind of update.", fields={"topics": "Choose at least one."})
    now = utcnow()
    if await _confirmations_since(session, now - CAP_WINDOW) >= CONFIRMATIONS_PER_HOUR:
        raise TooManyRequests("We are receiving too many subscription requests right now. Please try again in "
                              "an hour.")
    subscriber = await _subscriber_by_email(session, address)
    created = subscriber is None
    if subscriber is None:
        subscriber = PublicSubscriber(id=uuid.uuid4(), email=address, topics=wanted,
                                      status=SubscriberStatus.PENDING)
        try:
            async with session.begin_nested():
                session.add(subscriber)
                await session.flush()
        except IntegrityError:  # the same address asked at the same moment: treat it like a repeat
            subscriber, created = await _subscriber_by_email(session, address), False
            if subscriber is None:
                raise
    if not created:
        if subscriber.status is SubscriberStatus.CONFIRMED:
            return
        if await _confirmations_since(session, now - CAP_WINDOW, subscriber) >= CONFIRMATIONS_PER_ADDRESS:
            return  # the earlier link still works; nothing more goes to this inbox this hour
    token = new_token()
    subscriber.topics = wanted
    subscriber.status = SubscriberStatus.PENDING
    subscriber.confirm_token_hash = hash_token(token)
    subscriber.unsubscribed_at = None
    await session.flush()
    await notify_subscriber(session, actor=actor, subscriber=subscriber, content=catalog.subscription_confirmation(
        topics=wanted, confirm_link=f"{base_url.rstrip('/')}/subscribe/confirm/{token}"))
    await audit.record(session, actor=actor, tag="public_subscriber:requested", subject=subscriber,
                       data={"topics": wanted})


async def pending_subscriber(session: AsyncSession, *, token: str, for_update: bool = False) -> PublicSubscriber:
    """The subscriber waiting for the confirmation ``token``, or 404."""
    if not token or len(token) > 200:
        raise NotFound(INVALID_CONFIRM_LINK)
    statement = select(PublicSubscriber).where(PublicSubscriber.confirm_token_hash == hash_token(token),
                                               PublicSubscriber.status == SubscriberStatus.PENDING)
    subscriber = (await session.execute(
        statement.with_for_update() if for_update else statement)).scalar_one_or_none()
    if subscriber is None:
        raise NotFound(INVALID_CONFIRM_LINK)
    return subscriber


async def confirm_subscription(session: AsyncSession, *, actor: Actor, token: str) -> PublicSubscriber:
    """Confirm the subscription the link names; the link then stops working."""
    subscriber = await pending_subscriber(session, token=token, for_update=True)  # a double click confirms once
    subscriber.status = SubscriberStatus.CONFIRMED
    subscriber.confirmed_at = utcnow()
    subscriber.confirm_token_hash = None
    await session.flush()
    await audit.record(session, actor=actor, tag="public_subscriber:confirmed", subject=subscriber,
                       data={"topics": subscriber.topics})
    return subscriber


async def subscriber_for_link(session: AsyncSession, *, secret_key: str, token: str,
                              for_update: bool = False) -> PublicSubscriber:
    """The subscriber an unsubscribe link was made for, or 404."""
    subscriber_id = subscriber_id_from_unsubscribe_token(secret_key, token) if len(token) <= 200 else None
    subscriber = None
    if subscriber_id is not None:
        subscriber = await session.get(PublicSubscriber, subscriber_id, with_for_update=for_update)
    if subscriber is None:
        raise NotFound(INVALID_UNSUBSCRIBE_LINK)
    return subscriber


async def unsubscribe(session: AsyncSession, *, actor: Actor, subscriber: PublicSubscriber) -> bool:
    """Stop everything to ``subscriber`` at once, queued mail included; False when they had already left."""
    if subscriber.status is SubscriberStatus.UNSUBSCRIBED:
        return False
    previous = subscriber.status
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
    subscriber.unsubscribed_at = utcnow()
    subscriber.confirm_token_hash = None
    cancelled = (await session.execute(
        update(Delivery).where(Delivery.subscriber_id == subscriber.id, Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.CANCELLED, lease_until=None, leased_by=None,
                last_error="The subscriber unsubscribed before it was sent.")
        .execution_options(synchronize_session=False)
    )).rowcount  # type: ignore[attr-defined]
    await session.flush()
    await audit.record(session, actor=actor, tag="public_subscriber:unsubscribed", subject=subscriber,
                       data={"was": previous.value, "cancelled_deliveries": int(cancelled)})
    return True
