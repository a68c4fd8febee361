"""Escalation flags (legal requirement 48): a breach notice nobody received in time, and affected clients without a
security contact, are flagged on the vendor dashboard."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import update

from portal.accounts.models import User
from portal.accounts.roles import Role
from portal.actors import Actor
from portal.breaches import escalation, incidents, notices
from portal.breaches.escalation import FlagKind
from portal.breaches.models import BreachNotice
from tests.breaches.support import SYSTEM, affect, client_with_contact, notice_input, open_incident
from tests.notifications.recipients_support import deliver_due


def undelivered(flags: list[escalation.Flag]) -> list[tuple[str, str, int | None, int | None]]:
    return [(f.incident_reference, f.client_name, f.seq, f.minutes) for f in flags if f.kind is FlagKind.UNDELIVERED]


def uncovered(flags: list[escalation.Flag]) -> list[tuple[str, str]]:
    return [(f.incident_reference, f.client_name) for f in flags if f.kind is FlagKind.NO_SECURITY_CONTACT]


async def test_a_notice_nobody_received_is_flagged_after_the_threshold_and_not_before(world, settings, db):
    incident = await open_incident(world)
    org, _ = await client_with_contact(world, "Acme Logistics")
    await affect(db, incident, org)
    sent = await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial",
                                     raw=notice_input(), settings=settings)
    await world.commit()  # queued for its security contact; the worker never ran, so nothing was delivered
    assert settings.breach_escalation_minutes == 30

    before = await escalation.flags(db, now=sent.notified_at + dt.timedelta(minutes=29, seconds=59),
                                    settings=settings)
    after = await escalation.flags(db, now=sent.notified_at + dt.timedelta(minutes=30), settings=settings)
    later = await escalation.flags(db, now=sent.notified_at + dt.timedelta(minutes=95), settings=settings)
    sooner = await escalation.flags(db, now=sent.notified_at + dt.timedelta(minutes=10),
                                    settings=dataclasses.replace(settings, breach_escalation_minutes=10))

    assert before == []
    assert undelivered(after) == [(incident.reference, "Acme Logistics", 1, 30)]
    assert undelivered(later) == [(incident.reference, "Acme Logistics", 1, 95)]
    assert undelivered(sooner) == [(incident.reference, "Acme Logistics", 1, 10)]
    [flag] = after
    assert (flag.incident_id, flag.org.id, flag.notice_id) == (incident.id, org.id, sent.notice_id)


async def test_a_delivered_notice_is_not_flagged_one_with_nobody_to_reach_is(world, settings, db, engine):
    incident = await open_incident(world)
    reached, _ = await client_with_contact(world, "Acme Logistics")
    empty = await world.client_org("Silent SA")  # no members at all: its notice has no delivery
    await affect(db, incident, reached, empty)
    for org in (reached, empty):
        await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial",
                                  raw=notice_input(), settings=settings)
    await world.commit()
    stats = await deliver_due(engine, settings)  # the real worker, to the test SMTP sink
    assert stats.sent >= 1

    found = await escalation.flags(db, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2), settings=settings)

    assert [(ref, name, seq) for ref, name, seq, _ in undelivered(found)] == [(incident.reference, "Silent SA", 1)]


async def test_an_acknowledged_notice_and_a_closed_incident_are_not_flagged(world, settings, db):
    incident = await open_incident(world)
    org, contact = await client_with_contact(world, "Acme Logistics")
    await affect(db, incident, org)
    sent = await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial",
                                     raw=notice_input(), settings=settings)
    await world.commit()
    later = sent.notified_at + dt.timedelta(hours=1)
    assert undelivered(await escalation.flags(db, now=later, settings=settings))

    await notices.acknowledge_notice(db, actor=Actor.for_member(contact), org=org, notice_id=str(sent.id))
    await world.commit()
    assert await escalation.flags(db, now=later, settings=settings) == []  # seen in the portal: it arrived

    bare = await world.client_org("Globex")
    await affect(db, incident, bare)
    await world.commit()
    assert uncovered(await escalation.flags(db, now=later, settings=settings)) == [(incident.reference, "Globex")]
    await incidents.close_incident(db, actor=SYSTEM, incident=incident, closure="breach_handled",
                                   rationale="Handled and notified.")
    await world.commit()
    assert await escalation.flags(db, now=later, settings=settings) == []


async def test_an_affected_client_without_a_security_contact_is_flagged(world, settings, db):
    incident = await open_incident(world)
    covered, _ = await client_with_contact(world, "Acme Logistics")
    admins_only = await world.client_org("Globex")
    await world.person(admins_only, Role.ADMIN)
    disabled_contact = await world.client_org("Initech")
    gone = await world.person(disabled_contact, Role.SECURITY_CONTACT)
    user = await db.get_one(User, gone.user_id)
    user.disabled_at = dt.datetime.now(dt.UTC)
    unaffected = await world.client_org("Umbrella")  # no contact either, but not affected by an open incident
    await world.commit()
    await affect(db, incident, covered, admins_only, disabled_contact)
    await world.commit()

    found = await escalation.flags(db, now=dt.datetime.now(dt.UTC), settings=settings)

    assert uncovered(found) == [(incident.reference, "Globex"), (incident.reference, "Initech")]
    assert unaffected.name not in {f.client_name for f in found}
    assert undelivered(found) == []  # nothing was sent yet


async def test_the_dashboard_shows_the_flags_to_vendor_staff_and_not_to_clients(world, settings, db, login_as):
    incident = await open_incident(world)
    org, contact = await client_with_contact(world, "Acme Logistics")
    bare = await world.client_org("Globex")
    globex_admin = await world.person(bare, Role.ADMIN)
    await affect(db, incident, org, bare)
    sent = await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial",
                                     raw=notice_input(), settings=settings)
    # Sent 45 minutes ago (a Core update: the ORM itself refuses to change a sent notice).
    await db.execute(update(BreachNotice).where(BreachNotice.id == sent.id)
                     .values(notified_at=sent.notified_at - dt.timedelta(minutes=45)))
    await world.commit()
    staff = await login_as(await world.person(await world.vendor(), Role.SECURITY))

    home = (await staff.get("/")).text

    assert "1 breach notice has not reached anyone" in home
    assert (f'<a href="/incidents/{incident.id}">{incident.reference}</a>, notice 1 to Acme Logistics: sent 45 '
            f'minutes ago, <a href="/notices/{sent.notice_id}">see its deliveries</a>') in home
    assert "1 affected client of an open incident has no security contact" in home
    assert f'<a href="/orgs/{bare.id}/members">Globex</a> has no security contact' in home
    assert "No delivery needs attention" not in home
    for member in (contact, globex_admin):
        text = (await (await login_as(member)).get("/")).text
        assert incident.reference not in text and "has not reached anyone" not in text
        assert "no security contact" not in text
