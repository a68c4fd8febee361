"""The breach API: each client reads only its own notices and figures (legal requirement 47), with the 72-hour
reference (45), acknowledges once with the ``incidents:acknowledge`` scope, and the vendor's register reports the
clocks (44); internal notes are in no response; every body matches the documented schema."""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select

from portal.accounts.models import Organisation
from portal.accounts.tokens.service import create_token
from portal.actors import Actor
from portal.agreements.service import active_agreement
from portal.audit.models import AuditEvent
from portal.breaches import incidents, notices
from portal.breaches.models import BreachNotice, Incident
from portal.settings import Settings
from tests.api.conftest import bearer, check_schema
from tests.breaches.support import SYSTEM, affect, client_with_contact, incident_input, notice_input, open_incident
from tests.conftest import World

API = "/api/v1"
LIST = API + "/organisations/{org_id}/incidents"
ONE = LIST + "/{incident_id}"
ACK = API + "/organisations/{org_id}/breach-notices/{notice_id}/acknowledge"
REGISTER = API + "/incidents"
NAMES = ("Acme Logistics", "Globex", "Initech")
INTERNAL = ("SEC-4411", "Root cause")


def figures(index: int) -> tuple[str, str]:
    return f"{(index + 1) * 131} people", f"{(index + 1) * 1709} records"


@dataclass
class Arranged:
    clients: list[Organisation]
    incident: Incident  # every client notified, each with its own figures; Acme twice
    sent: dict[str, list[BreachNotice]]  # by client name
    other: Incident  # only Globex notified


async def arrange(world: World, settings: Settings) -> Arranged:
    incident = await open_incident(world)
    clients = [(await client_with_contact(world, name))[0] for name in NAMES]
    await affect(world.session, incident, everyone=True)
    sent: dict[str, list[BreachNotice]] = {}
    for index, org in enumerate(clients):
        sent[org.name] = [await notices.send_notice(world.session, actor=SYSTEM, incident=incident, org=org,
                                                    phase="initial", raw=notice_input(*figures(index)),
                                                    settings=settings)]
    sent[clients[0].name].append(await notices.send_notice(
        world.session, actor=SYSTEM, incident=incident, org=clients[0], phase="interim", settings=settings,
        raw=notice_input(*figures(0), likely_consequences="Targeted phishing is possible.")))
    other = await open_incident(world, title="Lost backup tape")
    await affect(world.session, other, clients[1])
    await notices.send_notice(world.session, actor=SYSTEM, incident=other, org=clients[1], phase="initial",
                              raw=notice_input("9 people", "9 records"), settings=settings)
    await world.commit()
    return Arranged(clients, incident, sent, other)


_NUMBERS = itertools.count(1)


async def token_for(world: World, org: Organisation, *scopes: str, name: str = "") -> str:
    _token, plaintext = await create_token(world.session, actor=Actor.system("test"), org=org,
                                           name=name or f"tool {next(_NUMBERS)}", scopes=list(scopes), days=None)
    await world.commit()
    return plaintext


async def schema_of(client: httpx.AsyncClient, path: str, method: str = "get") -> tuple[dict[str, Any], Any]:
    document = (await client.get(f"{API}/openapi.json")).json()
    return document, document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]


async def test_each_client_reads_only_its_own_notices_and_figures(world, settings, client):
    arranged = await arrange(world, settings)
    list_schema, one_schema = await schema_of(client, LIST), await schema_of(client, ONE)
    for index, org in enumerate(arranged.clients):
        plaintext = await token_for(world, org, "incidents:read")
        listed = await client.get(LIST.format(org_id=org.id), headers=bearer(plaintext))
        assert listed.status_code == 200, listed.text
        check_schema(*list_schema, listed.json())
        expected = [arranged.incident.id] + ([arranged.other.id] if index == 1 else [])
        assert sorted(i["id"] for i in listed.json()["items"]) == sorted(str(i) for i in expected)
        [item] = [i for i in listed.json()["items"] if i["id"] == str(arranged.incident.id)]
        own = arranged.sent[org.name]
        assert [(n["id"], n["seq"], n["phase"]) for n in item["notices"]] == [
            (str(n.id), n.seq, n.phase.value) for n in own]
        first = item["notices"][0]
        assert (first["content"]["approximate_subjects"], first["content"]["approximate_records"]) == figures(index)
        assert dt.datetime.fromisoformat(first["reference_sa_deadline"]) - dt.datetime.fromisoformat(
            first["notified_at"]) == dt.timedelta(hours=72)  # requirement 45
        assert (first["acknowledged_at"], first["acknowledged_by"]) == (None, "")
        assert (item["reference"], item["status"], item["natures"]) == (arranged.incident.reference, "open",
                                                                         ["confidentiality"])

        one = await client.get(ONE.format(org_id=org.id, incident_id=arranged.incident.id),
                               headers=bearer(plaintext))
        assert one.status_code == 200, one.text
        check_schema(*one_schema, one.json())
        assert one.json() == item
        for text in (listed.text, one.text):  # requirement 47, and internal notes stay with the vendor
            for other, other_org in enumerate(arranged.clients):
                if other != index:
                    assert other_org.name not in text and str(other_org.id) not in text
                    assert not any(figure in text for figure in figures(other))
            assert not any(note in text for note in INTERNAL)
    acme = arranged.sent[NAMES[0]]
    update = (await client.get(ONE.format(org_id=arranged.clients[0].id, incident_id=arranged.incident.id),
                               headers=bearer(await token_for(world, arranged.clients[0], "incidents:read")))).json()
    assert update["notices"][1]["changes"] == {"likely_consequences": {
        "before": acme[0].content["likely_consequences"], "after": "Targeted phishing is possible."}}  # req. 46


