"""`portal audit verify` finds every kind of tampering and names the first broken event."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, insert, select, update

from portal.accounts.roles import Role
from portal.audit.models import AuditEvent, AuditHead
from portal.audit.service import event_hash, verify_chain
from tests.audit.conftest import record_events


async def _five_events(world, db) -> list[AuditEvent]:
    """Five real events: the vendor, a client organisation and three memberships."""
    org = await world.client_org("Acme Logistics")
    for role in (Role.ADMIN, Role.SIGNATORY, Role.MEMBER):
        await world.person(org, role)
    events = list((await db.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars())
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    await db.commit()  # end the read, so the command is not kept waiting for the database
    return events


async def test_intact_chain_exits_zero(world, db, portal_command):
    await _five_events(world, db)
    result = await portal_command("audit", "verify")
    assert result.code == 0, result.err
    assert "Audit trail intact: 5 events verified." in result.out


async def test_empty_chain_is_intact(db, portal_command):
    result = await portal_command("audit", "verify")
    assert result.code == 0, result.err
    assert "0 events verified" in result.out


async def test_altered_data_is_found(world, db, portal_command):
    await _five_events(world, db)
    await db.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(data={"email": "someone@else.example"}))
    await db.commit()
    result = await portal_command("audit", "verify")
    assert result.code == 2
    assert "BROKEN at event 3" in result.err
    assert "altered" in result.err


async def test_altered_actor_is_found(world, db, portal_command):
    await _five_events(world, db)
    await db.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(actor="user:innocent@example.com"))
    await db.commit()
    result = await portal_command("audit", "verify")
    assert result.code == 2
    assert "BROKEN at event 4" in result.err


async def test_altered_and_rehashed_event_breaks_the_link_to_its_successor(world, db, portal_command):
    events = await _five_events(world, db)
    forged = events[1]
    forged.data = {"name": "Someone Else Ltd", "kind": "client"}
    await db.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(
        data=forged.data, hash=event_hash(forged.prev_hash, forged)))
    await db.commit()
    result = await portal_command("audit", "verify")
    assert result.code == 2
    assert "BROKEN at event 3" in result.err
    assert "does not follow event 2" in result.err


async def test_deleted_event_in_the_middle_is_found(world, db, portal_command):
    await _five_events(world, db)
    await db.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    await db.commit()
    result = await portal_command("audit", "verify")
    assert result.code == 2
    assert "BROKEN at event 3" in result.err
    assert "missing" in result.err


async def test_deleted_newest_event_is_found(world, db, portal_command):
    await _five_events(world, db)
    await db.execute(delete(AuditEvent).where(AuditEvent.seq == 5))
    await db.commit()
    result = await portal_command("audit", "verify")
    assert result.code == 2
    assert "BROKEN at event 5" in result.err
    assert "removed" in result.err


async def test_deleted_newest_events_and_rewound_head_still_break_at_the_head(world, db, portal_command):
    """Whoever deletes the tail and rewinds the head's counter but cannot forge its hash is still found."""
    await _five_events(world, db)
    await db.execute(delete(AuditEvent).where(AuditEvent.seq >= 4))
    await db.execute(update(AuditHead).values(last_seq=3))
    await db.commit()
    result = await portal_command("audit", "verify")
    assert result.code == 2
    assert "BROKEN at event 4" in result.err


async def test_swapped_seq_is_found(world, db, portal_command):
    await _five_events(world, db)
    await db.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(seq=0))
    await db.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(seq=2))
    await db.execute(update(AuditEvent).where(AuditEvent.seq == 0).values(seq=3))
    await db.commit()
    result = await portal_command("audit", "verify")
    assert result.code == 2
    assert "BROKEN at event 2" in result.err
    assert "does not follow event 1" in result.err


async def test_swapped_content_is_found(world, db, portal_command):
    events = await _five_events(world, db)
    columns = [c.key for c in AuditEvent.__table__.columns if c.key != "seq"]
    second, third = ({c: getattr(e, c) for c in columns} for e in (events[2], events[3]))
    await db.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(id=uuid.uuid4()))
    await db.execute(update(AuditEvent).where(AuditEvent.seq == 4).values(**second))
    await db.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(**third))
    await db.commit()
    result = await portal_command("audit", "verify")
    assert result.code == 2
    assert "BROKEN at event 3" in result.err


async def test_event_appended_outside_the_portal_is_found(world, db, portal_command):
    events = await _five_events(world, db)
    newest = events[-1]
    forged = AuditEvent(seq=6, id=uuid.uuid4(), occurred_at=newest.occurred_at, org_id=newest.org_id,
                        actor_id=None, actor="system", tag="membership:created", subject_type="membership",
                        subject_id=str(uuid.uuid4()), data={}, ip="", prev_hash=newest.hash)
    forged.hash = event_hash(newest.hash, forged)
    await db.execute(insert(AuditEvent).values(
        {c.key: getattr(forged, c.key) for c in AuditEvent.__table__.columns}))
    await db.commit()
    result = await portal_command("audit", "verify")
    assert result.code == 2
    assert "BROKEN at event 6" in result.err
    assert "beyond the chain head" in result.err


async def test_verify_chain_reports_the_first_of_several_problems(world, db):
    org = await world.client_org()
    await record_events(db, org, 6)
    await db.execute(update(AuditEvent).where(AuditEvent.seq == 5).values(tag="test:forged"))
    await db.execute(delete(AuditEvent).where(AuditEvent.seq == 3))
    await db.commit()
    report = await verify_chain(db)
    await db.rollback()
    assert not report.ok
    assert report.first_bad_seq == 3
    assert report.checked == 2
