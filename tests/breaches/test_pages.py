"""The incident pages over HTTP: vendor security records an incident, marks clients and notifies each; each
client's security contact sees only its own notices, acknowledges them and follows the updates."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select

from portal.accounts.roles import Role
from portal.breaches.models import UNKNOWN, BreachNotice, Incident
from tests.breaches.support import client_with_contact, notice_input
from tests.conftest import post_form
from tests.signing.support import loaded


def _form(aware: dt.datetime, **overrides: str) -> dict[str, str]:
    return {"title": "Export sent to the wrong tenant", "aware_at": aware.strftime("%Y-%m-%dT%H:%M"),
            "detected_at": (aware - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"), "occurred_at": "",
            "natures": "confidentiality", "summary": "An export job sent metadata to another tenant.",
            "source": "own", "contact_point": "Security operations, security@lumen.example",
            "internal_notes": "Cache key bug, SEC-4411", **overrides}


async def test_vendor_security_notifies_each_client_and_the_client_acknowledges(world, login_as, db):
    security = await login_as(await loaded(world, await world.person(await world.vendor(), Role.SECURITY)))
    acme, acme_contact = await client_with_contact(world, "Acme Logistics")
    globex, globex_contact = await client_with_contact(world, "Globex")
    aware = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)

    refused = await post_form(security, "/incidents", _form(aware, contact_point=""))
    assert refused.status_code == 400 and 'id="contact_point-error"' in refused.text
    assert 'value="Export sent to the wrong tenant"' in refused.text
    created = await post_form(security, "/incidents", _form(aware))
    assert created.status_code == 303
    incident = (await db.execute(select(Incident))).scalar_one()
    page = (await security.get(created.headers["location"])).text
    assert 'id="elapsed-hours">3<' in page and "SEC-4411" in page

    assert (await post_form(security, f"/incidents/{incident.id}/clients", {"everyone": "yes"})).status_code == 303
    for org, subjects in ((acme, "120 employees"), (globex, "7 contractors")):
        form = await security.get(f"/incidents/{incident.id}/clients/{org.id}/notice")
        assert form.status_code == 200 and "Security operations" in form.text
        sent = await post_form(security, f"/incidents/{incident.id}/clients/{org.id}/notice",
                               {**notice_input(subjects=subjects), "phase": "initial"})
        assert sent.status_code == 303, sent.text[:400]

    acme_client = await login_as(acme_contact)
    mine = (await acme_client.get(f"/orgs/{acme.id}/incidents/{incident.id}")).text
    assert "120 employees" in mine and "7 contractors" not in mine and "Globex" not in mine
    assert "SEC-4411" not in mine and UNKNOWN in mine
    assert "determines when it became aware" in mine
    other = await login_as(globex_contact)
    assert (await other.get(f"/orgs/{acme.id}/incidents/{incident.id}")).status_code == 404
    [acme_notice] = (await db.execute(select(BreachNotice)
                                      .where(BreachNotice.org_id == acme.id))).scalars()  # tenancy: test inspection
    ack_url = f"/orgs/{acme.id}/incidents/{incident.id}/notices/{acme_notice.id}/acknowledge"
    assert (await post_form(other, ack_url)).status_code == 404
    assert (await post_form(acme_client, ack_url)).status_code == 303
    assert "Acknowledged" in (await acme_client.get(f"/orgs/{acme.id}/incidents/{incident.id}")).text

    update = await post_form(security, f"/incidents/{incident.id}/clients/{acme.id}/notice",
                             {**notice_input(subjects="120 employees", likely_consequences="Phishing is possible."),
                              "phase": "interim"})
    assert update.status_code == 303
    timeline = (await acme_client.get(f"/orgs/{acme.id}/incidents/{incident.id}")).text
    assert [int(n) for n in re.findall(r'id="notice-(\d+)"', timeline)] == [1, 2]
    assert "changed" in timeline and "Phishing is possible." in timeline
    vendor_view = (await security.get(f"/incidents/{incident.id}")).text
    assert "Acme Logistics" in vendor_view and "Globex" in vendor_view

    closed = await post_form(security, f"/incidents/{incident.id}/close",
                             {"closure": "breach_handled", "closure_rationale": ""})
    assert closed.status_code == 400 and 'id="closure_rationale-error"' in closed.text
    closed = await post_form(security, f"/incidents/{incident.id}/close",
                             {"closure": "breach_handled", "closure_rationale": "Fixed and notified."})
    assert closed.status_code == 303


async def test_clients_and_vendor_viewers_cannot_act(world, login_as, db):
    viewer = await login_as(await world.person(await world.vendor(), Role.VIEWER))
    _acme, contact = await client_with_contact(world, "Acme Logistics")
    client = await login_as(contact)
    aware = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert (await post_form(viewer, "/incidents", _form(aware))).status_code == 403
    assert (await client.get("/incidents")).status_code == 404
    assert (await post_form(client, "/incidents", _form(aware))).status_code == 404
    assert (await db.execute(select(Incident))).first() is None


async def test_one_form_sends_every_waiting_client_its_initial_notice(world, login_as, db):
    from tests.breaches.support import affect, open_incident

    security = await login_as(await loaded(world, await world.person(await world.vendor(), Role.SECURITY)))
    acme, _ = await client_with_contact(world, "Acme Logistics")
    globex, _ = await client_with_contact(world, "Globex")
    incident = await open_incident(world)
    await affect(db, incident, everyone=True)
    await world.commit()
    page = (await security.get(f"/incidents/{incident.id}")).text
    assert "Send the initial notice to 2 client(s)" in page
    shared = {k: v for k, v in notice_input().items() if not k.startswith("approximate")}
    refused = await post_form(security, f"/incidents/{incident.id}/notify-all", {**shared, "figures": "Nobody | 1"})
    assert refused.status_code == 400 and 'id="figures-error"' in refused.text
    sent = await post_form(security, f"/incidents/{incident.id}/notify-all",
                           {**shared, "figures": "Acme Logistics | 120 | 480"})
    assert sent.status_code == 303
    rows = {org_id: content for org_id, content in (await db.execute(select(BreachNotice.org_id,
                                                                            BreachNotice.content))).all()}
    assert rows[acme.id]["approximate_subjects"] == "120" and rows[globex.id]["approximate_subjects"] == UNKNOWN
