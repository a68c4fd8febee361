"""The client's export of its incident record (JSON and DOCX) for its Art. 33(5) documentation."""

from __future__ import annotations

import datetime as dt
import io
import json

import docx
import pytest
from docx.table import Table

from portal.accounts.models import Membership, Organisation
from portal.accounts.roles import Role
from portal.actors import Actor
from portal.breaches import export, export_routes, incidents, notices
from portal.breaches.models import UNKNOWN, Incident
from tests.breaches.support import SYSTEM, affect, client_with_contact, notice_input, open_incident
from tests.conftest import World
from tests.notifications.recipients_support import deliver_due

EXPORTED = dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)
NAMES = ("Acme Logistics", "Globex", "Initech")
FIGURES = {name: (f"{(i + 1) * 111} people", f"{(i + 1) * 1000} records") for i, name in enumerate(NAMES)}


@pytest.fixture
def app(app):
    """The app with the export routes, whether or not ``portal.app`` mounts them yet."""
    mounted = {getattr(route, "path", None) for route in app.router.routes}
    app.router.routes.extend(r for r in export_routes.routes if getattr(r, "path", None) not in mounted)
    return app


async def three_clients_notified(world: World, settings, **incident: str) -> tuple[Incident, list[
        tuple[Organisation, Membership]]]:
    """An incident notified to three clients with different figures; the first also got an interim notice."""
    found = await open_incident(world, **incident)
    clients = [await client_with_contact(world, name) for name in NAMES]
    await affect(world.session, found, everyone=True)
    for org, _contact in clients:
        subjects, records = FIGURES[org.name]
        await notices.send_notice(world.session, actor=SYSTEM, incident=found, org=org, phase="initial",
                                  settings=settings, raw=notice_input(subjects=subjects, records=records))
    first, _ = clients[0]
    await notices.send_notice(world.session, actor=SYSTEM, incident=found, org=first, phase="interim",
                              settings=settings, raw=notice_input(*FIGURES[first.name],
                                                                  likely_consequences="Phishing is possible."))
    await world.commit()
    return found, clients


async def record_for(world: World, contact: Membership, org: Organisation, incident: Incident) -> dict:
    found, sent = await notices.client_incident(world.session, actor=Actor.for_member(contact), org=org,
                                                incident_id=str(incident.id))
    return export.incident_record(found, sent, await notices.receipts(world.session, sent), org.name, now=EXPORTED)


def read(data: bytes) -> tuple[str, list[list[list[str]]]]:
    """The whole text, paragraphs and table rows in body order, and each table's rows."""
    document = docx.Document(io.BytesIO(data))
    lines: list[str] = []
    tables: list[list[list[str]]] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            tables.append([[cell.text for cell in row.cells] for row in block.rows])
            lines += [" | ".join(row) for row in tables[-1]]
        else:
            lines.append(block.text)
    return "\n".join(lines), tables


# ---------------------------------------------------------------- the JSON record

async def test_the_record_holds_only_that_clients_notices_and_figures_and_no_internal_notes(world, settings, engine):
    incident, clients = await three_clients_notified(world, settings)
    await deliver_due(engine, settings)

    for index, (org, contact) in enumerate(clients):
        record = await record_for(world, contact, org, incident)
        text = json.dumps(record)
        assert record["client"] == org.name and record["exported_at"] == EXPORTED.isoformat()
        assert "SEC-4411" not in text and "internal_notes" not in text  # the vendor's notes stay with the vendor
        for other in NAMES:
            if other != org.name:
                assert other not in text  # requirement 47
                assert all(figure not in text for figure in FIGURES[other])
        assert all(figure in text for figure in FIGURES[org.name])
        assert [n["seq"] for n in record["notices"]] == ([1, 2] if index == 0 else [1])
        for notice in record["notices"]:
            sent = dt.datetime.fromisoformat(notice["notified_at"])
            assert dt.datetime.fromisoformat(notice["reference_sa_deadline"]) - sent == dt.timedelta(hours=72)
            assert "You determine when you became aware" in notice["reference_sa_deadline_note"]
            assert set(notice["content"]) == {"nature", "categories", "approximate_subjects", "approximate_records",
                                              "likely_consequences", "measures", "contact_point"}
            assert notice["delivered_at"] is not None and notice["acknowledged_at"] is None

    record = await record_for(world, clients[0][1], clients[0][0], incident)
    facts = record["incident"]
    assert (facts["reference"], facts["aware_at"], facts["detected_at"], facts["occurred_at"]) == (
        incident.reference, incident.aware_at.isoformat(), incident.detected_at.isoformat(), None)
    assert (facts["natures"], facts["source"], facts["status"], facts["closure"]) == (
        ["confidentiality"], "own", "open", None)
    interim = record["notices"][1]
    assert interim["phase"] == "interim"
    assert interim["changes"] == {"likely_consequences": {"before": UNKNOWN, "after": "Phishing is possible."}}


