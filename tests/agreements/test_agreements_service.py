"""Recording and ending clients' agreements: the terms the sub-processor workflow reads (notice period,
authorisation option), one active agreement per client, and who may record them."""

from __future__ import annotations

import datetime as dt
import uuid
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from portal.accounts.roles import Role
from portal.actors import Actor
from portal.agreements import service as agreements
from portal.agreements.models import Agreement, AgreementSource, AgreementStatus, Authorisation
from portal.audit.models import AuditEvent
from portal.db import commit_and_run_jobs, make_sessionmaker, utcnow
from portal.errors import Forbidden, InvalidInput, NotFound
from tests.subprocessors.support import client_person, loaded, vendor_legal


def terms(reference: str = "DPA 2025-03 (signed PDF)", signed_on: str = "2025-03-01",
          authorisation: str = "general", notice_days: str = "") -> agreements.AgreementInput:
    return agreements.AgreementInput(reference=reference, signed_on=signed_on, authorisation=authorisation,
                                     notice_days=notice_days)


@asynccontextmanager
async def request(engine):
    """A session for one call, committed when it succeeds and rolled back when it raises."""
    async with make_sessionmaker(engine)() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await commit_and_run_jobs(session)


async def _record(engine, actor, org, data: agreements.AgreementInput) -> Agreement:
    async with request(engine) as session:
        return await agreements.record_agreement(session, actor=actor, org=org, data=data)


async def _stored(db, org) -> list[Agreement]:
    return list((await db.execute(select(Agreement).where(Agreement.org_id == org.id).order_by(Agreement.created_at)
                                  .execution_options(populate_existing=True))).scalars())


async def _events(db, tag: str) -> list[AuditEvent]:
    return list((await db.execute(select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.seq)))
                .scalars())


@pytest.fixture
async def acme(world):
    return await world.client_org("Acme Logistics")


@pytest.fixture
async def legal(world) -> Actor:
    return await vendor_legal(world)


async def test_an_agreement_is_recorded_with_its_terms(engine, db, acme, legal):
    recorded = await _record(engine, legal, acme, terms(" DPA 2025-03 (signed PDF) ", " 2025-03-01 ", "specific", "45"))

    [stored] = await _stored(db, acme)
    assert stored.id == recorded.id
    assert (stored.reference, stored.signed_on, stored.subprocessor_authorisation, stored.notice_days) == (
        "DPA 2025-03 (signed PDF)", dt.date(2025, 3, 1), Authorisation.SPECIFIC, 45)
    assert (stored.status, stored.source, stored.recorded_by) == (
        AgreementStatus.EXECUTED, AgreementSource.RECORDED, "user:lea.legal@lumen.example")
    assert stored.notice_days_or(30) == 45
    [event] = await _events(db, "agreement:recorded")
    assert (event.org_id, event.subject_id, event.data["notice_days"]) == (acme.id, str(stored.id), 45)


async def test_without_notice_days_the_portal_default_applies(engine, db, acme, legal):
    await _record(engine, legal, acme, terms(notice_days="  "))

    [stored] = await _stored(db, acme)
    assert stored.notice_days is None and stored.notice_days_or(30) == 30


@pytest.mark.parametrize("notice_days", ["1", "365"])
async def test_notice_days_from_one_to_a_year_are_accepted(engine, db, acme, legal, notice_days):
    await _record(engine, legal, acme, terms(notice_days=notice_days))

    [stored] = await _stored(db, acme)
    assert stored.notice_days == int(notice_days)


TOMORROW = (utcnow().date() + dt.timedelta(days=1)).isoformat()


