"""Evidence: acknowledgements by link and API, the notice pages per recipient and attempt, tenant isolation,
the vendor dashboard flags and the outgoing-mail page."""

from __future__ import annotations

import dataclasses
import os
from email.message import EmailMessage

from sqlalchemy import func, select, update

from portal.accounts.roles import Role
from portal.audit.models import AuditEvent
from portal.notifications.models import Delivery, DeliveryStatus, PublicSubscriber, SubscriberStatus
from portal.notifications.service import ack_token
from tests.api.conftest import bearer, check_schema
from tests.api.conftest import issue_token as issue_token  # fixtures, used by name
from tests.api.conftest import machine as machine
from tests.conftest import TEST_SECRET, post_form
from tests.notifications.recipients_support import (
    breach,
    deliver_due,
    deliveries_of,
    endpoint,
    send,
    subprocessor_change,
)


async def documented(machine, method: str, path: str, response) -> None:
    """Check ``response`` against the schema the OpenAPI document declares for it."""
    document = (await machine.get("/api/v1/openapi.json")).json()
    operation = document["paths"][path][method]
    check_schema(document, operation["responses"][str(response.status_code)]["content"]["application/json"]
                 ["schema"], response.json())


async def _acks(db) -> int:
    return int(await db.scalar(select(func.count()).select_from(AuditEvent)
                               .where(AuditEvent.tag == "delivery:acknowledged")))


async def _fresh(db, delivery: Delivery) -> Delivery:
    return (await db.execute(select(Delivery).where(Delivery.id == delivery.id)
                             .execution_options(populate_existing=True))).scalar_one()


async def _breach_to(world, db, org_name: str = "Acme Logistics", email: str = "sec@acme.example"):
    org = await world.client_org(org_name)
    await world.person(org, Role.SECURITY_CONTACT, email=email, name="Sam Security")
    [notice] = await send(db, breach(), [org])
    [delivery] = await deliveries_of(db, notice)
    return org, notice, delivery


# ---------------------------------------------------------------- acknowledgement by link

async def test_a_recipient_acknowledges_by_the_link_in_the_mail(client, world, db, engine, settings, mail):
    _org, notice, delivery = await _breach_to(world, db)
    await deliver_due(engine, settings)
    link = mail.link_in(mail.last_to("sec@acme.example"), "/ack/")

    page = await client.get(link)

    assert page.status_code == 200
    assert notice.title in page.text and "I received this notice" in page.text
    assert (await _fresh(db, delivery)).status is DeliveryStatus.SENT  # opening the link is not acknowledging

    done = await post_form(client, link)
    again = await post_form(client, link)

    assert done.status_code == again.status_code == 303
    delivery = await _fresh(db, delivery)
    assert delivery.status is DeliveryStatus.ACKNOWLEDGED
    assert delivery.acknowledged_by == "link" and delivery.acknowledged_at is not None
    assert await _acks(db) == 1  # idempotent: the second click records nothing more
    shown = await client.get(link)
    assert "You acknowledged this notice" in shown.text


async def test_acknowledging_needs_the_form_token_and_a_genuine_link(client, world, db):
    _org, _notice, delivery = await _breach_to(world, db)
    link = f"/ack/{ack_token(TEST_SECRET, delivery.id)}"

    without = await client.post(link, data={})
    forged_link = await post_form(client, link[:-2] + "00")
    other_secret = await client.get(f"/ack/{ack_token('another-portal', delivery.id)}")

    assert without.status_code == 403
    assert forged_link.status_code == other_secret.status_code == 404
    assert (await _fresh(db, delivery)).acknowledged_at is None
    assert await _acks(db) == 0


async def test_acknowledging_a_queued_delivery_stops_its_retries(client, world, db, engine, settings, mail):
    _org, _notice, delivery = await _breach_to(world, db)
    await db.execute(update(Delivery).values(attempts=1, last_error="connection refused"))
    await db.commit()

    await post_form(client, f"/ack/{ack_token(TEST_SECRET, delivery.id)}")
    await deliver_due(engine, settings)

    assert (await _fresh(db, delivery)).status is DeliveryStatus.ACKNOWLEDGED
    assert mail.to("sec@acme.example") == []


# ---------------------------------------------------------------- acknowledgement by API

