"""Helpers for the recipients, public-subscription and evidence tests: notices, endpoints, and delivering them."""

from __future__ import annotations

import base64
import datetime as dt
import secrets
import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from portal.accounts.models import Organisation
from portal.actors import Actor
from portal.db import make_sessionmaker
from portal.notifications import catalog
from portal.notifications.models import Delivery, Notice, WebhookEndpoint
from portal.notifications.service import notify
from portal.notifications.worker import DeliveryWorker, WorkerOptions, WorkerStats
from portal.security import encrypt_field
from portal.settings import Settings
from tests.conftest import TEST_SECRET

SYSTEM = Actor.system("test")


def subprocessor_change(version: int = 7) -> catalog.NoticeContent:
    return catalog.subprocessor_change(
        version=version, effective_date=dt.date(2027, 1, 15), objection_deadline=dt.date(2027, 1, 1),
        changes=[{"kind": "added", "name": "Vectorly Inc.", "purpose": "Embedding search", "locations": ["US"],
                  "transfer_mechanism": "SCC module 3"}],
        link="http://testserver/subprocessors")


def breach() -> catalog.NoticeContent:
    return catalog.breach_notice(incident="INC-42", aware_at=dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC),
                                 nature="Misdirected export", categories="Contacts", approximate_numbers="120",
                                 likely_consequences="Phishing", measures="Export revoked",
                                 contact_point="security@lumen.example", link="http://testserver/breaches/1")


async def send(db: AsyncSession, content: catalog.NoticeContent, orgs: Sequence[Organisation], *,
               include_public: bool = False) -> list[Notice]:
    """Queue ``content`` as the business code would, and commit."""
    notices = await notify(db, actor=SYSTEM, content=content, orgs=orgs, include_public=include_public)
    await db.commit()
    return notices


async def endpoint(db: AsyncSession, org: Organisation, topics: list[str],
                   url: str = "http://127.0.0.1:9/hook") -> WebhookEndpoint:
    """A webhook endpoint row (the URL answers nothing: these tests look at who is queued, not at sending)."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    row = WebhookEndpoint(id=uuid.uuid4(), org_id=org.id, url=url, topics=topics,
                          secret_encrypted=encrypt_field(TEST_SECRET, secret))
    db.add(row)
    await db.commit()
    return row


async def deliveries_of(db: AsyncSession, notice: Notice) -> list[Delivery]:
    return list((await db.execute(select(Delivery).where(Delivery.notice_id == notice.id).order_by(Delivery.email)
                                  .execution_options(populate_existing=True))).scalars())


async def deliver_due(engine: AsyncEngine, settings: Settings) -> WorkerStats:
    """Run the real delivery worker until nothing is due (email goes to the test's SMTP sink)."""
    worker = DeliveryWorker(make_sessionmaker(engine), settings, options=WorkerOptions(poll_interval=0.05))
    return await worker.run(once=True)