@pytest.mark.parametrize(("data", "field", "words"), [
    (terms(reference="  "), "reference", "reference"),
    (terms(reference="r" * 201), "reference", "200 characters"),
    (terms(signed_on="01/03/2025"), "signed_on", "YYYY-MM-DD"),
    (terms(signed_on=""), "signed_on", "YYYY-MM-DD"),
    (terms(signed_on=TOMORROW), "signed_on", "future"),
    (terms(notice_days="0"), "notice_days", "1 to 365"),
    (terms(notice_days="366"), "notice_days", "1 to 365"),
    (terms(notice_days="x"), "notice_days", "1 to 365"),
    (terms(notice_days="-5"), "notice_days", "1 to 365"),
    (terms(notice_days="30.5"), "notice_days", "1 to 365"),
    (terms(authorisation="implied"), "authorisation", "general or specific"),
    (terms(authorisation=""), "authorisation", "general or specific"),
])
async def test_bad_terms_are_refused_by_field_and_nothing_is_stored(engine, db, acme, legal, data, field, words):
    with pytest.raises(InvalidInput) as refused:
        await _record(engine, legal, acme, data)

    assert list(refused.value.fields) == [field]
    assert words in refused.value.fields[field]
    assert await _stored(db, acme) == []
    assert await _events(db, "agreement:recorded") == []


async def test_every_bad_field_is_named_at_once(engine, db, acme, legal):
    with pytest.raises(InvalidInput) as refused:
        await _record(engine, legal, acme, terms(reference="", signed_on="soon", authorisation="x", notice_days="0"))

    assert set(refused.value.fields) == {"reference", "signed_on", "authorisation", "notice_days"}
    assert await _stored(db, acme) == []


# ---------------------------------------------------------------- one active agreement per client

async def test_a_new_agreement_ends_the_previous_one(engine, db, acme, legal):
    first = await _record(engine, legal, acme, terms("DPA 2024"))
    second = await _record(engine, legal, acme, terms("DPA 2025", notice_days="60"))

    old, new = await _stored(db, acme)
    assert (old.id, new.id) == (first.id, second.id)
    assert (old.status, new.status) == (AgreementStatus.SUPERSEDED, AgreementStatus.EXECUTED)
    assert old.ended_at is not None and old.end_reason == "superseded by DPA 2025"
    active = await agreements.active_agreement(db, acme)
    assert active is not None and active.id == second.id
    [event] = await _events(db, "agreement:ended")
    assert (event.org_id, event.subject_id) == (acme.id, str(first.id))


async def test_refused_terms_leave_the_active_agreement_in_place(engine, db, acme, legal):
    first = await _record(engine, legal, acme, terms("DPA 2024"))

    with pytest.raises(InvalidInput):
        await _record(engine, legal, acme, terms("DPA 2025", notice_days="0"))

    [stored] = await _stored(db, acme)
    assert (stored.id, stored.status) == (first.id, AgreementStatus.EXECUTED)


async def test_each_client_has_its_own_active_agreement(engine, world, db, acme, legal):
    borealis = await world.client_org("Borealis Bank")
    await _record(engine, legal, acme, terms("Acme DPA"))
    await _record(engine, legal, borealis, terms("Borealis DPA"))

    assert sorted(a.reference for a in await agreements.all_active(db)) == ["Acme DPA", "Borealis DPA"]
    assert [a.reference for a in await agreements.agreements_of(db, borealis)] == ["Borealis DPA"]


def _row(org, status: AgreementStatus) -> Agreement:
    """An agreement row written directly, past the service's checks."""
    return Agreement(id=uuid.uuid4(), org_id=org.id, reference=f"Inserted {status.value}",
                     signed_on=dt.date(2025, 1, 1), source=AgreementSource.RECORDED,
                     subprocessor_authorisation=Authorisation.GENERAL, status=status, recorded_by="test")


async def test_the_database_refuses_two_active_agreements_for_one_client(engine, db, acme, legal):
    await _record(engine, legal, acme, terms("DPA 2025"))

    async with make_sessionmaker(engine)() as session:
        session.add(_row(acme, AgreementStatus.EXECUTED))
        with pytest.raises(IntegrityError):
            await session.commit()

    assert [a.reference for a in await _stored(db, acme)] == ["DPA 2025"]


async def test_the_database_allows_any_number_of_ended_agreements(engine, db, acme):
    async with make_sessionmaker(engine)() as session:
        session.add_all([_row(acme, AgreementStatus.TERMINATED), _row(acme, AgreementStatus.TERMINATED),
                         _row(acme, AgreementStatus.EXECUTED)])
        await session.commit()

    assert sorted(a.status.value for a in await _stored(db, acme)) == ["executed", "terminated", "terminated"]


