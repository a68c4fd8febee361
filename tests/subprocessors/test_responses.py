"""Clients' answers to a change and the vendor's resolution (legal requirements 33, 37, 38), and the scheduled job
that records silence at each deadline.

Each call runs in a session of its own, committed on success and rolled back on error, as one request (or one
worker run) does; the test's ``db`` session only arranges and inspects."""

from __future__ import annotations

import datetime as dt
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from portal import scheduled
from portal.accounts.models import Organisation
from portal.accounts.roles import Role
from portal.actors import Actor
from portal.agreements import service as agreements
from portal.agreements.models import AgreementStatus
from portal.audit.models import AuditEvent
from portal.db import commit_and_run_jobs, make_sessionmaker, utcnow
from portal.errors import Forbidden, InvalidInput, NotFound
from portal.notifications.models import Delivery, Notice
from portal.scheduled import run_due_jobs
from portal.subprocessors import responses
from portal.subprocessors.models import AuthorisationState, ChangeAuthorisation, Objection, Resolution
from tests.subprocessors.support import BASE_URL, agreement, client_person, loaded, publish, vendor_legal

NOW = dt.datetime.combine(utcnow().date(), dt.time(12), tzinfo=dt.UTC)
JOB = "sub-processor objection deadlines"


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


async def fresh(db, statement):
    """Rows as committed now (not as this session last loaded them)."""
    return (await db.execute(statement.execution_options(populate_existing=True))).scalars().all()


async def audit_events(db, tag: str) -> list[AuditEvent]:
    return list(await fresh(db, select(AuditEvent).where(AuditEvent.tag == tag).order_by(AuditEvent.seq)))


@dataclass
class Client:
    org: Organisation
    responder: Actor  # its privacy contact
    admin: Actor
    row: ChangeAuthorisation | None = None  # its authorisation of the one change, once announced


async def _client(world, name: str, *, authorisation: str = "general", days: int | None = None) -> Client:
    org = await world.client_org(name)
    _, responder = await client_person(world, org, Role.PRIVACY_CONTACT, email=f"privacy@{org.slug}.example")
    _, admin = await client_person(world, org, Role.ADMIN, email=f"admin@{org.slug}.example")
    await agreement(world, org, days=days, authorisation=authorisation)
    return Client(org, responder, admin)


async def _announce(world, legal: Actor, *clients: Client) -> None:
    """Vendor legal publishes one addition taking effect after every client's period; each client gets its
    pending authorisation."""
    await publish(world, legal, "Hostwerk GmbH", now=NOW, effective=NOW.date() + dt.timedelta(days=90))
    for client in clients:
        [client.row] = await fresh(world.session, select(ChangeAuthorisation)
                                   .where(ChangeAuthorisation.org_id == client.org.id))


async def _row(db, client: Client) -> ChangeAuthorisation:
    [row] = await fresh(db, select(ChangeAuthorisation).where(ChangeAuthorisation.id == client.row.id))
    return row


async def _objections(db, client: Client) -> list[Objection]:
    return list(await fresh(db, select(Objection).where(Objection.org_id == client.org.id)))


async def _object(engine, client: Client, reason: str = "Hostwerk is not in our approved vendor list.",
                  *, now: dt.datetime = NOW, actor: Actor | None = None) -> Objection:
    async with request(engine) as session:
        return await responses.object_to(session, actor=actor or client.responder, org=client.org,
                                         authorisation_id=str(client.row.id), reason=reason, now=now)


async def _resolve(engine, actor: Actor, client: Client, objection: Objection, resolution: str = "accommodated",
                   note: str = "Your data stays on our EU platform.") -> Objection:
    async with request(engine) as session:
        return await responses.resolve(session, actor=actor, org=client.org, objection_id=str(objection.id),
                                       resolution=resolution, note=note, base_url=BASE_URL, now=NOW)


@pytest.fixture
async def legal(world) -> Actor:
    return await vendor_legal(world)


@pytest.fixture
async def acme(world, legal) -> Client:
    client = await _client(world, "Acme Logistics")
    await _announce(world, legal, client)
    return client


# ---------------------------------------------------------------- objections

