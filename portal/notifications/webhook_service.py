"""Webhook endpoints of client organisations: create, change, rotate the secret, enable, disable, delete, send a
test event; and what the delivery worker asks of them.

Invariants:
- an endpoint belongs to one client organisation; its own members with ``manage_tokens`` (and its API tokens with
  ``webhooks:write``) manage it; vendor staff with ``view_clients`` (and vendor tokens) see it and change nothing;
  anyone else gets 404 (``visible_org``), someone who can see but not act gets 403;
- a URL is saved only when ``webhooks.check_target`` accepts it (http(s); public addresses unless private ones
  are allowed); the sender checks again on every connection;
- the signing secret leaves this module once, as the return value of create and rotate; it is stored encrypted,
  never logged and never audited; after a rotation the previous secret keeps signing for ``ROTATION_OVERLAP``;
- disabling (by a person, or because the receiver answered 410) or deleting an endpoint cancels its queued
  deliveries that no worker holds; past deliveries stay as evidence;
- every change writes a ``webhook_endpoint:*`` audit event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.accounts.service import client_orgs, visible_org
from portal.actors import Actor
from portal.db import utcnow
from portal.errors import Forbidden, InvalidInput, NotFound
from portal.notifications import catalog
from portal.notifications.models import Delivery, DeliveryStatus, Notice, WebhookEndpoint
from portal.notifications.service import notify_endpoint
from portal.notifications.webhooks import check_target, new_secret
from portal.security import encrypt_field
from portal.settings import Settings
from portal.tenancy import get_scoped, scoped

WRITE_SCOPE = "webhooks:write"
ROTATION_OVERLAP = dt.timedelta(hours=24)
MAX_ENDPOINTS = 20
MAX_DESCRIPTION = 200
RECENT_DELIVERIES = 20


@dataclass(frozen=True)
class EndpointInput:
    """An endpoint form or API body as given; the service checks it after it checked who may act."""

    url: str
    description: str
    topics: list[str]


@dataclass(frozen=True)
class Overview:
    org: Organisation
    endpoints: list[WebhookEndpoint]
    can_manage: bool
    # For the vendor organisation: every client with its numbers of enabled and disabled endpoints.
    clients: list[tuple[Organisation, int, int]]


@dataclass(frozen=True)
class EndpointView:
    org: Organisation
    endpoint: WebhookEndpoint
    deliveries: list[Delivery]  # the newest first, with their notice and attempts loaded
    can_manage: bool
    previous_secret_until: dt.datetime | None  # while a rotation overlaps: until when the old secret signs


# ---------------------------------------------------------------- who may do what

def _is_token(actor: Actor) -> bool:
    return actor.membership is None and not actor.trusted


async def _visible_org(session: AsyncSession, actor: Actor, org_id: uuid.UUID | str) -> Organisation:
    if actor.trusted:
        try:
            org = await session.get(Organisation, uuid.UUID(str(org_id)))
        except ValueError:
            org = None
        if org is None:
            raise NotFound()
        return org
    org = await visible_org(session, actor=actor, org_id=org_id)
    own = actor.org is not None and actor.org.id == org.id
    if _is_token(actor):
        if WRITE_SCOPE not in actor.scopes:
            raise Forbidden()
    elif own and not org.is_vendor:
        actor.require(Permission.MANAGE_TOKENS)
    else:
        actor.require(Permission.VIEW_CLIENTS)
    return org


def can_manage(actor: Actor, org: Organisation) -> bool:
    """Only the client organisation itself changes its endpoints (vendor staff only look)."""
    if actor.trusted:
        return not org.is_vendor
    if org.is_vendor or actor.org is None or actor.org.id != org.id:
        return False
    return WRITE_SCOPE in actor.scopes if _is_token(actor) else actor.can(Permission.MANAGE_TOKENS)


def _client(org: Organisation) -> Organisation:
    if org.is_vendor:
        raise NotFound("Webhook endpoints belong to client organisations.")
    return org


async def manageable_org(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str) -> Organisation:
    """The client organisation whose endpoints ``actor`` may change: 404 when it cannot see it, 403 when it may
    only look."""
    org = _client(await _visible_org(session, actor, org_id))
    if not can_manage(actor, org):
        raise Forbidden("Only the organisation's own administrators change its webhook endpoints.")
    return org


async def _endpoint_of(session: AsyncSession, actor: Actor, org_id: uuid.UUID | str,
                       endpoint_id: uuid.UUID | str) -> tuple[Organisation, WebhookEndpoint]:
    org = await manageable_org(session, actor=actor, org_id=org_id)
    return org, await get_scoped(session, WebhookEndpoint, endpoint_id, org)


# ---------------------------------------------------------------- reading

async def endpoints_of(session: AsyncSession, *, org: Organisation) -> list[WebhookEndpoint]:
    statement = scoped(select(WebhookEndpoint), WebhookEndpoint, org)
    return list((await session.execute(statement.order_by(WebhookEndpoint.created_at))).scalars())


async def overview(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str) -> Overview:
    """The endpoints page: a client's endpoints, or for the vendor, each client's numbers of endpoints."""
    org = await _visible_org(session, actor, org_id)
    if not org.is_vendor:
        return Overview(org, await endpoints_of(session, org=org), can_manage(actor, org), [])
    rows = (await session.execute(
        select(WebhookEndpoint.org_id, WebhookEndpoint.enabled, func.count()).group_by(
            WebhookEndpoint.org_id, WebhookEndpoint.enabled)
    )).all()
    counts = {(owner, bool(enabled)): int(n) for owner, enabled, n in rows}
    clients = [(client, counts.get((client.id, True), 0), counts.get((client.id, False), 0))
               for client, _members in await client_orgs(session, actor=actor)]
    return Overview(org, [], False, clients)


async def list_endpoints(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str
                         ) -> tuple[Organisation, list[WebhookEndpoint]]:
    """A client organisation's endpoints, for whoever may see them."""
    org = _client(await _visible_org(session, actor, org_id))
    return org, await endpoints_of(session, org=org)


