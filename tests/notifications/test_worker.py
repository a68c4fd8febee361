"""The delivery worker: outages, retries and the dead letter, several workers, a worker killed mid-batch, and the
in-process loop of ``portal serve``."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import signal
import subprocess

from sqlalchemy import select, update

from portal.app import create_app
from portal.audit.models import AuditEvent
from portal.db import utcnow
from portal.notifications import outbox
from portal.notifications.models import Delivery, DeliveryStatus
from tests.conftest import TEST_SECRET, free_port
from tests.notifications.worker_support import (
    Sink,
    all_deliveries,
    attempts_of,
    clients_with_security_contacts,
    eventually,
    queue_breach,
    run_worker_once,
    with_smtp,
)
from tests.test_cli_serve import portal_command, portal_env


async def _make_due(db, world):
    await db.execute(update(Delivery).where(Delivery.status == DeliveryStatus.QUEUED)
                     .values(available_at=utcnow()))
    await world.commit()


async def test_smtp_down_then_up_the_notice_is_delivered_on_retry(world, db, engine, settings):
    orgs = await clients_with_security_contacts(world, 1)
    await queue_breach(world, orgs)
    port = free_port()  # nothing listens here yet
    local = with_smtp(settings, f"smtp://127.0.0.1:{port}")

    down = await run_worker_once(engine, local)

    assert (down.sent, down.failed) == (0, 2)
    for delivery in await all_deliveries(db):
        assert delivery.status is DeliveryStatus.QUEUED and delivery.leased_by is None
        wait = delivery.available_at - utcnow()
        assert dt.timedelta(0) < wait <= outbox.RETRY_DELAYS[0] * (1 + outbox.JITTER)
        [attempt] = await attempts_of(db, delivery)
        assert not attempt.ok and attempt.number == 1 and "could not be reached" in attempt.error
        assert f"127.0.0.1:{port}" in attempt.error
    assert (await run_worker_once(engine, local)).attempts == 0  # the retry is not due yet

    await _make_due(db, world)
    sink = Sink(port=port).start()
    try:
        up = await run_worker_once(engine, local)
    finally:
        sink.stop()

    assert up.sent == 2
    assert sorted(m["To"] for m in sink.messages) == ["sec0@client-0.example", "sec1@client-0.example"]
    for delivery in await all_deliveries(db):
        assert delivery.status is DeliveryStatus.SENT
        assert [(a.number, a.ok) for a in await attempts_of(db, delivery)] == [(1, False), (2, True)]


async def test_retries_follow_the_schedule_then_the_delivery_is_dead_and_stays_visible(world, db, engine, settings):
    orgs = await clients_with_security_contacts(world, 1, contacts=1)
    await queue_breach(world, orgs)
    nowhere = with_smtp(settings, f"smtp://127.0.0.1:{free_port()}")

    waits = []  # (longest, shortest) the wait can have been: the attempt was recorded between before and after
    for _ in range(outbox.MAX_ATTEMPTS):
        await _make_due(db, world)
        before = utcnow()
        assert (await run_worker_once(engine, nowhere)).failed == 1
        after = utcnow()
        [delivery] = await all_deliveries(db)
        if delivery.status is DeliveryStatus.QUEUED:
            waits.append((delivery.available_at - before, delivery.available_at - after))

    assert delivery.status is DeliveryStatus.DEAD and delivery.dead_at is not None
    assert "could not be reached" in delivery.last_error
    assert len(waits) == outbox.MAX_ATTEMPTS - 1
    for (longest, shortest), planned in zip(waits, outbox.RETRY_DELAYS, strict=True):
        assert planned * (1 - outbox.JITTER) <= longest and shortest <= planned * (1 + outbox.JITTER)
    assert len(await attempts_of(db, delivery)) == outbox.MAX_ATTEMPTS
    # What the vendor dashboard asks for finds it, and the audit trail says it happened.
    dead = (await db.execute(select(Delivery.id).where(Delivery.status == DeliveryStatus.DEAD))).scalars().all()
    assert dead == [delivery.id]
    event = (await db.execute(select(AuditEvent).where(AuditEvent.tag == "delivery:dead"))).scalar_one()
    assert event.subject_id == str(delivery.id) and event.org_id == orgs[0].id
    assert event.data["attempts"] == outbox.MAX_ATTEMPTS
    await _make_due(db, world)
    assert (await run_worker_once(engine, nowhere)).attempts == 0  # nothing more is tried


def test_next_delay_follows_the_schedule_within_the_jitter():
    import random

    rng = random.Random(7)
    for attempts, planned in enumerate(outbox.RETRY_DELAYS, start=1):
        delay = outbox.next_delay(attempts, rng=rng)
        assert delay is not None and planned * 0.9 <= delay <= planned * 1.1
    assert outbox.next_delay(outbox.MAX_ATTEMPTS, rng=rng) is None
    assert outbox.next_delay(1, retry_after=dt.timedelta(hours=1)) == dt.timedelta(hours=1)


async def test_two_workers_at_once_deliver_each_row_once(world, db, engine, settings):
    orgs = await clients_with_security_contacts(world, 10)
    await queue_breach(world, orgs)
    sink = Sink(delay=0.02).start()
    try:
        local = with_smtp(settings, sink.url)
        first, second = await asyncio.gather(
            run_worker_once(engine, local, identity="worker-a", batch=4, concurrency=2),
            run_worker_once(engine, local, identity="worker-b", batch=4, concurrency=2))
    finally:
        sink.stop()

    deliveries = await all_deliveries(db)
    assert len(deliveries) == 20 and {d.status for d in deliveries} == {DeliveryStatus.SENT}
    assert first.sent > 0 and second.sent > 0 and first.sent + second.sent == 20
    assert sorted(sink.message_ids()) == sorted(d.message_id for d in deliveries)  # each exactly once
    for delivery in deliveries:
        [attempt] = await attempts_of(db, delivery)
        assert attempt.worker in {"worker-a", "worker-b"}


# ---------------------------------------------------------------- `portal worker` as a process

def _worker_process(settings, database_url, smtp_url, log, *args):
    env = portal_env(settings.data_dir, PORTAL_DATABASE_URL=database_url, PORTAL_SECRET_KEY=TEST_SECRET,
                     PORTAL_SMTP_URL=smtp_url, PORTAL_BASE_URL="http://testserver", PORTAL_VENDOR_NAME="Lumen AI")
    return subprocess.Popen([portal_command(), "worker", *args], env=env, cwd=settings.data_dir,
                            stdout=log, stderr=subprocess.STDOUT)


async def _exit_code(process, within=60.0):
    return await asyncio.to_thread(process.wait, within)


async def test_a_worker_killed_mid_batch_loses_nothing(world, db, settings, database_url, tmp_path):
    orgs = await clients_with_security_contacts(world, 15, contacts=3)  # 45 deliveries
    await queue_breach(world, orgs)
    sink = Sink(delay=0.1).start()  # slow enough that the kill lands between claim and record
    log = (tmp_path / "worker.log").open("w")
    try:
        doomed = _worker_process(settings, database_url, sink.url, log, "--lease-seconds", "2", "--batch", "8",
                                 "--concurrency", "2")
        try:
            await eventually(lambda: _arrived(sink, 5))
        finally:
            doomed.send_signal(signal.SIGKILL)
        assert await _exit_code(doomed) == -signal.SIGKILL

        killed = await all_deliveries(db)
        stranded = [d for d in killed if d.status is DeliveryStatus.QUEUED and d.leased_by]
        assert stranded, "the worker died holding leases"
        assert any(d.status is DeliveryStatus.QUEUED for d in killed)

        restarted = _worker_process(settings, database_url, sink.url, log, "--lease-seconds", "2")
        try:
            await eventually(lambda: _all_sent(db))
        finally:
            restarted.send_signal(signal.SIGTERM)
        assert await _exit_code(restarted) == 0
    finally:
        sink.stop()
        log.close()

    deliveries = await all_deliveries(db)
    assert all(d.leased_by is None for d in deliveries)
    by_message_id = {d.message_id: d for d in deliveries}
    assert len(by_message_id) == 45
    arrived = collections.Counter(sink.message_ids())
    assert set(arrived) == set(by_message_id)  # every delivery arrived at least once, nothing else did
    for message in sink.messages:  # a duplicate is the same message again
        assert message["To"] == by_message_id[message["Message-ID"]].email
    for delivery in stranded:
        taken_up = next(d for d in deliveries if d.id == delivery.id)
        assert taken_up.attempts >= 2  # claimed by the dead worker, then by the new one
        assert (await attempts_of(db, taken_up))[-1].ok
    output = (tmp_path / "worker.log").read_text()
    assert "Sent " in output and "Traceback" not in output


async def test_sigterm_finishes_the_sends_in_flight_and_gives_the_other_leases_back(world, db, settings, database_url,
                                                                                     tmp_path):
    orgs = await clients_with_security_contacts(world, 10, contacts=3)  # 30 deliveries
    await queue_breach(world, orgs)
    sink = Sink(delay=0.2).start()
    log = (tmp_path / "worker.log").open("w")
    try:
        worker = _worker_process(settings, database_url, sink.url, log, "--batch", "30", "--concurrency", "2")
        try:
            await eventually(lambda: _arrived(sink, 2))
        finally:
            worker.send_signal(signal.SIGTERM)
        assert await _exit_code(worker) == 0
    finally:
        sink.stop()
        log.close()

    deliveries = await all_deliveries(db)
    sent = [d for d in deliveries if d.status is DeliveryStatus.SENT]
    waiting = [d for d in deliveries if d.status is DeliveryStatus.QUEUED]
    assert len(sent) + len(waiting) == 30 and waiting  # stopped early, lost nothing
    assert {d.message_id for d in sent} == set(sink.message_ids())  # what went out is recorded as sent
    assert all(d.leased_by is None and d.lease_until is None and d.attempts == 0 for d in waiting)
    assert "SIGTERM: finishing the sends in flight" in (tmp_path / "worker.log").read_text()


async def _arrived(sink, count):
    return len(sink.messages) >= count


async def _all_sent(db):
    return all(d.status is DeliveryStatus.SENT for d in await all_deliveries(db))


async def test_portal_worker_once_drains_what_is_due_and_exits(world, db, settings, database_url, tmp_path):
    orgs = await clients_with_security_contacts(world, 2)
    await queue_breach(world, orgs)
    log = (tmp_path / "worker.log").open("w")
    try:
        process = _worker_process(settings, database_url, "", log, "--once")
        assert await _exit_code(process) == 0
    finally:
        log.close()

    assert "Sent 4, failed 0" in (tmp_path / "worker.log").read_text()
    assert {d.status for d in await all_deliveries(db)} == {DeliveryStatus.SENT}
    assert len(list((settings.data_dir / "mail").glob("*.eml"))) == 4  # no SMTP configured: kept as files


# ---------------------------------------------------------------- in-process, inside `portal serve`

async def test_the_in_process_loop_delivers_while_the_app_runs_and_stops_with_it(world, db, engine, settings, mail):
    app = create_app(settings, engine=engine, run_worker=True)
    orgs = await clients_with_security_contacts(world, 1)
    async with app.router.lifespan_context(app):
        await queue_breach(world, orgs)
        await eventually(lambda: _all_sent(db))
    assert sorted(m["To"] for m in mail.messages) == ["sec0@client-0.example", "sec1@client-0.example"]

    await queue_breach(world, orgs)  # the loop stopped with the app: this one waits for the next start
    assert {d.status for d in await all_deliveries(db)} == {DeliveryStatus.SENT, DeliveryStatus.QUEUED}