async def test_an_objection_before_the_deadline_is_recorded(engine, db, acme):
    at = NOW + dt.timedelta(days=3)

    objection = await _object(engine, acme, "  Hostwerk is not in our approved vendor list.  ", now=at)

    row = await _row(db, acme)
    assert (row.state, row.decided_at, row.decided_by) == (AuthorisationState.OBJECTED, at,
                                                           "user:privacy@acme-logistics.example")
    [stored] = await _objections(db, acme)
    assert stored.id == objection.id
    assert (stored.reason, stored.is_open, stored.resolution) == (
        "Hostwerk is not in our approved vendor list.", True, None)
    assert (stored.lodged_by_email, stored.lodged_at, stored.authorisation_id) == (
        "privacy@acme-logistics.example", at, row.id)
    [event] = await audit_events(db, "subprocessor_objection:lodged")
    assert (event.org_id, event.subject_id) == (acme.org.id, str(objection.id))
    assert event.data["before"] == "pending" and event.data["entry"] == "Hostwerk GmbH"


async def test_a_client_admin_may_object_too(engine, db, acme):
    await _object(engine, acme, actor=acme.admin)

    assert (await _row(db, acme)).state is AuthorisationState.OBJECTED


@pytest.mark.parametrize("after", [dt.timedelta(0), dt.timedelta(seconds=1), dt.timedelta(days=5)])
async def test_an_objection_after_the_deadline_is_refused_saying_the_period_ended(engine, db, acme, after):
    with pytest.raises(InvalidInput) as refused:
        await _object(engine, acme, now=acme.row.deadline + after)

    assert "ended" in refused.value.message
    assert acme.row.deadline.strftime("%Y-%m-%d") in refused.value.message
    assert await _objections(db, acme) == []
    assert (await _row(db, acme)).state is AuthorisationState.PENDING


@pytest.mark.parametrize(("authorisation", "outcome"), [("general", "deemed authorised"),
                                                        ("specific", "not authorised")])
async def test_a_late_objection_is_told_what_silence_meant_even_before_the_job_ran(engine, world, legal,
                                                                                   authorisation, outcome):
    """Between the deadline and the next run of the deadline job the row is still pending; the client is told the
    outcome its silence has, not that its position is pending."""
    client = await _client(world, "Acme Logistics", authorisation=authorisation)
    await _announce(world, legal, client)

    with pytest.raises(InvalidInput) as refused:
        await _object(engine, client, now=client.row.deadline + dt.timedelta(seconds=1))

    assert outcome in refused.value.message
    assert "pending" not in refused.value.message


@pytest.mark.parametrize("reason", ["", "   \n ", "x" * 5001])
async def test_an_objection_needs_its_grounds_within_limits(engine, db, acme, reason):
    with pytest.raises(InvalidInput) as refused:
        await _object(engine, acme, reason)

    assert "reason" in refused.value.fields
    assert await _objections(db, acme) == []
    assert (await _row(db, acme)).state is AuthorisationState.PENDING


async def test_a_second_open_objection_is_refused(engine, db, acme):
    await _object(engine, acme)

    with pytest.raises(InvalidInput) as refused:
        await _object(engine, acme, "Another reason", actor=acme.admin)

    assert "already has an open objection" in refused.value.message
    assert len(await _objections(db, acme)) == 1


async def test_after_a_resolution_the_client_may_object_again_before_the_deadline(engine, world, db, acme, legal):
    first = await _object(engine, acme)
    await _resolve(engine, legal, acme, first, "accommodated")

    await _object(engine, acme, "The accommodation does not cover our backups.")

    assert [o.is_open for o in sorted(await _objections(db, acme), key=lambda o: o.lodged_at)] == [False, True]


# ---------------------------------------------------------------- approval

async def test_approval_authorises_the_change(engine, db, acme):
    async with request(engine) as session:
        await responses.approve(session, actor=acme.responder, org=acme.org, authorisation_id=str(acme.row.id),
                                now=NOW)

    row = await _row(db, acme)
    assert (row.state, row.decided_at, row.decided_by) == (AuthorisationState.AUTHORISED, NOW,
                                                           "user:privacy@acme-logistics.example")
    [event] = await audit_events(db, "subprocessor_authorisation:approved")
    assert (event.org_id, event.subject_id, event.data["before"]) == (acme.org.id, str(row.id), "pending")


async def test_approval_is_refused_while_an_objection_is_open(engine, db, acme):
    await _object(engine, acme)

    with pytest.raises(InvalidInput) as refused:
        async with request(engine) as session:
            await responses.approve(session, actor=acme.responder, org=acme.org, authorisation_id=str(acme.row.id),
                                    now=NOW)

    assert "open objection" in refused.value.message
    assert (await _row(db, acme)).state is AuthorisationState.OBJECTED
    assert await audit_events(db, "subprocessor_authorisation:approved") == []