async def endpoint_view(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str,
                        endpoint_id: uuid.UUID | str) -> EndpointView:
    """One endpoint with its latest deliveries and their attempts, for whoever may see the organisation's."""
    org = _client(await _visible_org(session, actor, org_id))
    endpoint = await get_scoped(session, WebhookEndpoint, endpoint_id, org)
    deliveries = (await session.execute(
        scoped(select(Delivery), Delivery, org).where(Delivery.endpoint_id == endpoint.id)
        .options(joinedload(Delivery.notice), selectinload(Delivery.attempt_rows))
        .order_by(Delivery.created_at.desc(), Delivery.id).limit(RECENT_DELIVERIES)
    )).scalars().all()
    overlap = endpoint.previous_secret_until
    return EndpointView(org, endpoint, list(deliveries), can_manage(actor, org),
                        overlap if overlap is not None and overlap > utcnow() else None)


# ---------------------------------------------------------------- checks

def checked_topics(values: Iterable[str]) -> list[str]:
    """The topics named in ``values`` (sorted, no repeats); unknown or none is InvalidInput."""
    chosen = {value.strip() for value in values if value.strip()}
    known = {topic.value for topic in catalog.Topic}
    unknown = sorted(chosen - known)
    if unknown:
        raise InvalidInput(f"Unknown topic {', '.join(repr(t) for t in unknown)}. Choose from: "
                           f"{', '.join(sorted(known))}.", fields={"topics": "Unknown topic."})
    if not chosen:
        raise InvalidInput("Choose at least one topic the endpoint should receive.", fields={"topics": "Required."})
    return sorted(chosen)


def checked_description(raw: str) -> str:
    description = " ".join(raw.split())
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"The description is too long (at most {MAX_DESCRIPTION} characters).",
                           fields={"description": "Too long."})
    return description


async def _checked(session: AsyncSession, org: Organisation, data: EndpointInput, settings: Settings,
                   existing: WebhookEndpoint | None = None) -> tuple[str, str, list[str]]:
    description = checked_description(data.description)
    topics = checked_topics(data.topics)
    url = data.url.strip()
    others = [e for e in await endpoints_of(session, org=org) if existing is None or e.id != existing.id]
    if existing is None and len(others) >= MAX_ENDPOINTS:
        raise InvalidInput(f"An organisation has at most {MAX_ENDPOINTS} webhook endpoints. Delete one first.")
    if any(e.url == url for e in others):
        raise InvalidInput("Another endpoint already has this URL: change its topics instead.",
                           fields={"url": "Already in use."})
    if existing is None or url != existing.url:
        url = await check_target(url, settings)
    return url, description, topics


