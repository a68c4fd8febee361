"""The outbox: claiming due deliveries with a lease, and recording what each attempt did.

Invariants:
- a claim is one short statement; on PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several workers claim at once
  without taking each other's rows, on SQLite the database's single writer does the same;
- no transaction is held while a message is sent: claim, commit, send, then record in a new transaction;
- delivery is at least once: a worker that dies leaves its rows leased, and they are claimed again when the lease
  runs out; an outcome is only recorded by the worker holding the lease;
- a failed attempt is retried on the schedule below (with jitter); after the last one the delivery is dead.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from portal.db import utcnow
from portal.notifications.models import Delivery, DeliveryAttempt, DeliveryStatus

# Delay before attempt n+1 after attempt n failed: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h,
# 24 h (the Standard Webhooks schedule, about three days in all).
RETRY_DELAYS = (
    dt.timedelta(seconds=5), dt.timedelta(minutes=5), dt.timedelta(minutes=30), dt.timedelta(hours=2),
    dt.timedelta(hours=5), dt.timedelta(hours=10), dt.timedelta(hours=14), dt.timedelta(hours=20),
    dt.timedelta(hours=24),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
JITTER = 0.1  # each delay is stretched or shrunk by up to 10 %, so retries of one outage do not arrive together


@dataclass(frozen=True)
class AttemptResult:
    """What one sending attempt returned. ``gone`` (HTTP 410) ends the delivery and disables the endpoint."""

    ok: bool
    response: str = ""
    error: str = ""
    retry_after: dt.timedelta | None = None
    gone: bool = False
    duration_ms: int = 0
    message_id: str = ""


def next_delay(attempts: int, *, retry_after: dt.timedelta | None = None,
               rng: random.Random | None = None) -> dt.timedelta | None:
    """The wait before the next attempt after ``attempts`` failed ones, or None when none is left."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS[attempts - 1]
    factor = 1 + (rng or random).uniform(-JITTER, JITTER)  # jitter needs no cryptographic randomness
    delay = base * factor
    return max(delay, retry_after) if retry_after else delay