async def test_approval_after_the_deadline_is_refused(engine, db, acme):
    with pytest.raises(InvalidInput, match="ended"):
        async with request(engine) as session:
            await responses.approve(session, actor=acme.responder, org=acme.org, authorisation_id=str(acme.row.id),
                                    now=acme.row.deadline)

    assert (await _row(db, acme)).state is AuthorisationState.PENDING


# ---------------------------------------------------------------- who may answer

async def test_a_plain_member_may_neither_object_nor_approve(engine, world, db, acme):
    _, member = await client_person(world, acme.org, Role.MEMBER, email="mo@acme-logistics.example")

    with pytest.raises(Forbidden):
        await _object(engine, acme, actor=member)
    with pytest.raises(Forbidden):
        async with request(engine) as session:
            await responses.approve(session, actor=member, org=acme.org, authorisation_id=str(acme.row.id), now=NOW)

    assert await _objections(db, acme) == []
    assert (await _row(db, acme)).state is AuthorisationState.PENDING


async def test_another_organisations_people_get_not_found(engine, world, db, legal):
    acme = await _client(world, "Acme Logistics")
    borealis = await _client(world, "Borealis Bank")
    await _announce(world, legal, acme, borealis)

    with pytest.raises(NotFound):  # acting for Acme as a Borealis person
        await _object(engine, acme, actor=borealis.responder)
    with pytest.raises(NotFound):  # Acme's row through Borealis' own organisation
        async with request(engine) as session:
            await responses.object_to(session, actor=borealis.responder, org=borealis.org, reason="No",
                                      authorisation_id=str(acme.row.id), now=NOW)
    with pytest.raises(NotFound):
        async with request(engine) as session:
            await responses.approve(session, actor=borealis.admin, org=borealis.org,
                                    authorisation_id=str(acme.row.id), now=NOW)

    assert await _objections(db, acme) == [] and await _objections(db, borealis) == []
    assert (await _row(db, acme)).state is AuthorisationState.PENDING


async def test_vendor_staff_cannot_answer_for_a_client(engine, acme, legal):
    with pytest.raises(NotFound):
        await _object(engine, acme, actor=legal)


# ---------------------------------------------------------------- resolution

@pytest.mark.parametrize(("resolution", "note", "field"), [
    ("", "Kept in the EU.", "resolution"),
    ("ignored", "Kept in the EU.", "resolution"),
    ("accommodated", "", "note"),
    ("accommodated", "   ", "note"),
])
async def test_a_resolution_needs_a_valid_outcome_and_a_note(engine, world, db, acme, resolution, note, field, legal):
    objection = await _object(engine, acme)

    with pytest.raises(InvalidInput) as refused:
        await _resolve(engine, legal, acme, objection, resolution, note)

    assert field in refused.value.fields
    [stored] = await _objections(db, acme)
    assert (stored.is_open, stored.resolution, stored.resolved_at) == (True, None, None)
    assert await audit_events(db, "subprocessor_objection:resolved") == []


@pytest.mark.parametrize(("resolution", "state"), [
    ("withdrawn", AuthorisationState.AUTHORISED),
    ("accommodated", AuthorisationState.OBJECTED),
    ("abandoned", AuthorisationState.OBJECTED),
])
async def test_the_resolution_decides_the_clients_position(engine, world, db, acme, resolution, state, legal):
    objection = await _object(engine, acme)

    await _resolve(engine, legal, acme, objection, resolution, "Agreed on the call of 3 March.")

    [stored] = await _objections(db, acme)
    assert (stored.is_open, stored.resolution, stored.resolution_note) == (
        False, Resolution(resolution), "Agreed on the call of 3 March.")
    assert stored.resolved_at == NOW and stored.resolved_by == "user:lea.legal@lumen.example"
    assert (await _row(db, acme)).state is state
    [event] = await audit_events(db, "subprocessor_objection:resolved")
    assert (event.org_id, event.data["resolution"], event.data["state"]) == (acme.org.id, resolution, state.value)
    assert await agreements.active_agreement(db, acme.org) is not None


