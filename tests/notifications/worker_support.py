"""Helpers for the worker and email tests: an SMTP sink that can be slow, refuse or be switched off, notices to
queue, and a worker run on the test database."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from portal.accounts.models import Organisation
from portal.accounts.roles import Role
from portal.actors import Actor
from portal.db import make_sessionmaker
from portal.notifications import catalog
from portal.notifications.models import Delivery, DeliveryAttempt, Notice
from portal.notifications.senders import Senders
from portal.notifications.service import notify
from portal.notifications.worker import DeliveryWorker, WorkerOptions, WorkerStats
from portal.settings import Settings
from tests.conftest import free_port


def breach(incident: str = "INC-7") -> catalog.NoticeContent:
    return catalog.breach_notice(incident=incident, aware_at=dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC),
                                 nature="Misdirected export", categories="Customer contacts",
                                 approximate_numbers="about 120 records", likely_consequences="Phishing risk",
                                 measures="Export revoked", contact_point="security@lumen.example",
                                 link="http://testserver/breaches/1")


def subprocessor_change() -> catalog.NoticeContent:
    return catalog.subprocessor_change(
        version=4, effective_date=dt.date(2026, 12, 24), objection_deadline=dt.date(2026, 12, 20),
        changes=[{"kind": "added", "name": "Kestrel Vector GmbH", "purpose": "Embeddings", "locations": ["DE"]}],
        link="http://testserver/subprocessors")


async def clients_with_security_contacts(world: Any, count: int, *, contacts: int = 2) -> list[Organisation]:
    """``count`` client organisations with ``contacts`` security contacts and one signatory (no breach mail)."""
    orgs = []
    for n in range(count):
        org = await world.client_org(f"Client {n}")
        for k in range(contacts):
            await world.person(org, Role.SECURITY_CONTACT, email=f"sec{k}@client-{n}.example")
        await world.person(org, Role.SIGNATORY, email=f"signatory@client-{n}.example")
        orgs.append(org)
    return orgs


async def queue_breach(world: Any, orgs: list[Organisation], content: catalog.NoticeContent | None = None,
                       ) -> list[Notice]:
    notices = await notify(world.session, actor=Actor.system("test"), content=content or breach(), orgs=orgs)
    await world.commit()
    return notices


async def all_deliveries(db: AsyncSession) -> list[Delivery]:
    """Every delivery as the database has it now (not as the session last saw it)."""
    rows = (await db.execute(select(Delivery).execution_options(populate_existing=True))).scalars().all()
    await db.commit()
    return list(rows)


async def attempts_of(db: AsyncSession, delivery: Delivery) -> list[DeliveryAttempt]:
    rows = (await db.execute(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery.id)
                             .order_by(DeliveryAttempt.number))).scalars().all()
    await db.commit()
    return list(rows)


def with_smtp(settings: Settings, url: str) -> Settings:
    return dataclasses.replace(settings, smtp_url=url)


async def run_worker_once(engine: AsyncEngine, settings: Settings, *, senders: Senders | None = None,
                          identity: str | None = None, **options: Any) -> WorkerStats:
    worker = DeliveryWorker(make_sessionmaker(engine), settings, senders=senders, identity=identity,
                            options=WorkerOptions(**options))
    return await worker.run(once=True)


async def eventually(check: Callable[[], Awaitable[bool]], *, within: float = 60.0, step: float = 0.1) -> None:
    """Wait until ``check()`` is true; fail after ``within`` seconds (a limit for a stuck test, not a timing claim)."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "the condition did not come true"
        await asyncio.sleep(step)


# ---------------------------------------------------------------- a controllable SMTP sink

@dataclass
class Sink:
    """An aiosmtpd server on a fixed port that may delay each message or refuse recipients; start/stop at will."""

    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    delay: float = 0.0
    refuse: dict[str, str] = field(default_factory=dict)  # address -> SMTP reply, e.g. "550 5.1.1 unknown user"
    messages: list[EmailMessage] = field(default_factory=list)
    controller_options: dict[str, Any] = field(default_factory=dict)
    _controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> Sink:
        self._controller = Controller(self, hostname=self.host, port=self.port, **self.controller_options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                          rcpt_options: list[str]) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        if self.delay:
            await asyncio.sleep(self.delay)
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return f"250 2.0.0 Ok: queued as {len(self.messages)}"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def message_ids(self) -> list[str]:
        return [str(m["Message-ID"]) for m in self.messages]


# ---------------------------------------------------------------- a webhook receiver

@dataclass
class HookReceiver:
    """A plain HTTP server on loopback that records each POST and answers ``status``."""

    status: int = 204
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    _server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def start(self) -> HookReceiver:
        import http.server
        import threading

        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


async def add_endpoint(world: Any, org: Organisation, url: str, topics: list[str]) -> tuple[Any, str]:
    """A webhook endpoint of ``org`` with a fresh secret (returned, as the portal shows it once)."""
    import uuid

    from portal.db import utcnow
    from portal.notifications.models import WebhookEndpoint
    from portal.notifications.webhooks import new_secret
    from portal.security import encrypt_field

    secret = new_secret()
    endpoint = WebhookEndpoint(id=uuid.uuid4(), org_id=org.id, url=url, topics=topics, enabled=True,
                               secret_encrypted=encrypt_field(world.settings.secret_key, secret), created_at=utcnow())
    world.session.add(endpoint)
    await world.commit()
    return endpoint, secret
