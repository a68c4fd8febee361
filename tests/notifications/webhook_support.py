"""Webhook test support: a real receiver (Starlette under uvicorn on loopback) that verifies every request with the
reference ``standardwebhooks`` library and dedupes on ``webhook-id``, settings that allow private targets (the
receiver is on 127.0.0.1), and a small delivery loop standing in for the worker: claim, send, record.

Import the fixtures by name into a test module: ``from tests.notifications.webhook_support import receiver as
receiver`` (and ``settings``, ``allow_private`` for settings that allow private targets).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import selectinload
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from portal.accounts.models import Organisation
from portal.actors import Actor
from portal.db import make_sessionmaker, utcnow
from portal.notifications import catalog, outbox, webhook_service
from portal.notifications.models import Delivery, DeliveryStatus, WebhookEndpoint
from portal.notifications.outbox import AttemptResult
from portal.notifications.webhook_service import EndpointInput
from portal.notifications.webhooks import WebhookSender
from portal.settings import Settings
from tests.conftest import SMTPSink, free_port, make_settings

LEASE = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0  # seconds to wait before answering


@dataclass
class Received:
    webhook_id: str
    timestamp: str
    signatures: list[str]
    body: bytes
    verified_with: list[int]  # indexes into Receiver.secrets of the secrets whose signature matched
    duplicate: bool
    status: int


@dataclass
class Receiver:
    """Records every request; answers from ``script`` first (in order), then 204 (new id) / 200 (duplicate)."""

    base_url: str
    secrets: list[str] = field(default_factory=list)
    script: list[Reply] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    seen_ids: set[str] = field(default_factory=set)
    elsewhere_hits: int = 0

    @property
    def url(self) -> str:
        return f"{self.base_url}/hook"

    def answer(self, *replies: Reply | int) -> None:
        self.script.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    @property
    def unique(self) -> list[Received]:
        """Verified requests, one per ``webhook-id`` (what a deduplicating receiver processes)."""
        return [r for r in self.requests if r.verified_with and not r.duplicate and 200 <= r.status < 300]

    async def hook(self, request: Request) -> Response:
        body = await request.body()
        headers = dict(request.headers)
        verified = []
        for index, secret in enumerate(self.secrets):
            try:
                Webhook(secret).verify(body, headers)
            except (WebhookVerificationError, ValueError):  # the reference library raises both
                continue
            verified.append(index)
        webhook_id = headers.get("webhook-id", "")
        duplicate = webhook_id in self.seen_ids
        if not verified:
            reply = Reply(400, body="bad signature")
        elif self.script:
            reply = self.script.pop(0)
        else:
            reply = Reply(200 if duplicate else 204)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if verified and 200 <= reply.status < 300:
            self.seen_ids.add(webhook_id)
        self.requests.append(Received(webhook_id, headers.get("webhook-timestamp", ""),
                                      headers.get("webhook-signature", "").split(" "), body, verified, duplicate,
                                      reply.status))
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    async def elsewhere(self, request: Request) -> Response:
        self.elsewhere_hits += 1
        return Response("you followed a redirect", status_code=200)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    port = free_port()
    state = Receiver(f"http://127.0.0.1:{port}")
    app = Starlette(routes=[Route("/hook", state.hook, methods=["POST"]),
                            Route("/elsewhere", state.elsewhere, methods=["GET", "POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the webhook receiver did not start")
        time.sleep(0.02)
    yield state
    server.should_exit = True
    thread.join(timeout=20)


@pytest.fixture
def allow_private() -> bool:
    """Override with ``@pytest.mark.parametrize("allow_private", [False])`` to test the default refusal."""
    return True


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_sink: SMTPSink, allow_private: bool) -> Settings:
    return make_settings(database_url, tmp_path, smtp_url=smtp_sink.url, webhook_allow_private=allow_private)


# ---------------------------------------------------------------- arranging and delivering

def breach() -> catalog.NoticeContent:
    return catalog.breach_notice(incident="INC-9", aware_at=dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC),
                                 nature="Misdirected export", categories="Customer contacts",
                                 approximate_numbers="about 120 records", likely_consequences="Phishing risk",
                                 measures="Export revoked", contact_point="security@lumen.example",
                                 link="https://portal.example/breaches/9")


async def add_endpoint(world: Any, settings: Settings, org: Organisation, url: str,
                       topics: tuple[str, ...] = ("breaches",)) -> tuple[WebhookEndpoint, str]:
    endpoint, secret = await webhook_service.create_endpoint(
        world.session, actor=Actor.system("test"), org_id=org.id, settings=settings,
        data=EndpointInput(url=url, description="test receiver", topics=list(topics)))
    await world.commit()
    return endpoint, secret


async def deliver_due(engine: AsyncEngine, settings: Settings, *, worker: str = "test-worker"
                      ) -> list[AttemptResult]:
    """What the worker does, once: claim what is due, send each outside any transaction, record each outcome
    (and disable an endpoint that answered 410)."""
    sessions = make_sessionmaker(engine)
    async with sessions() as session:
        ids = await outbox.claim(session, worker=worker, batch=100, lease=LEASE)
        await session.commit()
    async with sessions() as session:
        deliveries = (await session.execute(
            select(Delivery).where(Delivery.id.in_(ids))
            .options(selectinload(Delivery.notice), selectinload(Delivery.endpoint))
        )).scalars().all()
        await session.commit()
    sender = WebhookSender(settings)
    results = []
    try:
        for delivery in deliveries:
            assert delivery.endpoint is not None, "only webhook deliveries are expected here"
            started = utcnow()
            result = await sender.send(delivery, delivery.notice, delivery.endpoint)
            async with sessions() as session:
                await outbox.record_attempt(session, delivery_id=delivery.id, worker=worker, started_at=started,
                                            result=result)
                if result.gone:
                    await webhook_service.disable_gone_endpoint(session, delivery.endpoint.id,
                                                                f"the receiver answered {result.response}")
                await session.commit()
            results.append(result)
    finally:
        await sender.aclose()
    return results


async def make_due(db: AsyncSession) -> None:
    """Skip the wait before the next attempt."""
    await db.execute(update(Delivery).where(Delivery.status == DeliveryStatus.QUEUED).values(available_at=utcnow()))
    await db.commit()


async def fresh(db: AsyncSession, model: Any, object_id: Any) -> Any:
    found = (await db.execute(select(model).where(model.id == object_id)
                              .execution_options(populate_existing=True))).scalar_one_or_none()
    await db.commit()
    return found