async def test_termination_ends_the_clients_agreement(engine, world, db, acme, legal):
    objection = await _object(engine, acme)
    [active] = await agreements.agreements_of(db, acme.org)

    await _resolve(engine, legal, acme, objection, "terminated", "The agreement ends on 31 March.")

    [ended] = await fresh(db, select(type(active)).where(type(active).id == active.id))
    assert ended.status is AgreementStatus.TERMINATED and ended.ended_at is not None
    assert "Hostwerk GmbH" in ended.end_reason
    [event] = await audit_events(db, "agreement:ended")
    assert (event.org_id, event.subject_id) == (acme.org.id, str(active.id))
    assert (await _row(db, acme)).state is AuthorisationState.OBJECTED


async def test_an_objection_is_resolved_once(engine, world, db, acme, legal):
    objection = await _object(engine, acme)
    await _resolve(engine, legal, acme, objection, "accommodated")

    with pytest.raises(InvalidInput, match="already resolved"):
        await _resolve(engine, legal, acme, objection, "withdrawn", "Second thoughts.")

    [stored] = await _objections(db, acme)
    assert stored.resolution is Resolution.ACCOMMODATED
    assert (await _row(db, acme)).state is AuthorisationState.OBJECTED
    assert len(await audit_events(db, "subprocessor_objection:resolved")) == 1


async def test_the_client_is_notified_of_the_resolution(engine, world, db, legal):
    acme = await _client(world, "Acme Logistics")
    borealis = await _client(world, "Borealis Bank")
    await _announce(world, legal, acme, borealis)
    objection = await _object(engine, acme)

    await _resolve(engine, legal, acme, objection, "accommodated", "Your data stays on our EU platform.")

    [notice] = await fresh(db, select(Notice).where(Notice.type == "objection_resolved"))
    assert notice.org_id == acme.org.id
    assert notice.subject_id == str(objection.id)
    assert notice.context["subprocessor"] == "Hostwerk GmbH"
    assert notice.context["resolution"] == "Accommodated"
    assert notice.context["note"] == "Your data stays on our EU platform."
    assert notice.context["link"] == f"{BASE_URL}/orgs/{acme.org.id}/subprocessors"
    emails = {d.email for d in await fresh(db, select(Delivery).where(Delivery.notice_id == notice.id))}
    assert emails == {"privacy@acme-logistics.example", "admin@acme-logistics.example"}


async def test_only_vendor_managers_resolve(engine, world, db, acme):
    objection = await _object(engine, acme)
    viewer = Actor.for_member(await loaded(db, await world.person(await world.vendor(), Role.VIEWER)))

    with pytest.raises(NotFound):
        await _resolve(engine, acme.admin, acme, objection, "withdrawn", "I withdraw it myself.")
    with pytest.raises(Forbidden):
        await _resolve(engine, viewer, acme, objection, "withdrawn", "Viewers cannot decide.")

    [stored] = await _objections(db, acme)
    assert stored.is_open and (await _row(db, acme)).state is AuthorisationState.OBJECTED


async def test_an_objection_is_resolved_only_through_its_own_organisation(engine, world, db, legal):
    acme = await _client(world, "Acme Logistics")
    borealis = await _client(world, "Borealis Bank")
    await _announce(world, legal, acme, borealis)
    objection = await _object(engine, acme)

    with pytest.raises(NotFound):
        await _resolve(engine, legal, borealis, objection, "withdrawn", "Wrong organisation.")

    [stored] = await _objections(db, acme)
    assert stored.is_open


# ---------------------------------------------------------------- the deadline job (legal requirements 33, 38)

async def _run_jobs(engine, settings, now: dt.datetime) -> dict[str, int]:
    return await run_due_jobs(make_sessionmaker(engine), settings=settings, now=now)


@pytest.fixture
async def four(world, engine, legal) -> dict[str, Client]:
    """Clients under general and specific authorisation (30 days), one that objected, and one with 60 days."""
    clients = {
        "general": await _client(world, "Acme Logistics"),
        "specific": await _client(world, "Borealis Bank", authorisation="specific"),
        "objected": await _client(world, "Cobalt Health"),
        "longer": await _client(world, "Delta Retail", days=60),
    }
    await _announce(world, legal, *clients.values())
    await _object(engine, clients["objected"], now=NOW + dt.timedelta(days=1))
    return clients


async def _states(db, clients: dict[str, Client]) -> dict[str, tuple[AuthorisationState, dt.datetime | None, str]]:
    rows = {r.id: r for r in await fresh(db, select(ChangeAuthorisation))}
    return {name: (rows[c.row.id].state, rows[c.row.id].decided_at, rows[c.row.id].decided_by)
            for name, c in clients.items()}


