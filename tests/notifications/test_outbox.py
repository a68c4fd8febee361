"""The outbox: notices become delivery rows in the business transaction; claims lease them; outcomes move them on."""

import asyncio
import datetime as dt

from sqlalchemy import func, select, update

from portal.accounts.roles import Role
from portal.actors import Actor
from portal.db import make_sessionmaker, utcnow
from portal.notifications import catalog, outbox
from portal.notifications.models import Delivery, DeliveryAttempt, DeliveryStatus, Notice
from portal.notifications.service import ack_token, delivery_id_from_ack_token, notify

LEASE = dt.timedelta(seconds=30)


def breach(link="https://portal.example/breaches/1"):
    return catalog.breach_notice(incident="INC-7", aware_at=dt.datetime(2026, 11, 20, 9, 30, tzinfo=dt.UTC),
                                 nature="Misdirected export", categories="Customer contacts",
                                 approximate_numbers="about 120 records", likely_consequences="Phishing risk",
                                 measures="Export revoked", contact_point="security@nordlicht.example", link=link)


async def _queue(world, db, *, orgs=1):
    created = []
    for n in range(orgs):
        org = await world.client_org(f"Client {n}")
        await world.person(org, Role.SECURITY_CONTACT)
        await world.person(org, Role.SECURITY_CONTACT, Role.PRIVACY_CONTACT)
        await world.person(org, Role.SIGNATORY)  # not a recipient of breach notices
        created.append(org)
    notices = await notify(db, actor=Actor.system("test"), content=breach(), orgs=created)
    await world.commit()
    return notices


async def test_a_rolled_back_change_leaves_no_notice(world, db, engine):
    org = await world.client_org()
    await world.person(org, Role.SECURITY_CONTACT)
    async with make_sessionmaker(engine)() as business:  # a real transaction, as at the request edge
        await notify(business, actor=Actor.system("test"), content=breach(), orgs=[org])
        await business.rollback()
    assert await db.scalar(select(func.count()).select_from(Notice)) == 0
    assert await db.scalar(select(func.count()).select_from(Delivery)) == 0


async def test_notify_writes_one_delivery_per_recipient_with_the_payload(world, db):
    [notice] = await _queue(world, db)
    deliveries = (await db.execute(select(Delivery))).scalars().all()
    assert len(deliveries) == 2  # the two security contacts; the signatory is not one
    assert {d.status for d in deliveries} == {DeliveryStatus.QUEUED}
    assert notice.payload["notice_type"] == "breach_notice"
    assert notice.payload["approximate_numbers"] == "about 120 records"
    assert notice.context["title"] == "Personal data breach notice: INC-7"


async def test_a_claim_leases_rows_to_one_worker_until_the_lease_ends(world, db, engine):
    await _queue(world, db)
    sessions = make_sessionmaker(engine)
    async with sessions() as a:
        first = await outbox.claim(a, worker="a", batch=10, lease=LEASE)
        await a.commit()
    async with sessions() as b:
        second = await outbox.claim(b, worker="b", batch=10, lease=LEASE)
        await b.commit()
    assert len(first) == 2 and second == []

    await db.execute(update(Delivery).values(lease_until=utcnow() - dt.timedelta(seconds=1)))
    await world.commit()
    async with sessions() as b:
        retaken = await outbox.claim(b, worker="b", batch=10, lease=LEASE)
        await b.commit()
    assert sorted(retaken) == sorted(first)  # a worker that died loses nothing
    attempts = (await db.execute(select(Delivery.attempts))).scalars().all()
    assert attempts == [2, 2]


async def test_only_the_lease_holder_records_an_outcome(world, db, engine):
    await _queue(world, db)
    sessions = make_sessionmaker(engine)
    async with sessions() as s:
        [one, _] = await outbox.claim(s, worker="a", batch=10, lease=LEASE)
        await s.commit()
    async with sessions() as s:
        lost = await outbox.record_attempt(s, delivery_id=one, worker="b", started_at=utcnow(),
                                           result=outbox.AttemptResult(ok=True, response="250 ok"))
        kept = await outbox.record_attempt(s, delivery_id=one, worker="a", started_at=utcnow(),
                                           result=outbox.AttemptResult(ok=True, response="250 ok"))
        await s.commit()
    assert lost is None
    assert kept is not None and kept.status is DeliveryStatus.SENT and kept.sent_at is not None
    attempt = (await db.execute(select(DeliveryAttempt))).scalar_one()
    assert attempt.ok and attempt.response == "250 ok" and attempt.number == 1


async def test_failures_are_retried_on_the_schedule_then_dead(world, db, engine):
    await _queue(world, db)
    sessions = make_sessionmaker(engine)
    delays = []
    for _ in range(outbox.MAX_ATTEMPTS):
        await db.execute(update(Delivery).values(available_at=utcnow()))
        await world.commit()
        async with sessions() as s:
            ids = await outbox.claim(s, worker="w", batch=1, lease=LEASE)
            await s.commit()
        async with sessions() as s:
            before = utcnow()
            delivery = await outbox.record_attempt(s, delivery_id=ids[0], worker="w", started_at=before,
                                                   result=outbox.AttemptResult(ok=False, response="HTTP 503"))
            await s.commit()
        if delivery.status is DeliveryStatus.QUEUED:
            delays.append(delivery.available_at - before)
    assert delivery.status is DeliveryStatus.DEAD and delivery.dead_at is not None
    assert len(delays) == outbox.MAX_ATTEMPTS - 1
    for delay, expected in zip(delays, outbox.RETRY_DELAYS, strict=True):
        assert expected * (1 - outbox.JITTER) - dt.timedelta(seconds=1) <= delay <= expected * (1 + outbox.JITTER)


def test_retry_after_stretches_the_wait_and_gone_ends_it():
    assert outbox.next_delay(1, retry_after=dt.timedelta(minutes=10)) == dt.timedelta(minutes=10)
    assert outbox.next_delay(outbox.MAX_ATTEMPTS) is None


async def test_concurrent_claims_never_share_a_row(world, db, engine, backend):
    await _queue(world, db, orgs=6)  # 12 deliveries
    sessions = make_sessionmaker(engine)

    async def claim(worker):
        async with sessions() as s:
            ids = await outbox.claim(s, worker=worker, batch=3, lease=LEASE)
            await asyncio.sleep(0.05)  # hold the claim's locks a moment, so claims really overlap
            await s.commit()
            return ids

    batches = await asyncio.gather(*(claim(f"w{n}") for n in range(4)))
    claimed = [i for batch in batches for i in batch]
    assert len(claimed) == len(set(claimed)) == 12


def test_ack_tokens_name_one_delivery_and_cannot_be_forged():
    import uuid

    delivery = uuid.uuid4()
    token = ack_token("secret", delivery)
    assert delivery_id_from_ack_token("secret", token) == delivery
    assert delivery_id_from_ack_token("other secret", token) is None
    assert delivery_id_from_ack_token("secret", token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert delivery_id_from_ack_token("secret", "not-a-token") is None