async def test_a_client_tool_acknowledges_its_own_delivery(world, db, machine, issue_token):
    org, _notice, delivery = await _breach_to(world, db)
    _token, plaintext = await issue_token(org, "notices:write", name="GRC sync")

    response = await machine.post(f"/api/v1/deliveries/{delivery.id}/acknowledge", headers=bearer(plaintext))
    again = await machine.post(f"/api/v1/deliveries/{delivery.id}/acknowledge", headers=bearer(plaintext))

    assert response.status_code == again.status_code == 200
    await documented(machine, "post", "/api/v1/deliveries/{delivery_id}/acknowledge", response)
    body = response.json()
    assert body["status"] == "acknowledged" and body["acknowledged_by"] == "api:GRC sync"
    assert body["acknowledged_at"] == again.json()["acknowledged_at"]
    assert (await _fresh(db, delivery)).status is DeliveryStatus.ACKNOWLEDGED
    assert await _acks(db) == 1


async def test_only_the_recipients_own_organisation_acknowledges_by_api(world, db, machine, issue_token):
    _victim, _notice, delivery = await _breach_to(world, db, "Victim Secret Bank", "sec@victim.example")
    intruder = await world.client_org("Intruder Ltd")
    _t, intruder_token = await issue_token(intruder, "notices:write")
    _t, vendor_token = await issue_token(await world.vendor(), "notices:write", "notices:read")
    _t, read_only = await issue_token(_victim, "notices:read")

    for plaintext, status in ((intruder_token, 404), (vendor_token, 404), (read_only, 403)):
        response = await machine.post(f"/api/v1/deliveries/{delivery.id}/acknowledge", headers=bearer(plaintext))
        assert response.status_code == status
        assert "sec@victim.example" not in response.text and "Victim" not in response.text
    for bad_id in ("not-an-id", "00000000-0000-0000-0000-000000000000"):
        response = await machine.post(f"/api/v1/deliveries/{bad_id}/acknowledge", headers=bearer(intruder_token))
        assert response.status_code == 404
    assert (await _fresh(db, delivery)).acknowledged_at is None
    assert await _acks(db) == 0


async def test_the_api_lists_the_organisations_notices_with_each_recipients_state(world, db, machine,
                                                                                  issue_token):
    org, notice, delivery = await _breach_to(world, db)
    _other, other_notice, _d = await _breach_to(world, db, "Globex Secretive Corp", "gina@globex.example")
    [public] = await send(db, subprocessor_change(), [], include_public=True)
    _t, client_token = await issue_token(org, "notices:read")
    _t, vendor_token = await issue_token(await world.vendor(), "notices:read")

    own = await machine.get("/api/v1/notices", headers=bearer(client_token))
    everything = await machine.get("/api/v1/notices", headers=bearer(vendor_token))
    filtered = await machine.get(f"/api/v1/notices?organisation_id={org.id}&type=breach_notice",
                                 headers=bearer(vendor_token))
    bad = await machine.get("/api/v1/notices?type=gossip", headers=bearer(client_token))

    assert own.status_code == 200
    await documented(machine, "get", "/api/v1/notices", own)
    await documented(machine, "get", "/api/v1/notices", everything)
    [item] = own.json()["items"]
    assert item["id"] == str(notice.id) and item["organisation_id"] == str(org.id)
    assert [d["email"] for d in item["deliveries"]] == ["sec@acme.example"]
    assert item["deliveries"][0]["status"] == "queued" and item["deliveries"][0]["id"] == str(delivery.id)
    assert "gina@globex.example" not in own.text and "Globex" not in own.text
    assert {i["id"] for i in everything.json()["items"]} == {str(notice.id), str(other_notice.id), str(public.id)}
    assert [i["id"] for i in filtered.json()["items"]] == [str(notice.id)]
    assert bad.status_code == 400


# ---------------------------------------------------------------- the evidence pages

async def test_evidence_pages_show_every_recipient_and_attempt(world, db, engine, settings, mail, login_as):
    org = await world.client_org("Acme Logistics")
    admin = await world.person(org, Role.ADMIN, Role.SECURITY_CONTACT, email="ada@acme.example")
    hook = await endpoint(db, org, ["breaches"], url="http://127.0.0.1:9/refused")
    [notice] = await send(db, breach(), [org])
    await deliver_due(engine, settings)
    staff = await login_as(await world.person(await world.vendor(), Role.VIEWER))
    client_admin = await login_as(admin)

    listing = await staff.get("/notices")
    detail = await staff.get(f"/notices/{notice.id}")
    own_listing = await client_admin.get(f"/orgs/{org.id}/notices")
    own_detail = await client_admin.get(f"/orgs/{org.id}/notices/{notice.id}")

    assert listing.status_code == detail.status_code == own_listing.status_code == own_detail.status_code == 200
    assert notice.title in listing.text and "Acme Logistics" in listing.text
    assert "1 sent" in listing.text and "1 queued" in listing.text
    webhook = next(d for d in await deliveries_of(db, notice) if d.endpoint_id == hook.id)
    assert webhook.status is DeliveryStatus.QUEUED and webhook.last_error  # failed once, waiting for a retry
    for page in (detail, own_detail):
        text = page.text.replace("&#39;", "'").replace("&quot;", '"')
        assert "ada@acme.example" in text and "role: security contact" in text
        assert hook.url in text and "webhook for breaches" in text and webhook.webhook_id in text
        assert "250 Message accepted for delivery" in text  # the SMTP server's reply to the attempt
        assert "· delivered ·" in text and "· failed ·" in text
        assert webhook.last_error[:40] in text and "next try after" in text


