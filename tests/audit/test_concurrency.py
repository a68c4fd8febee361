"""Concurrent writers append to one chain: no fork, no gap, even when some of them roll back.

On PostgreSQL every transaction is open before any of them writes, so they really overlap and queue on the
``audit_head`` row lock; on SQLite a writing transaction takes the database's write lock when it begins
(``BEGIN IMMEDIATE``), so there they queue at the start instead.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

from sqlalchemy import select, text

from portal import audit
from portal.actors import Actor
from portal.audit.models import AuditEvent
from portal.audit.service import verify_chain
from portal.db import make_sessionmaker, write_intent

WRITERS = 20
EVENTS_EACH = 3


class Subject:
    __tablename__ = "widgets"

    def __init__(self) -> None:
        self.id = uuid.uuid4()


async def _writer(engine, number: int, all_open: asyncio.Barrier | None) -> None:
    async with make_sessionmaker(engine)() as session:
        if all_open is not None:
            await session.execute(text("SELECT 1"))  # the transaction is open ...
            await all_open.wait()  # ... and so are all the others
        for step in range(EVENTS_EACH):
            await audit.record(session, actor=Actor.system(f"writer-{number}"), tag="widget:touched",
                               subject=Subject(), data={"writer": number, "step": step})
            await asyncio.sleep(0)  # let the other writers run into the head lock meanwhile
        if number % 5 == 4:
            await session.rollback()  # a failed request: its events and its place in the chain vanish
        else:
            await session.commit()


async def test_concurrent_writers_keep_one_chain(engine, db, backend):
    token = write_intent.set(True)
    try:
        all_open = asyncio.Barrier(WRITERS) if backend == "postgresql" else None
        await asyncio.gather(*(_writer(engine, n, all_open) for n in range(WRITERS)))
    finally:
        write_intent.reset(token)

    committed = WRITERS - WRITERS // 5
    events = list((await db.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars())
    assert [e.seq for e in events] == list(range(1, committed * EVENTS_EACH + 1))
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(events))
    assert not any(e.data["writer"] % 5 == 4 for e in events)
    # Each writer's events are consecutive: a writer holds the head until it commits.
    for start in range(0, len(events), EVENTS_EACH):
        chunk = events[start:start + EVENTS_EACH]
        assert {e.actor for e in chunk} == {chunk[0].actor}
        assert [e.data["step"] for e in chunk] == list(range(EVENTS_EACH))
    report = await verify_chain(db)
    await db.rollback()
    assert report.ok, report.problem
    assert report.checked == committed * EVENTS_EACH