# ---------------------------------------------------------------- ending an agreement

async def _end(engine, actor, org, agreement: Agreement, reason: str) -> Agreement:
    async with request(engine) as session:
        return await agreements.end_agreement(session, actor=actor, org=org, agreement_id=str(agreement.id),
                                              reason=reason)


async def test_ending_an_agreement_keeps_the_reason(engine, db, acme, legal):
    recorded = await _record(engine, legal, acme, terms())

    await _end(engine, legal, acme, recorded, "  Contract terminated by the client on 1 May.  ")

    [stored] = await _stored(db, acme)
    assert (stored.status, stored.end_reason) == (AgreementStatus.TERMINATED,
                                                  "Contract terminated by the client on 1 May.")
    assert await agreements.active_agreement(db, acme) is None
    [event] = await _events(db, "agreement:ended")
    assert event.data["reason"] == "Contract terminated by the client on 1 May."


@pytest.mark.parametrize("reason", ["", "   "])
async def test_ending_an_agreement_needs_a_reason(engine, db, acme, legal, reason):
    recorded = await _record(engine, legal, acme, terms())

    with pytest.raises(InvalidInput) as refused:
        await _end(engine, legal, acme, recorded, reason)

    assert "reason" in refused.value.fields
    [stored] = await _stored(db, acme)
    assert stored.status is AgreementStatus.EXECUTED and stored.ended_at is None
    assert await _events(db, "agreement:ended") == []


async def test_an_ended_agreement_cannot_end_again(engine, db, acme, legal):
    recorded = await _record(engine, legal, acme, terms())
    await _end(engine, legal, acme, recorded, "Ended.")

    with pytest.raises(InvalidInput, match="already ended"):
        await _end(engine, legal, acme, recorded, "Ended twice.")

    [stored] = await _stored(db, acme)
    assert stored.end_reason == "Ended."


async def test_an_agreement_is_ended_only_through_its_own_organisation(engine, world, db, acme, legal):
    borealis = await world.client_org("Borealis Bank")
    recorded = await _record(engine, legal, acme, terms())

    with pytest.raises(NotFound):
        await _end(engine, legal, borealis, recorded, "Wrong organisation.")

    [stored] = await _stored(db, acme)
    assert stored.status is AgreementStatus.EXECUTED


# ---------------------------------------------------------------- who may record and end

async def test_a_client_cannot_record_or_end_an_agreement(engine, world, db, acme, legal):
    _, admin = await client_person(world, acme, Role.ADMIN, email="admin@acme.example")
    recorded = await _record(engine, legal, acme, terms("DPA 2025"))

    with pytest.raises(NotFound):
        await _record(engine, admin, acme, terms("Our own terms", notice_days="365"))
    with pytest.raises(NotFound):
        await _end(engine, admin, acme, recorded, "We leave.")

    [stored] = await _stored(db, acme)
    assert (stored.reference, stored.status) == ("DPA 2025", AgreementStatus.EXECUTED)


async def test_a_vendor_viewer_cannot_record_or_end_an_agreement(engine, world, db, acme, legal):
    viewer = Actor.for_member(await loaded(db, await world.person(await world.vendor(), Role.VIEWER)))
    recorded = await _record(engine, legal, acme, terms("DPA 2025"))

    with pytest.raises(Forbidden):
        await _record(engine, viewer, acme, terms("Viewer terms"))
    with pytest.raises(Forbidden):
        await _end(engine, viewer, acme, recorded, "Viewers cannot end agreements.")

    [stored] = await _stored(db, acme)
    assert (stored.reference, stored.status) == ("DPA 2025", AgreementStatus.EXECUTED)


async def test_the_vendor_organisation_has_no_agreement_with_itself(engine, world, db, legal):
    vendor = await world.vendor()

    with pytest.raises(NotFound):
        await _record(engine, legal, vendor, terms())

    assert int(await db.scalar(select(func.count()).select_from(Agreement))) == 0