async def _cancel_queued(session: AsyncSession, endpoint: WebhookEndpoint, why: str) -> int:
    """Cancel the endpoint's queued deliveries that no worker holds right now (those record their outcome)."""
    now = utcnow()
    result = await session.execute(
        update(Delivery)
        .where(Delivery.endpoint_id == endpoint.id, Delivery.status == DeliveryStatus.QUEUED,
               or_(Delivery.lease_until.is_(None), Delivery.lease_until < now))
        .values(status=DeliveryStatus.CANCELLED, last_error=why, lease_until=None, leased_by=None)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# ---------------------------------------------------------------- changes

async def create_endpoint(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str, settings: Settings,
                          data: EndpointInput) -> tuple[WebhookEndpoint, str]:
    """A client organisation's managers add an endpoint for some topics; returns it with its secret, which is
    never available again."""
    org = await manageable_org(session, actor=actor, org_id=org_id)
    url, description, topics = await _checked(session, org, data, settings)
    secret = new_secret()
    endpoint = WebhookEndpoint(id=uuid.uuid4(), org_id=org.id, url=url, description=description, topics=topics,
                               secret_encrypted=encrypt_field(settings.secret_key, secret), enabled=True,
                               created_at=utcnow())
    session.add(endpoint)
    await session.flush()
    await audit.record(session, actor=actor, tag="webhook_endpoint:created", subject=endpoint,
                       data={"url": url, "description": description, "topics": topics})
    return endpoint, secret


async def update_endpoint(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str,
                          endpoint_id: uuid.UUID | str, settings: Settings, data: EndpointInput) -> WebhookEndpoint:
    """Change an endpoint's URL (checked again), description or topics; the secret stays."""
    org, endpoint = await _endpoint_of(session, actor, org_id, endpoint_id)
    url, description, topics = await _checked(session, org, data, settings, existing=endpoint)
    changed = {name: value for name, value in (("url", url), ("description", description), ("topics", topics))
               if getattr(endpoint, name) != value}
    if changed:
        endpoint.url, endpoint.description, endpoint.topics = url, description, topics
        await session.flush()
        await audit.record(session, actor=actor, tag="webhook_endpoint:updated", subject=endpoint, data=changed)
    return endpoint


async def rotate_secret(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str,
                        endpoint_id: uuid.UUID | str, settings: Settings) -> tuple[WebhookEndpoint, str]:
    """Give an endpoint a new secret; the current one keeps signing too for ``ROTATION_OVERLAP``. Returns the new
    secret, which is never available again."""
    _org, endpoint = await _endpoint_of(session, actor, org_id, endpoint_id)
    secret = new_secret()
    until = utcnow() + ROTATION_OVERLAP
    endpoint.previous_secret_encrypted = endpoint.secret_encrypted
    endpoint.previous_secret_until = until
    endpoint.secret_encrypted = encrypt_field(settings.secret_key, secret)
    await session.flush()
    await audit.record(session, actor=actor, tag="webhook_endpoint:secret_rotated", subject=endpoint,
                       data={"previous_secret_valid_until": until.isoformat()})
    return endpoint, secret


async def _disable(session: AsyncSession, actor: Actor, endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.enabled = False
    endpoint.disabled_at = utcnow()
    endpoint.disabled_reason = reason[:300]
    cancelled = await _cancel_queued(session, endpoint, f"Cancelled: the endpoint was disabled ({reason[:200]}).")
    await session.flush()
    await audit.record(session, actor=actor, tag="webhook_endpoint:disabled", subject=endpoint,
                       data={"reason": endpoint.disabled_reason, "cancelled_deliveries": cancelled})


async def set_enabled(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str,
                      endpoint_id: uuid.UUID | str, enabled: bool) -> WebhookEndpoint:
    """Enable or disable an endpoint; disabling cancels what is queued for it. Setting the current state changes
    nothing."""
    _org, endpoint = await _endpoint_of(session, actor, org_id, endpoint_id)
    if enabled and not endpoint.enabled:
        endpoint.enabled = True
        endpoint.disabled_at = None
        endpoint.disabled_reason = ""
        await session.flush()
        await audit.record(session, actor=actor, tag="webhook_endpoint:enabled", subject=endpoint,
                           data={"url": endpoint.url})
    elif not enabled and endpoint.enabled:
        await _disable(session, actor, endpoint, f"disabled by {actor.label}")
    return endpoint


async def delete_endpoint(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str,
                          endpoint_id: uuid.UUID | str) -> WebhookEndpoint:
    """Delete an endpoint; its queued deliveries are cancelled, its past deliveries stay as evidence."""
    _org, endpoint = await _endpoint_of(session, actor, org_id, endpoint_id)
    cancelled = await _cancel_queued(session, endpoint, "Cancelled: the endpoint was deleted.")
    await audit.record(session, actor=actor, tag="webhook_endpoint:deleted", subject=endpoint,
                       data={"url": endpoint.url, "topics": endpoint.topics, "cancelled_deliveries": cancelled})
    await session.delete(endpoint)
    await session.flush()
    return endpoint


async def send_test_event(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str,
                          endpoint_id: uuid.UUID | str, settings: Settings) -> Notice:
    """Queue a ``webhook.test`` event to one enabled endpoint, through the outbox like every notice."""
    org, endpoint = await _endpoint_of(session, actor, org_id, endpoint_id)
    if not endpoint.enabled:
        raise InvalidInput("The endpoint is disabled: enable it before sending a test event.")
    content = catalog.webhook_test(endpoint_id=str(endpoint.id),
                                   link=f"{settings.base_url}/orgs/{org.id}/webhooks/{endpoint.id}")
    return await notify_endpoint(session, actor=actor, content=content, org=org, endpoint=endpoint)


# ---------------------------------------------------------------- for the delivery worker

async def disable_gone_endpoint(session: AsyncSession, endpoint_id: uuid.UUID, reason: str, *,
                                actor: Actor | None = None) -> WebhookEndpoint | None:
    """The receiver answered 410 Gone: disable the endpoint and cancel what is queued for it (the worker calls
    this when ``AttemptResult.gone``). An endpoint already disabled or deleted is left as it is."""
    endpoint = await session.get(WebhookEndpoint, endpoint_id, with_for_update=True)
    if endpoint is None or not endpoint.enabled:
        return endpoint
    await _disable(session, actor or Actor.system("worker"), endpoint, reason)
    return endpoint
