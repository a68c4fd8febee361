"""The incident register and the rules of legal requirements 41-51, through the services."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from portal.agreements.service import active_agreement
from portal.breaches import clocks, incidents, notices
from portal.breaches.models import UNKNOWN, BreachNotice, Incident, IncidentStatus
from portal.errors import Conflict, InvalidInput
from portal.notifications.models import Notice
from tests.breaches.support import SYSTEM, affect, client_with_contact, incident_input, notice_input, open_incident


@pytest.mark.parametrize(("field", "value"), [("aware_at", ""), ("contact_point", "  "), ("natures", ()),
                                              ("aware_at", "yesterday"), ("title", "")])
async def test_no_incident_without_awareness_time_contact_point_or_nature(db, field, value):
    with pytest.raises(InvalidInput) as refused:
        await incidents.open_incident(db, actor=SYSTEM, data=incident_input(**{field: value}))
    assert field in refused.value.fields  # requirement 41
    assert (await db.execute(select(Incident))).first() is None


async def test_an_incident_at_a_sub_processor_needs_when_it_told_us_and_names_it(world, settings, db):
    with pytest.raises(InvalidInput) as refused:
        await incidents.open_incident(db, actor=SYSTEM, data=incident_input(source="subprocessor",
                                                                              subprocessor_name="Relay Mail"))
    assert "subprocessor_notified_at" in refused.value.fields  # requirement 49
    told = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)).isoformat()
    incident = await open_incident(world, source="subprocessor", subprocessor_name="Relay Mail Services GmbH",
                                   subprocessor_notified_at=told)
    org, _ = await client_with_contact(world, "Acme Logistics")
    await affect(db, incident, org)
    sent = await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial",
                                     raw=notice_input(), settings=settings)
    assert "Relay Mail Services GmbH" in sent.content["nature"]
    update = await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="interim", settings=settings,
                                       raw={**sent.content, "measures": "The provider rotated its keys."})
    assert update.content["nature"] == sent.content["nature"] and set(update.changes) == {"measures"}


async def test_blank_is_refused_unknown_is_allowed_until_the_final_notice(world, settings, db):
    incident = await open_incident(world)
    org, _ = await client_with_contact(world, "Acme Logistics")
    await affect(db, incident, org)
    with pytest.raises(InvalidInput) as blank:
        await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial",
                                  raw=notice_input(likely_consequences=" "), settings=settings)
    assert set(blank.value.fields) == {"likely_consequences"}  # requirement 42
    with pytest.raises(InvalidInput) as stated:
        await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial",
                                  raw=notice_input(categories=UNKNOWN), settings=settings)
    assert set(stated.value.fields) == {"categories"}
    first = await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial",
                                      raw=notice_input(), settings=settings)  # no risk rating asked (req. 43)
    assert first.content["likely_consequences"] == UNKNOWN
    with pytest.raises(InvalidInput) as final:
        await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="final",
                                  raw=notice_input(measures="Export fixed"), settings=settings)
    assert set(final.value.fields) == {"likely_consequences"}


async def test_the_clock_reports_a_breached_target_after_30_hours_against_24(world, settings, db):
    incident = await open_incident(world)
    org, _ = await client_with_contact(world, "Acme Logistics")
    agreement = await active_agreement(db, org)
    agreement.breach_target_hours = 24
    await world.commit()
    now = incident.aware_at + dt.timedelta(hours=30)
    clock = clocks.client_clock(incident, [], agreement, default_hours=settings.breach_target_hours, now=now)
    assert (clocks.elapsed_hours(incident, now), clock.hours, clock.sla_breached) == (30, 30, True)  # req. 44
    early = clocks.client_clock(incident, [], agreement, default_hours=48, now=incident.aware_at +
                                dt.timedelta(hours=23))
    assert early.sla_breached is False


async def test_each_client_gets_its_own_notice_with_only_its_figures(world, settings, db):
    incident = await open_incident(world)
    clients = [await client_with_contact(world, name) for name in ("Acme Logistics", "Globex", "Initech")]
    await affect(db, incident, everyone=True)
    for index, (org, _) in enumerate(clients):
        await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial", settings=settings,
                                  raw=notice_input(subjects=f"{(index + 1) * 111} people",
                                                   records=f"{(index + 1) * 1000} records"))
    await world.commit()
    sent = list((await db.execute(select(Notice).where(Notice.type == "breach_notice"))).scalars())
    assert len(sent) == 3  # requirement 47
    for notice in sent:
        own = next(i for i, (org, _) in enumerate(clients) if org.id == notice.org_id)
        text = str(notice.payload) + str(notice.context)
        assert f"{(own + 1) * 111} people" in text
        for other, (org, _) in enumerate(clients):
            if other != own:
                assert org.name not in text and f"{(other + 1) * 111} people" not in text
        assert dt.datetime.fromisoformat(notice.payload["reference_sa_deadline"]) - dt.datetime.fromisoformat(
            notice.payload["notified_at"]) == dt.timedelta(hours=72)  # requirement 45


async def test_updates_are_numbered_and_say_what_changed(world, settings, db):
    incident = await open_incident(world)
    org, _ = await client_with_contact(world, "Acme Logistics")
    await affect(db, incident, org)
    await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial", raw=notice_input(),
                              settings=settings)
    with pytest.raises(InvalidInput, match="Nothing changed"):
        await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="interim",
                                  raw=notice_input(), settings=settings)
    update = await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="interim",
                                       raw=notice_input(likely_consequences="Phishing attempts are possible."),
                                       settings=settings)
    assert (update.seq, update.incident_id) == (2, incident.id)  # requirement 46
    assert update.changes == {"likely_consequences": {"before": UNKNOWN, "after": "Phishing attempts are possible."}}
    assert [n.seq for n in await notices.notices_to(db, org, incident)] == [1, 2]


async def test_a_draft_for_data_subjects_must_carry_the_contact_point_and_known_facts(world, settings, db):
    incident = await open_incident(world)
    org, _ = await client_with_contact(world, "Acme Logistics")
    await affect(db, incident, org)
    known = {"likely_consequences": "Phishing is possible.", "measures": "Export disabled; passwords reset."}
    for draft, raw in [("Dear customer, write to us.", known), ("Contact Security operations, "
                                                                 "security@lumen.example", {})]:
        with pytest.raises(InvalidInput) as refused:
            await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial",
                                      raw=notice_input(art34_draft=draft, **raw), settings=settings)
        assert set(refused.value.fields) == {"art34_draft"}  # requirement 50
    sent = await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial", settings=settings,
                                     raw=notice_input(art34_draft="We lost titles of your documents. Phishing is "
                                                      "possible; we reset passwords. Contact Security operations, "
                                                      "security@lumen.example", **known))
    assert sent.content["art34_draft"].startswith("We lost")


async def test_closing_needs_a_rationale_and_the_incident_stays_on_record(world, db):
    incident = await open_incident(world)
    with pytest.raises(InvalidInput):
        await incidents.close_incident(db, actor=SYSTEM, incident=incident, closure="not_a_breach", rationale=" ")
    await incidents.close_incident(db, actor=SYSTEM, incident=incident, closure="not_a_breach",
                                   rationale="Only synthetic test data was in the export.")
    await world.commit()
    with pytest.raises(Conflict):
        await incidents.close_incident(db, actor=SYSTEM, incident=incident, closure="not_a_breach", rationale="x")
    [kept] = await incidents.incidents(db, actor=SYSTEM)  # requirement 51
    assert (kept.status, kept.closure_rationale) == (IncidentStatus.CLOSED, "Only synthetic test data was in the "
                                                                            "export.")


async def test_internal_notes_never_reach_the_client(world, settings, db):
    incident = await open_incident(world)
    org, _ = await client_with_contact(world, "Acme Logistics")
    await affect(db, incident, org)
    await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial", raw=notice_input(),
                              settings=settings)
    await world.commit()
    rows = [str(n.payload) + str(n.context) for n in (await db.execute(select(Notice))).scalars()]
    rows += [str(n.content) for n in (await db.execute(select(BreachNotice))).scalars()]
    assert rows and not any("SEC-4411" in row for row in rows)


async def test_affected_clients_by_sub_processor_and_by_kind_of_data(world, settings, db):
    from portal.actors import Actor
    from portal.subprocessors import publishing
    from tests.signing.support import executed_agreement, parties, published_template
    from tests.subprocessors.support import entry_data

    await publishing.draft_entry(db, actor=SYSTEM, raw=entry_data("Hostwerk GmbH"))
    earlier = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)  # announced then, in force for 20 days now
    await publishing.publish(db, actor=SYSTEM, effective_date=(earlier + dt.timedelta(days=40)).date().isoformat(),
                             summary="", default_notice_days=30, base_url="http://testserver", now=earlier)
    await world.commit()
    await published_template(world)
    health = await parties(world, "Brightwell Health")
    await executed_agreement(world, health, settings)  # its Annex II names "business contact details"
    paper, _ = await client_with_contact(world, "Paper Only AG")  # signed outside the portal: no Annex II
    incident = await open_incident(world)
    vendor = Actor.system("test")

    by_data = await incidents.add_clients(db, actor=vendor, incident=incident, default_notice_days=30,
                                          selection=incidents.Selection(data_term="Business Contact"))
    assert [row.org_id for row in by_data] == [health.org.id]
    assert "business contact" in by_data[0].reason.casefold()
    by_provider = await incidents.add_clients(db, actor=vendor, incident=incident, default_notice_days=30,
                                              selection=incidents.Selection(subprocessor="Hostwerk GmbH"))
    assert [row.org_id for row in by_provider] == [paper.id]  # Brightwell is affected already: not added twice
    with pytest.raises(InvalidInput):
        await incidents.add_clients(db, actor=vendor, incident=incident, default_notice_days=30,
                                    selection=incidents.Selection())


async def test_every_client_not_notified_yet_gets_its_initial_notice_at_once(world, settings, db):
    incident = await open_incident(world)
    clients = [await client_with_contact(world, name) for name in ("Acme Logistics", "Globex", "Initech")]
    await affect(db, incident, everyone=True)
    shared = {k: v for k, v in notice_input().items() if not k.startswith("approximate")}
    with pytest.raises(InvalidInput) as refused:
        await notices.notify_all(db, actor=SYSTEM, incident=incident, raw=shared, settings=settings,
                                 figures_text="Unknown Corp | 5 | 6")
    assert "figures" in refused.value.fields
    assert (await db.execute(select(BreachNotice))).first() is None
    sent = await notices.notify_all(db, actor=SYSTEM, incident=incident, raw=shared, settings=settings,
                                    figures_text="acme logistics | 120 employees | 480 records\nGlobex | 7 | 9")
    by_org = {notice.org_id: notice.content for notice in sent}
    acme, globex, initech = (org.id for org, _ in clients)
    assert (by_org[acme]["approximate_subjects"], by_org[globex]["approximate_records"]) == ("120 employees", "9")
    assert by_org[initech]["approximate_subjects"] == UNKNOWN
    with pytest.raises(InvalidInput, match="Every affected client"):
        await notices.notify_all(db, actor=SYSTEM, incident=incident, raw=shared, settings=settings,
                                 figures_text="")