async def test_silence_at_the_deadline_is_deemed_authorisation_or_no_authorisation(engine, db, four, settings):
    deadline = four["general"].row.deadline
    assert deadline == NOW + dt.timedelta(days=30) == four["specific"].row.deadline
    at = deadline + dt.timedelta(seconds=1)

    assert (await _run_jobs(engine, settings, at))[JOB] == 2

    states = await _states(db, four)
    assert states["general"] == (AuthorisationState.DEEMED_AUTHORISED, at, "system:deadline")
    assert states["specific"] == (AuthorisationState.NOT_AUTHORISED, at, "system:deadline")
    assert states["objected"][0] is AuthorisationState.OBJECTED  # untouched
    assert states["objected"][2] == "user:privacy@cobalt-health.example"
    assert states["longer"] == (AuthorisationState.PENDING, None, "")  # its own period runs on
    events = await audit_events(db, "subprocessor_authorisation:deadline_passed")
    assert sorted((e.org_id, e.subject_id, e.actor) for e in events) == sorted(
        (c.org.id, str(c.row.id), "system:deadline") for c in (four["general"], four["specific"]))
    assert {e.data["state"] for e in events} == {"deemed_authorised", "not_authorised"}
    assert responses.not_in_force_for(await fresh(db, select(ChangeAuthorisation)
                                                  .where(ChangeAuthorisation.org_id == four["specific"].org.id))) \
        == {four["specific"].row.entry_id}


async def test_nothing_changes_before_the_deadline(engine, db, four, settings):
    before = await _states(db, four)

    assert (await _run_jobs(engine, settings, four["general"].row.deadline - dt.timedelta(seconds=1)))[JOB] == 0

    assert await _states(db, four) == before
    assert await audit_events(db, "subprocessor_authorisation:deadline_passed") == []


async def test_a_second_run_changes_nothing(engine, db, four, settings):
    at = four["general"].row.deadline + dt.timedelta(seconds=1)
    await _run_jobs(engine, settings, at)
    after_first = await _states(db, four)

    assert (await _run_jobs(engine, settings, at + dt.timedelta(hours=1)))[JOB] == 0

    assert await _states(db, four) == after_first
    assert len(await audit_events(db, "subprocessor_authorisation:deadline_passed")) == 2


async def test_each_client_is_decided_at_its_own_deadline(engine, db, four, settings):
    await _run_jobs(engine, settings, four["general"].row.deadline + dt.timedelta(seconds=1))
    later = four["longer"].row.deadline + dt.timedelta(seconds=1)
    assert four["longer"].row.deadline == NOW + dt.timedelta(days=60)

    assert (await _run_jobs(engine, settings, later))[JOB] == 1

    states = await _states(db, four)
    assert states["longer"] == (AuthorisationState.DEEMED_AUTHORISED, later, "system:deadline")
    assert states["specific"][0] is AuthorisationState.NOT_AUTHORISED  # never authorised by silence


async def test_an_approved_change_is_left_as_approved(engine, db, four, settings):
    specific = four["specific"]
    async with request(engine) as session:
        await responses.approve(session, actor=specific.responder, org=specific.org,
                                authorisation_id=str(specific.row.id), now=NOW + dt.timedelta(days=2))

    await _run_jobs(engine, settings, specific.row.deadline + dt.timedelta(seconds=1))

    assert (await _states(db, four))["specific"][0] is AuthorisationState.AUTHORISED
    events = await audit_events(db, "subprocessor_authorisation:deadline_passed")
    assert [e.subject_id for e in events] == [str(four["general"].row.id)]


async def test_the_deadline_job_counts_what_it_changed(engine, db, four, settings):
    count = int(await db.scalar(select(func.count()).select_from(ChangeAuthorisation)
                                .where(ChangeAuthorisation.state == AuthorisationState.PENDING)))
    assert count == 3

    done = await _run_jobs(engine, settings, NOW + dt.timedelta(days=61))

    assert done[JOB] == 3


async def test_a_failing_job_is_logged_and_the_others_still_run(engine, db, four, settings, monkeypatch, caplog):
    monkeypatch.setattr(scheduled, "JOBS", (("a job that cannot load", "portal.no_such_module:job", False),
                                            *scheduled.JOBS))

    done = await _run_jobs(engine, settings, four["general"].row.deadline + dt.timedelta(seconds=1))

    assert "a job that cannot load" not in done and done[JOB] == 2
    assert "a job that cannot load" in caplog.text
    assert (await _states(db, four))["general"][0] is AuthorisationState.DEEMED_AUTHORISED