async def test_the_record_names_the_sub_processor_and_the_closure(world, settings, db):
    told = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=3)
    incident = await open_incident(world, source="subprocessor", subprocessor_name="Relay Mail Services GmbH",
                                   subprocessor_notified_at=told.isoformat())
    org, contact = await client_with_contact(world, "Acme Logistics")
    await affect(db, incident, org)
    await notices.send_notice(db, actor=SYSTEM, incident=incident, org=org, phase="initial", raw=notice_input(),
                              settings=settings)
    await incidents.close_incident(db, actor=SYSTEM, incident=incident, closure="breach_handled",
                                   rationale="Relay Mail purged the logs; every client was notified.")
    await world.commit()

    facts = (await record_for(world, contact, org, incident))["incident"]

    assert (facts["subprocessor"], facts["subprocessor_notified_at"]) == ("Relay Mail Services GmbH", told.isoformat())
    assert (facts["status"], facts["closure"], facts["closure_rationale"]) == (
        "closed", "breach_handled", "Relay Mail purged the logs; every client was notified.")
    assert facts["closed_at"] == incident.closed_at.isoformat()


async def test_a_record_refuses_notices_of_another_client(world, settings):
    incident, clients = await three_clients_notified(world, settings)
    mixed = [n for org, _ in clients[:2] for n in await notices.notices_to(world.session, org, incident)]
    with pytest.raises(ValueError, match="one client"):
        export.incident_record(incident, mixed, {}, clients[0][0].name)


# ---------------------------------------------------------------- the DOCX

async def test_the_docx_lists_every_notice_in_order_with_its_times_and_the_72_hour_reference(world, settings):
    incident, clients = await three_clients_notified(world, settings)
    org, contact = clients[0]
    record = await record_for(world, contact, org, incident)

    data = export.incident_record_docx(record)
    text, tables = read(data)

    assert text.index("Notice 1 (initial)") < text.index("Notice 2 (interim)")
    for notice in record["notices"]:
        sent = dt.datetime.fromisoformat(notice["notified_at"])
        reference = sent + dt.timedelta(hours=72)
        assert f"Sent (UTC) | {sent:%Y-%m-%d %H:%M:%S} UTC" in text
        assert f"Reference: 72 hours later (UTC) | {reference:%Y-%m-%d %H:%M:%S} UTC. A reference only" in text
    assert "You determine when you became aware of the breach" in text
    assert f"The processor became aware (UTC) | {incident.aware_at:%Y-%m-%d %H:%M:%S} UTC" in text
    assert "Likely consequences | Phishing is possible." in text
    assert ["Likely consequences", UNKNOWN, "Phishing is possible."] in [row for table in tables for row in table]
    assert "SEC-4411" not in text and "Globex" not in text and "Initech" not in text
    properties = docx.Document(io.BytesIO(data)).core_properties
    assert properties.created == properties.modified == EXPORTED
    assert export.incident_record_docx(record) == data  # the same record gives the same bytes


# ---------------------------------------------------------------- the downloads

async def test_the_clients_contacts_and_vendor_staff_download_it_others_get_404(world, settings, login_as):
    incident, clients = await three_clients_notified(world, settings)
    (acme, acme_contact), (globex, _globex_contact) = clients[0], clients[1]
    other = await open_incident(world, title="Not notified to Acme")
    path = f"/orgs/{acme.id}/incidents/{incident.id}/export"
    contact = await login_as(acme_contact)
    staff = await login_as(await world.person(await world.vendor(), Role.VIEWER))
    globex_admin = await login_as(await world.person(globex, Role.ADMIN))
    acme_member = await login_as(await world.person(acme, Role.MEMBER))

    as_json = await contact.get(path + ".json")
    as_docx = await contact.get(path + ".docx")
    by_staff = await staff.get(path + ".json")

    assert as_json.status_code == 200 and as_json.headers["content-type"].startswith("application/json")
    for response, suffix in ((as_json, "json"), (as_docx, "docx")):
        assert response.headers["content-disposition"] == (
            f'attachment; filename="{incident.reference}-incident-record.{suffix}"')
        assert response.headers["cache-control"] == "no-store"
    record = as_json.json()
    assert [n["seq"] for n in record["notices"]] == [1, 2] and "Globex" not in as_json.text
    assert as_docx.headers["content-type"] == export.DOCX_MEDIA_TYPE
    assert "Notice 2 (interim)" in read(as_docx.content)[0]
    assert by_staff.status_code == 200 and by_staff.json()["client"] == acme.name
    assert (await globex_admin.get(path + ".json")).status_code == 404  # another client's record
    assert (await globex_admin.get(path + ".docx")).status_code == 404
    own = await globex_admin.get(f"/orgs/{globex.id}/incidents/{incident.id}/export.json")
    assert own.status_code == 200 and "Acme" not in own.text and FIGURES["Acme Logistics"][0] not in own.text
    assert (await contact.get(f"/orgs/{acme.id}/incidents/{other.id}/export.json")).status_code == 404
    assert (await contact.get(f"/orgs/{acme.id}/incidents/not-an-id/export.docx")).status_code == 404
    assert (await acme_member.get(path + ".json")).status_code == 403  # a member without view_incidents