async def test_other_incidents_organisations_and_notices_answer_404(world, settings, client):
    arranged = await arrange(world, settings)
    acme, globex, _initech = arranged.clients
    vendor = await world.vendor()
    plaintext = await token_for(world, acme, "incidents:read", "incidents:acknowledge")
    [globex_notice] = arranged.sent[globex.name]
    for method, path in [
        ("GET", ONE.format(org_id=acme.id, incident_id=arranged.other.id)),  # not notified of it
        ("GET", LIST.format(org_id=globex.id)),
        ("GET", ONE.format(org_id=globex.id, incident_id=arranged.incident.id)),
        ("GET", LIST.format(org_id=vendor.id)),
        ("POST", ACK.format(org_id=acme.id, notice_id=globex_notice.id)),
        ("POST", ACK.format(org_id=globex.id, notice_id=globex_notice.id)),
        ("GET", REGISTER),  # the vendor's register
    ]:
        response = await client.request(method, path, headers=bearer(plaintext))
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "not_found"
        assert "Globex" not in response.text and "Lost backup tape" not in response.text
    stored = (await world.session.execute(select(BreachNotice).where(BreachNotice.id == globex_notice.id)
                                          .execution_options(populate_existing=True))).scalar_one()
    assert stored.acknowledged_at is None


async def test_a_notice_is_acknowledged_once_and_only_with_the_scope(world, settings, client):
    arranged = await arrange(world, settings)
    acme = arranged.clients[0]
    notice = arranged.sent[acme.name][0]
    url = ACK.format(org_id=acme.id, notice_id=notice.id)

    reader = await token_for(world, acme, "incidents:read")
    refused = await client.post(url, headers=bearer(reader))
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert (await client.get(LIST.format(org_id=acme.id),
                             headers=bearer(await token_for(world, acme, "incidents:acknowledge")))).status_code == 403

    acknowledger = await token_for(world, acme, "incidents:acknowledge", name="GRC tool")
    document, schema = await schema_of(client, ACK, "post")
    first = await client.post(url, headers=bearer(acknowledger))
    assert first.status_code == 200, first.text
    check_schema(document, schema, first.json())
    assert (first.json()["id"], first.json()["already_acknowledged"]) == (str(notice.id), False)
    assert first.json()["acknowledged_by"] == "token:GRC tool" and first.json()["acknowledged_at"]
    again = await client.post(url, headers=bearer(acknowledger))
    assert again.status_code == 200
    check_schema(document, schema, again.json())
    assert again.json() == {**first.json(), "already_acknowledged": True}

    stored = (await world.session.execute(select(BreachNotice).where(BreachNotice.id == notice.id)
                                          .execution_options(populate_existing=True))).scalar_one()
    assert stored.acknowledged_at is not None
    assert stored.acknowledged_at.isoformat() == dt.datetime.fromisoformat(first.json()["acknowledged_at"]).isoformat()
    events = await world.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.tag == "breach_notice:acknowledged", AuditEvent.subject_id == str(notice.id)))
    assert events == 1
    listed = (await client.get(ONE.format(org_id=acme.id, incident_id=arranged.incident.id),
                               headers=bearer(reader))).json()
    assert [n["acknowledged_by"] for n in listed["notices"]] == ["token:GRC tool", ""]  # the update is still open


async def test_the_vendor_register_reports_30_hours_against_a_24_hour_target(world, settings, client):
    aware = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=30)
    incident = await incidents.open_incident(world.session, actor=SYSTEM, data=incident_input(
        aware_at=aware.isoformat(), detected_at=(aware - dt.timedelta(hours=1)).isoformat()))
    acme, _ = await client_with_contact(world, "Acme Logistics")
    globex, _ = await client_with_contact(world, "Globex")
    agreement = await active_agreement(world.session, acme)
    assert agreement is not None
    agreement.breach_target_hours = 24
    await affect(world.session, incident, everyone=True)
    late = await notices.send_notice(world.session, actor=SYSTEM, incident=incident, org=globex, phase="initial",
                                     raw=notice_input(), settings=settings)
    await world.commit()
    vendor = await world.vendor()

    response = await client.get(REGISTER, headers=bearer(await token_for(world, vendor, "incidents:read")))
    assert response.status_code == 200, response.text
    check_schema(*await schema_of(client, REGISTER), response.json())
    [entry] = response.json()["items"]
    assert (entry["id"], entry["elapsed_hours"], entry["status"]) == (str(incident.id), 30, "open")  # req. 44
    clocks = {c["organisation"]["name"]: c for c in entry["clients"]}
    assert {k: clocks["Acme Logistics"][k] for k in ("target_hours", "first_notice_at", "hours", "sla_breached",
                                                     "notices")} == {
        "target_hours": 24, "first_notice_at": None, "hours": 30, "sla_breached": True, "notices": []}
    assert (clocks["Globex"]["target_hours"], clocks["Globex"]["hours"], clocks["Globex"]["sla_breached"]) == (
        settings.breach_target_hours, 30, False)
    assert [n["id"] for n in clocks["Globex"]["notices"]] == [str(late.id)]
    assert dt.datetime.fromisoformat(clocks["Globex"]["first_notice_at"]) == late.notified_at
    assert not any(note in response.text for note in INTERNAL)  # not even for the vendor's own token

    for org in (acme, globex):
        refused = await client.get(REGISTER, headers=bearer(await token_for(world, org, "incidents:read")))
        assert refused.status_code == 404
    assert (await client.get(REGISTER, headers=bearer(await token_for(world, vendor, "org:read")))).status_code == 403