async def claim(session: AsyncSession, *, worker: str, batch: int, lease: dt.timedelta) -> list[uuid.UUID]:
    """Lease up to ``batch`` due deliveries to ``worker`` and return their ids (the caller commits at once)."""
    now = utcnow()
    due = (
        select(Delivery.id)
        .where(Delivery.status == DeliveryStatus.QUEUED, Delivery.available_at <= now,
               or_(Delivery.lease_until.is_(None), Delivery.lease_until < now))
        .order_by(Delivery.available_at, Delivery.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    claimed = await session.execute(
        update(Delivery).where(Delivery.id.in_(due.scalar_subquery()))
        .values(lease_until=now + lease, leased_by=worker, attempts=Delivery.attempts + 1)
        .returning(Delivery.id)
        .execution_options(synchronize_session=False)
    )
    return list(claimed.scalars())


async def record_attempt(session: AsyncSession, *, delivery_id: uuid.UUID, worker: str, started_at: dt.datetime,
                         result: AttemptResult) -> Delivery | None:
    """Record one attempt and move the delivery on (sent, retry later, or dead); None if the lease was lost."""
    recorded = await record_attempts(session, worker=worker, attempts=[(delivery_id, started_at, result)])
    return recorded[0] if recorded else None


async def record_attempts(session: AsyncSession, *, worker: str,
                          attempts: Sequence[tuple[uuid.UUID, dt.datetime, AttemptResult]]) -> list[Delivery]:
    """``record_attempt`` for many deliveries in a few statements; returns those whose lease ``worker`` still
    held (the others were taken over and are left alone)."""
    by_id = {delivery_id: (started_at, result) for delivery_id, started_at, result in attempts}
    if not by_id:
        return []
    deliveries = (await session.execute(
        select(Delivery).where(Delivery.id.in_(list(by_id)), Delivery.leased_by == worker,
                               Delivery.status == DeliveryStatus.QUEUED)
        .order_by(Delivery.id)
        .with_for_update()
    )).scalars().all()
    now = utcnow()
    for delivery in deliveries:
        started_at, result = by_id[delivery.id]
        session.add(DeliveryAttempt(id=uuid.uuid4(), delivery_id=delivery.id, number=delivery.attempts,
                                    started_at=started_at, duration_ms=result.duration_ms, ok=result.ok,
                                    response=result.response[:500], error=result.error, worker=worker))
        _move_on(delivery, result, now)
    await session.flush()
    return list(deliveries)


async def record_sent(session: AsyncSession, *, worker: str,
                      attempts: Sequence[tuple[uuid.UUID, dt.datetime, AttemptResult]]) -> set[uuid.UUID]:
    """``record_attempts`` for successful attempts only, in three statements and no ORM objects (the common case
    of a fan-out); returns the ids recorded, i.e. those whose lease ``worker`` still held."""
    by_id = {delivery_id: (started_at, result) for delivery_id, started_at, result in attempts}
    assert all(result.ok for _started_at, result in by_id.values())
    if not by_id:
        return set()
    held = (await session.execute(
        select(Delivery.id, Delivery.attempts).where(Delivery.id.in_(list(by_id)), Delivery.leased_by == worker,
                                                     Delivery.status == DeliveryStatus.QUEUED)
        .order_by(Delivery.id)
        .with_for_update()
    )).all()
    if not held:
        return set()
    now = utcnow()
    table = cast(Table, Delivery.__table__)
    await session.execute(insert(cast(Table, DeliveryAttempt.__table__)), [
        {"id": uuid.uuid4(), "delivery_id": delivery_id, "number": number, "started_at": by_id[delivery_id][0],
         "duration_ms": by_id[delivery_id][1].duration_ms, "ok": True,
         "response": by_id[delivery_id][1].response[:500], "error": "", "worker": worker}
        for delivery_id, number in held])
    await session.execute(
        update(table).where(table.c.id == bindparam("delivery_id"))
        .values(status=DeliveryStatus.SENT, sent_at=now, last_error="", lease_until=None, leased_by=None,
                message_id=bindparam("message_id")),
        [{"delivery_id": delivery_id, "message_id": by_id[delivery_id][1].message_id}
         for delivery_id, _number in held])
    return {delivery_id for delivery_id, _number in held}


def _move_on(delivery: Delivery, result: AttemptResult, now: dt.datetime) -> None:
    delivery.lease_until = None
    delivery.leased_by = None
    delivery.message_id = result.message_id or delivery.message_id  # the message tried, sent or not
    if result.ok:
        delivery.status = DeliveryStatus.SENT
        delivery.sent_at = now
        delivery.last_error = ""
        return
    delivery.last_error = result.error or result.response
    delay = None if result.gone else next_delay(delivery.attempts, retry_after=result.retry_after)
    if delay is None:
        delivery.status = DeliveryStatus.DEAD
        delivery.dead_at = now
    else:
        delivery.available_at = now + delay


async def cancel(session: AsyncSession, *, delivery_id: uuid.UUID, worker: str, reason: str) -> Delivery | None:
    """Withdraw a leased delivery that must not be sent any more (its endpoint was disabled, its subscriber left);
    None if the lease was lost. No attempt was made, so none is counted."""
    delivery = (await session.execute(
        select(Delivery).where(Delivery.id == delivery_id, Delivery.leased_by == worker,
                               Delivery.status == DeliveryStatus.QUEUED)
        .with_for_update()
    )).scalar_one_or_none()
    if delivery is None:
        return None
    delivery.status = DeliveryStatus.CANCELLED
    delivery.attempts -= 1
    delivery.last_error = reason
    delivery.lease_until = None
    delivery.leased_by = None
    await session.flush()
    return delivery


async def extend_leases(session: AsyncSession, *, worker: str, lease: dt.timedelta) -> int:
    """Push back the end of every lease ``worker`` still holds: rows a live worker has not reached yet stay its own,
    however long they wait, while those of a worker that died are free again one ``lease`` after its last beat."""
    # Rows locked at this moment are being recorded (and so leave the lease anyway): skipping them means a renewal
    # never waits for, or deadlocks with, the worker's own outcomes.
    held = (
        select(Delivery.id).where(Delivery.leased_by == worker, Delivery.status == DeliveryStatus.QUEUED)
        .with_for_update(skip_locked=True)
    )
    result = await session.execute(
        update(Delivery).where(Delivery.id.in_(held.scalar_subquery()))
        .values(lease_until=utcnow() + lease)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def release_expired_leases_of(session: AsyncSession, worker: str) -> int:
    """Give back the rows ``worker`` still holds (a clean shutdown), so others need not wait for the lease."""
    result = await session.execute(
        update(Delivery).where(and_(Delivery.leased_by == worker, Delivery.status == DeliveryStatus.QUEUED))
        .values(lease_until=None, leased_by=None, attempts=Delivery.attempts - 1)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
