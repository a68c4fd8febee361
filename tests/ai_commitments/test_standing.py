"""Expanding and narrowing versions per client (legal requirement 57): a narrowing version is notified and applies
on its date; a widening one is a direct notice, shows ``pending_acceptance`` per client and applies to a client only
once that client accepts; every version is classified against the client's own version."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from portal.accounts.roles import Role
from portal.ai_commitments import acceptance, instructions, standing
from portal.ai_commitments.models import Acceptance, ImmutableVersion
from portal.ai_commitments.standing import State
from portal.audit.models import AuditEvent
from portal.errors import Forbidden, InvalidInput, NotFound
from portal.notifications.models import Delivery, Notice, PublicSubscriber, SubscriberStatus
from tests.ai_commitments.support import DAYS_AGO_40, changed, commitments, publish_version, register_provider
from tests.signing.support import actor, loaded

TODAY = dt.datetime.now(dt.UTC).date()
OPT_IN = {"training_use": "customer_opt_in", "training_models": "The client's own fine-tune"}


@pytest.fixture
async def clients(world):
    """Acme and Globex, each with an admin and a privacy contact, on version 1 (in effect since 40 days ago)."""
    await register_provider(world)
    await publish_version(world, commitments(), now=DAYS_AGO_40, reason="First")
    people = {}
    for name in ("Acme Logistics", "Globex Corporation"):
        org = await world.client_org(name)
        slug = name.split()[0].lower()
        people[slug] = (org, await loaded(world, await world.person(org, Role.ADMIN, email=f"admin@{slug}.example")))
        await world.person(org, Role.PRIVACY_CONTACT, email=f"privacy@{slug}.example")
    await world.commit()
    return people


async def _notices(db, version_number: int) -> list[Notice]:
    return [n for n in (await db.execute(select(Notice).where(Notice.type == "ai_commitment_change")
                                         .order_by(Notice.created_at))).scalars()
            if n.payload["version"] == version_number]


async def _state(db, org, today: dt.date = TODAY) -> standing.Standing:
    return await standing.standing_of(db, org, today)


async def test_a_narrowing_version_is_notified_and_applies_on_its_date(world, db, clients):
    subscriber = PublicSubscriber(email="reader@example.net", topics=["ai_commitments"],
                                  status=SubscriberStatus.CONFIRMED)
    db.add(subscriber)
    await world.commit()
    acme, _ = clients["acme"]
    later = TODAY + dt.timedelta(days=10)
    v2 = await publish_version(world, changed(commitments(), "telemetry", vendor_retention_days=14), effective=later,
                               reason="Telemetry kept 14 days")

    before, on_the_day = await _state(db, acme), await _state(db, acme, later)
    assert (before.state, before.applied.version.number) == (State.SCHEDULED, 1)
    assert (on_the_day.state, on_the_day.applied.version.number, on_the_day.applied.start) == (State.IN_EFFECT, 2,
                                                                                             later)
    assert on_the_day.applied.accepted is None and before.widening == ()

    sent = await _notices(db, 2)
    assert {n.org_id for n in sent} == {acme.id, clients["globex"][0].id, None}  # both clients and the public
    for notice in sent:
        assert notice.payload["expanding"] is False and notice.payload["effective_date"] == later.isoformat()
        assert notice.subject_id == str(v2.id)
    emails = {d.email for d in (await db.execute(select(Delivery).where(
        Delivery.notice_id.in_([n.id for n in sent])))).scalars()}
    assert emails == {"admin@acme.example", "privacy@acme.example", "admin@globex.example",
                      "privacy@globex.example", "reader@example.net"}


async def test_an_expanding_version_waits_for_each_clients_acceptance(world, db, clients):
    (acme, acme_admin), (globex, _) = clients["acme"], clients["globex"]
    v2 = await publish_version(world, changed(commitments(), "feedback", **OPT_IN), reason="Ranking from feedback")
    assert v2.expanding

    for org in (acme, globex):
        position = await _state(db, org)
        assert (position.state, position.applied.version.number) == (State.PENDING_ACCEPTANCE, 1)
        assert position.widening == ("Feedback: training use widens to 'Only if the client opts in'",)
    client_notices = [n for n in await _notices(db, 2) if n.org_id is not None]
    assert len(client_notices) == 2 and all(n.payload["expanding"] for n in client_notices)
    assert all("What it widens for you:\n- Feedback: training use widens" in n.payload["summary"]
               for n in client_notices)

    row = await acceptance.accept(db, actor=actor(acme_admin), org=acme, number="2", confirmed=True)
    await world.commit()
    assert (row.number, row.sha256, row.widening) == (2, v2.sha256, list((await _state(db, globex)).widening))
    assert "Acme Logistics" in row.statement and v2.sha256 in row.statement
    mine, theirs = await _state(db, acme), await _state(db, globex)
    assert (mine.state, mine.applied.version.number, mine.applied.accepted.id) == (State.IN_EFFECT, 2, row.id)
    assert (theirs.state, theirs.applied.version.number) == (State.PENDING_ACCEPTANCE, 1)  # it stays on version 1
    assert mine.on(TODAY - dt.timedelta(days=1)).version.number == 1  # the day before it accepted
    event = (await db.execute(select(AuditEvent).where(AuditEvent.tag == "ai_commitments:accepted"))).scalar_one()
    assert event.org_id == acme.id and event.data["sha256"] == v2.sha256


async def test_an_acceptance_before_the_effective_date_applies_from_that_date(world, db, clients):
    acme, admin = clients["acme"]
    later = TODAY + dt.timedelta(days=5)
    await publish_version(world, changed(commitments(), "prompts", vendor_retention_days=60), effective=later)
    await acceptance.accept(db, actor=actor(admin), org=acme, number="2", confirmed=True)
    await world.commit()
    assert (await _state(db, acme)).state is State.ACCEPTED
    assert (await _state(db, acme)).applied.version.number == 1
    assert (await _state(db, acme, later)).applied.version.number == 2


async def test_each_version_is_classified_against_the_clients_own_version(world, db, clients):
    """Version 3 narrows version 2 but still widens version 1: Acme (on 2) gets it on its date, Globex (on 1)
    must accept it; version 4 narrows below version 1, so it applies to both."""
    (acme, admin), (globex, _) = clients["acme"], clients["globex"]
    wide = changed(commitments(), "feedback", **OPT_IN, vendor_retention_days=90)
    await publish_version(world, wide)
    await acceptance.accept(db, actor=actor(admin), org=acme, number="2", confirmed=True)
    await world.commit()
    await publish_version(world, changed(wide, "feedback", vendor_retention_days=60))
    assert ((await _state(db, acme)).state, (await _state(db, acme)).applied.version.number) == (State.IN_EFFECT, 3)
    assert (await _state(db, globex)).state is State.PENDING_ACCEPTANCE
    acme_notice, globex_notice = sorted((n for n in await _notices(db, 3) if n.org_id),
                                        key=lambda n: n.org_id != acme.id)
    assert (acme_notice.payload["expanding"], globex_notice.payload["expanding"]) == (False, True)

    await publish_version(world, changed(commitments(), "feedback", vendor_retention_days=10))
    for org in (acme, globex):
        assert ((await _state(db, org)).state, (await _state(db, org)).applied.version.number) == (State.IN_EFFECT, 4)
    assert [p.version.number for p in (await _state(db, globex)).timeline] == [1, 4]
    assert [p.version.number for p in (await _state(db, acme)).timeline] == [1, 2, 3, 4]


async def test_a_client_joining_later_starts_on_the_version_in_effect(world, db, clients):
    await publish_version(world, changed(commitments(), "feedback", **OPT_IN))
    newcomer = await world.client_org("Initech Systems")
    await world.commit()
    position = await _state(db, newcomer)
    assert (position.state, position.applied.version.number) == (State.IN_EFFECT, 2)
    assert (await _state(db, clients["acme"][0])).state is State.PENDING_ACCEPTANCE


async def test_only_the_clients_admin_accepts_a_widening_version_once_and_confirmed(world, db, clients):
    (acme, admin), (_, globex_admin) = clients["acme"], clients["globex"]
    member = await loaded(world, await world.person(acme, Role.MEMBER))
    await publish_version(world, changed(commitments(), "outputs", vendor_retention_days=730))
    refusals = [
        (dict(actor=actor(admin), number="2", confirmed=False), InvalidInput, "confirm"),
        (dict(actor=actor(admin), number="7", confirmed=True), InvalidInput, "version"),
        (dict(actor=actor(admin), number="1", confirmed=True), InvalidInput, None),  # applies already
        (dict(actor=actor(member), number="2", confirmed=True), Forbidden, None),
        (dict(actor=actor(globex_admin), number="2", confirmed=True), NotFound, None),
    ]
    for kwargs, error, field in refusals:
        with pytest.raises(error) as refused:
            await acceptance.accept(db, org=acme, **kwargs)
        if field:
            assert field in refused.value.fields
    assert (await db.execute(select(Acceptance))).first() is None

    row = await acceptance.accept(db, actor=actor(admin), org=acme, number="2", confirmed=True)
    await world.commit()
    with pytest.raises(InvalidInput, match="accepted version 2 already"):
        await acceptance.accept(db, actor=actor(admin), org=acme, number="2", confirmed=True)
    row.statement = "rewritten"
    with pytest.raises(ImmutableVersion):
        await db.flush()
    await db.rollback()


async def test_a_narrowing_version_that_needs_no_acceptance_cannot_be_accepted(world, db, clients):
    acme, admin = clients["acme"]
    await publish_version(world, changed(commitments(), "outputs", vendor_retention_days=10),
                          effective=TODAY + dt.timedelta(days=3))
    with pytest.raises(InvalidInput, match="without acceptance"):
        await acceptance.accept(db, actor=actor(admin), org=acme, number="2", confirmed=True)


async def test_instructions_go_by_the_version_applying_to_the_client(world, db, clients):
    """Training on feedback can be switched on only where the client's own version allows it, and stops when a
    later version no longer trains on feedback, whatever the instruction said."""
    (acme, admin), (globex, globex_admin) = clients["acme"], clients["globex"]
    await publish_version(world, changed(commitments(), "feedback", **OPT_IN))
    with pytest.raises(InvalidInput):
        await instructions.record(db, actor=actor(admin), org=acme, data_class="feedback", enabled=True,
                                  note="Before accepting")
    await acceptance.accept(db, actor=actor(admin), org=acme, number="2", confirmed=True)
    row = await instructions.record(db, actor=actor(admin), org=acme, data_class="feedback", enabled=True,
                                    note="Our DPO approved it")
    await world.commit()
    assert row.commitments_version == 2
    with pytest.raises(InvalidInput):  # Globex is still on version 1: no training on feedback at all
        await instructions.record(db, actor=actor(globex_admin), org=globex, data_class="feedback", enabled=True,
                                  note="Not accepted")
    assert {s.data_class: s.enabled for s in await instructions.settings_of(db, acme)}["feedback"] is True

    await publish_version(world, commitments(), reason="No more training on feedback")
    feedback = {s.data_class: s for s in await instructions.settings_of(db, acme)}["feedback"]
    assert (feedback.instructed, feedback.allowed, feedback.enabled) == (True, False, False)


async def test_a_decline_keeps_the_clients_version_and_tells_the_vendor_why(world, db, clients):
    """A decline is recorded once with its reason; nothing applies that did not before; the client may still
    accept afterwards."""
    acme, admin = clients["acme"]
    await publish_version(world, changed(commitments(), "feedback", **OPT_IN))
    with pytest.raises(InvalidInput) as refused:
        await acceptance.decline(db, actor=actor(admin), org=acme, number="2", reason="  ")
    assert "reason" in refused.value.fields
    row = await acceptance.decline(db, actor=actor(admin), org=acme, number="2", reason="Our works council objects")
    await world.commit()
    position = await _state(db, acme)
    assert (position.state, position.applied.version.number, position.waiting) == (State.DECLINED, 1, True)
    assert position.declines[2].reason == "Our works council objects"
    with pytest.raises(InvalidInput, match="declined version 2 already"):
        await acceptance.decline(db, actor=actor(admin), org=acme, number="2", reason="Again")
    event = (await db.execute(select(AuditEvent).where(AuditEvent.tag == "ai_commitments:declined"))).scalar_one()
    assert event.org_id == acme.id and event.data["reason"] == "Our works council objects"

    await acceptance.accept(db, actor=actor(admin), org=acme, number="2", confirmed=True)  # a change of mind
    await world.commit()
    assert (await _state(db, acme)).state is State.IN_EFFECT
    with pytest.raises(InvalidInput, match="accepted version 2 already"):
        await acceptance.decline(db, actor=actor(admin), org=acme, number="2", reason="Too late")
    row.reason = "rewritten"
    with pytest.raises(ImmutableVersion):
        await db.flush()
    await db.rollback()