async def test_another_organisations_notices_answer_404(world, db, login_as):
    victim, victim_notice, _d = await _breach_to(world, db, "Victim Secret Bank", "sec@victim.example")
    intruder_org = await world.client_org("Intruder Ltd")
    intruder = await login_as(await world.person(intruder_org, Role.ADMIN))
    [public] = await send(db, subprocessor_change(), [], include_public=True)

    for url in (f"/orgs/{victim.id}/notices", f"/orgs/{victim.id}/notices/{victim_notice.id}",
                f"/orgs/{intruder_org.id}/notices/{victim_notice.id}", f"/notices/{victim_notice.id}",
                f"/orgs/{intruder_org.id}/notices/{public.id}", f"/notices/{public.id}"):
        response = await intruder.get(url)
        assert response.status_code == 404, url
        assert "Victim Secret Bank" not in response.text and "sec@victim.example" not in response.text
    own = await intruder.get("/notices")
    assert own.status_code == 303 and own.headers["location"] == f"/orgs/{intruder_org.id}/notices"
    listing = await intruder.get(f"/orgs/{intruder_org.id}/notices")
    assert victim_notice.title not in listing.text and "No notices yet." in listing.text


async def test_vendor_staff_filter_notices_and_see_public_ones(world, db, login_as):
    org, notice, _d = await _breach_to(world, db)
    [public] = await send(db, subprocessor_change(), [], include_public=True)
    staff = await login_as(await world.person(await world.vendor(), Role.LEGAL))

    by_type = await staff.get("/notices?type=subprocessor_change")
    by_org = await staff.get(f"/notices?org={org.id}")
    public_detail = await staff.get(f"/notices/{public.id}")
    bad = await staff.get("/notices?type=gossip")
    unknown_org = await staff.get("/notices?org=00000000-0000-0000-0000-000000000000")
    assert unknown_org.status_code == 400 and "Choose an organisation from the list." in unknown_org.text
    assert 'id="org"' in unknown_org.text  # the filter form is shown again

    assert public.title in by_type.text and notice.title not in by_type.text
    assert notice.title in by_org.text and public.title not in by_org.text
    assert public_detail.status_code == 200 and "Public subscribers" in public_detail.text
    assert bad.status_code == 400 and "Choose a notice type from the list." in bad.text


# ---------------------------------------------------------------- the vendor dashboard

async def test_the_vendor_dashboard_flags_what_needs_a_person(world, db, login_as):
    healthy = await world.client_org("Healthy Corp")
    await world.person(healthy, Role.PRIVACY_CONTACT, Role.SECURITY_CONTACT)
    failing, failing_notice, failing_delivery = await _breach_to(world, db, "Failing GmbH", "sec@failing.example")
    await db.execute(update(Delivery).where(Delivery.id == failing_delivery.id)
                     .values(status=DeliveryStatus.DEAD, last_error="550 mailbox unavailable"))
    silent = await world.client_org("Silent SA")  # no contacts at all: its notice reaches nobody
    [silent_notice] = await send(db, breach(), [silent])
    [healthy_notice] = await send(db, subprocessor_change(), [healthy])
    owner = await login_as(await world.person(await world.vendor(), Role.OWNER))

    home = (await owner.get("/")).text

    assert "1 delivery failed for good" in home and 'href="/notices?status=dead"' in home
    assert f'href="/notices/{failing_notice.id}">Failing GmbH' in home
    assert f'href="/notices/{silent_notice.id}">Silent SA' in home and "no recipient at all" in home
    assert f'href="/notices/{healthy_notice.id}"' not in home
    assert f'href="/orgs/{silent.id}/notices/settings">Silent SA</a>: no privacy contact and security contact' in home
    assert f'href="/orgs/{failing.id}/notices/settings">Failing GmbH</a>: no privacy contact' in home
    assert f'href="/orgs/{healthy.id}/notices/settings"' not in home
    dead = await owner.get("/notices?status=dead")
    assert f'href="/notices/{failing_notice.id}"' in dead.text
    assert f'href="/notices/{silent_notice.id}"' not in dead.text


