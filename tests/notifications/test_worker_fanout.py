"""Fan-out through the worker: many organisations, each recipient gets exactly its own notices; webhooks go out
through the same loop, and an endpoint that answers 410 is disabled."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

from sqlalchemy import select, update
from standardwebhooks import Webhook

from portal.accounts.models import User
from portal.accounts.roles import Role
from portal.accounts.service import add_membership
from portal.actors import Actor
from portal.audit.models import AuditEvent
from portal.audit.service import verify_chain
from portal.db import utcnow
from portal.notifications import catalog
from portal.notifications.models import Delivery, DeliveryStatus, Notice, WebhookEndpoint
from portal.notifications.service import delivery_id_from_ack_token, notify, recipients_by_org, recipients_in
from tests.conftest import TEST_SECRET
from tests.notifications.worker_support import (
    HookReceiver,
    add_endpoint,
    all_deliveries,
    attempts_of,
    breach,
    clients_with_security_contacts,
    queue_breach,
    run_worker_once,
)


async def test_each_recipient_of_a_fan_out_gets_exactly_its_own_organisations_notices(world, db, engine, settings,
                                                                                       mail):
    orgs = await clients_with_security_contacts(world, 6)
    # One person is a security contact of two client organisations: one mail per organisation, each its own.
    shared = await world.person(orgs[0], Role.SECURITY_CONTACT, email="shared@x.example")
    both = await db.get_one(User, shared.user_id)
    await add_membership(db, actor=world.system, org=orgs[1], user=both, roles=[Role.SECURITY_CONTACT])
    await world.commit()
    spec = catalog.spec_for(catalog.NoticeType.BREACH_NOTICE)
    assert await recipients_by_org(db, orgs, spec) == {org.id: await recipients_in(db, org, spec) for org in orgs}

    notices = await queue_breach(world, orgs)
    await run_worker_once(engine, settings, batch=5, concurrency=3)

    deliveries = await all_deliveries(db)
    assert len(notices) == 6 and len(deliveries) == 6 * 2 + 2
    assert {d.status for d in deliveries} == {DeliveryStatus.SENT}
    assert len(mail.messages) == len(deliveries)
    names = {org.id: org.name for org in orgs}
    for delivery in deliveries:
        [message] = [m for m in mail.to(delivery.email) if m["Message-ID"] == delivery.message_id]
        text = mail.text_of(message)
        assert f"at {names[delivery.org_id]}." in text
        assert not any(f"at {name}." in text for org_id, name in names.items() if org_id != delivery.org_id)
        ack = mail.link_in(message, "/ack/").removeprefix("/ack/")
        assert delivery_id_from_ack_token(TEST_SECRET, ack) == delivery.id
    assert len(mail.to("shared@x.example")) == 2
    assert "signatory@client-0.example" not in {m["To"] for m in mail.messages}

    # One audit event per notice, each in its organisation, and the chain still verifies.
    events = (await db.execute(select(AuditEvent).where(AuditEvent.tag == "notice:created")
                               .order_by(AuditEvent.seq))).scalars().all()
    assert [(e.subject_id, e.org_id) for e in events] == [(str(n.id), n.org_id) for n in notices]
    assert [e.data["recipients"] for e in events] == [3, 3, 2, 2, 2, 2]
    assert (await verify_chain(db)).ok
    await db.commit()


async def test_webhooks_go_out_through_the_same_loop_signed_with_the_delivery_id(world, db, engine, settings):
    receiver = HookReceiver().start()
    try:
        [org] = await clients_with_security_contacts(world, 1, contacts=1)
        endpoint, secret = await add_endpoint(world, org, receiver.url, ["breaches"])
        await add_endpoint(world, org, receiver.url + "/other", ["dpa"])  # another topic: not a recipient
        [notice] = await queue_breach(world, [org])
        private = dataclasses.replace(settings, webhook_allow_private=True)

        stats = await run_worker_once(engine, private)
    finally:
        receiver.stop()

    assert stats.sent == 2  # the contact's mail and the one webhook
    [hook] = [d for d in await all_deliveries(db) if d.endpoint_id]
    assert hook.endpoint_id == endpoint.id and hook.status is DeliveryStatus.SENT
    [(headers, body)] = receiver.received
    assert headers["webhook-id"] == hook.webhook_id
    payload = Webhook(secret).verify(body, headers)  # the reference library, unchanged
    assert payload["type"] == "breach.notified" and payload["data"]["notice_id"] == str(notice.id)
    assert json.loads(body)["data"]["approximate_numbers"] == "about 120 records"
    [attempt] = await attempts_of(db, hook)
    assert attempt.ok and attempt.response.startswith("HTTP 2")


async def test_an_endpoint_that_answers_410_is_disabled_and_its_queued_deliveries_withdrawn(world, db, engine,
                                                                                          settings):
    receiver = HookReceiver(status=410).start()
    try:
        [org] = await clients_with_security_contacts(world, 1, contacts=0)  # webhooks only
        endpoint, _secret = await add_endpoint(world, org, receiver.url, ["breaches"])
        await queue_breach(world, [org])
        [waiting] = await queue_breach(world, [org], breach("INC-8"))
        # The second waits for a retry when the first learns the endpoint is gone.
        await db.execute(update(Delivery).where(Delivery.notice_id == waiting.id)
                         .values(available_at=utcnow() + dt.timedelta(hours=1)))
        await world.commit()
        private = dataclasses.replace(settings, webhook_allow_private=True)
        stats = await run_worker_once(engine, private)
        await notify(db, actor=Actor.system("test"), content=breach("INC-9"), orgs=[org])
        await world.commit()
    finally:
        receiver.stop()

    assert len(receiver.received) == 1  # the first answer was enough
    assert (stats.dead, stats.cancelled, stats.sent) == (1, 0, 0)
    first, second = sorted((d for d in await all_deliveries(db)), key=lambda d: d.attempts, reverse=True)
    assert first.status is DeliveryStatus.DEAD and first.dead_at is not None and "410" in first.last_error
    assert second.status is DeliveryStatus.CANCELLED and second.attempts == 0
    assert second.last_error == "Cancelled: the endpoint was disabled (The endpoint answered 410 Gone.)."
    gone = await db.get_one(WebhookEndpoint, endpoint.id, populate_existing=True)
    assert not gone.enabled and gone.disabled_at is not None and "410" in gone.disabled_reason
    tags = (await db.execute(select(AuditEvent.tag).where(AuditEvent.tag.in_(
        ["delivery:dead", "webhook_endpoint:disabled"])).order_by(AuditEvent.seq))).scalars().all()
    assert tags == ["delivery:dead", "webhook_endpoint:disabled"]
    assert len(await all_deliveries(db)) == 2  # the notice queued afterwards found no endpoint to send to
    await db.commit()


async def test_a_delivery_queued_for_an_endpoint_disabled_since_is_withdrawn_not_sent(world, db, engine, settings):
    receiver = HookReceiver().start()
    try:
        [org] = await clients_with_security_contacts(world, 1, contacts=1)
        endpoint, _secret = await add_endpoint(world, org, receiver.url, ["breaches"])
        await queue_breach(world, [org])
        (await db.get_one(WebhookEndpoint, endpoint.id)).enabled = False
        await world.commit()
        stats = await run_worker_once(engine, dataclasses.replace(settings, webhook_allow_private=True))
    finally:
        receiver.stop()

    assert receiver.received == [] and stats.cancelled == 1
    [hook] = [d for d in await all_deliveries(db) if d.endpoint_id]
    assert hook.status is DeliveryStatus.CANCELLED and hook.attempts == 0
    assert hook.last_error.startswith("The webhook endpoint was disabled.")
    assert (await db.execute(select(Notice))).scalars().all()