async def test_clients_see_no_dashboard_flags(world, login_as):
    org = await world.client_org()
    admin = await login_as(await world.person(org, Role.ADMIN))
    assert "Notice delivery" not in (await admin.get("/")).text


# ---------------------------------------------------------------- outgoing mail

def _write_eml(directory, name: str, *, subject: str, to: str, text: str, html: str = "") -> None:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "Lumen AI <portal@lumen.example>"
    message["To"] = to
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(bytes(message))


async def test_outgoing_mail_lists_files_and_shows_only_their_text(world, settings, login_as, tmp_path):
    mail_dir = settings.mail_dir
    _write_eml(mail_dir, "20261122T100000000000Z-a.eml", subject="Breach notice INC-1", to="sec@acme.example",
               text="Dear <b>Sam</b>, see the portal.", html="<p onclick='x'>Hi</p><script>alert(1)</script>")
    (tmp_path / "outside.eml").write_text("Subject: secret outside\n\nnot for the page")
    os.symlink(tmp_path / "outside.eml", mail_dir / "link.eml")
    (mail_dir / "notes.txt").write_text("not mail")
    _write_eml(mail_dir, "Sat_22_Nov_2026_03:01:34_GMT-0a1b2c.eml", subject="Your invitation", to="ada@acme.example",
               text="Join Acme.")
    legal = await login_as(await world.person(await world.vendor(), Role.LEGAL))

    listing = await legal.get("/outgoing-mail")
    invitation = await legal.get("/outgoing-mail/Sat_22_Nov_2026_03%3A01%3A34_GMT-0a1b2c.eml")
    assert 'href="/outgoing-mail/Sat_22_Nov_2026_03%3A01%3A34_GMT-0a1b2c.eml"' in listing.text
    assert invitation.status_code == 200 and "Join Acme." in invitation.text
    message = await legal.get("/outgoing-mail/20261122T100000000000Z-a.eml")

    assert listing.status_code == 200
    assert "Breach notice INC-1" in listing.text and "sec@acme.example" in listing.text
    assert "secret outside" not in listing.text and "notes.txt" not in listing.text
    assert message.status_code == 200
    assert "Dear &lt;b&gt;Sam&lt;/b&gt;, see the portal." in message.text
    assert "alert(1)" not in message.text and "onclick" not in message.text
    for name in ("link.eml", "notes.txt", "..%2Fsecret_key", "%2E%2E%2Fsecret_key.eml", "missing.eml"):
        assert (await legal.get(f"/outgoing-mail/{name}")).status_code == 404, name


async def test_without_smtp_notices_are_written_as_files_and_shown(world, db, engine, settings, login_as, mail):
    _org, notice, _delivery = await _breach_to(world, db)
    await deliver_due(engine, dataclasses.replace(settings, smtp_url=""))
    security = await login_as(await world.person(await world.vendor(), Role.SECURITY))

    listing = await security.get("/outgoing-mail")
    [name] = [p.name for p in settings.mail_dir.iterdir() if p.suffix == ".eml"]
    message = await security.get(f"/outgoing-mail/{name}")

    assert mail.messages == []  # nothing went to SMTP
    assert notice.title in listing.text and "sec@acme.example" in listing.text
    assert message.status_code == 200 and "/ack/" in message.text and "Sam Security" in message.text


async def test_outgoing_mail_is_for_vendor_owners_legal_and_security(world, login_as):
    viewer = await login_as(await world.person(await world.vendor(), Role.VIEWER))
    client_admin = await login_as(await world.person(await world.client_org(), Role.ADMIN))

    assert (await viewer.get("/outgoing-mail")).status_code == 403
    assert (await client_admin.get("/outgoing-mail")).status_code == 404
    assert (await client_admin.get("/outgoing-mail/x.eml")).status_code == 404


async def test_public_subscriber_addresses_stay_off_client_pages(world, db, login_as):
    db.add(PublicSubscriber(email="fan@example.org", topics=["subprocessors"], status=SubscriberStatus.CONFIRMED))
    await db.commit()
    org = await world.client_org()
    await world.person(org, Role.PRIVACY_CONTACT)
    admin = await login_as(await world.person(org, Role.ADMIN))
    await send(db, subprocessor_change(), [org], include_public=True)

    for url in (f"/orgs/{org.id}/notices", f"/orgs/{org.id}/notices/settings"):
        assert "fan@example.org" not in (await admin.get(url)).text
