"""Who receives what: fan-out over many organisations, members' own subscriptions, the settings page and its API."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from portal.accounts.roles import Role
from portal.audit.models import AuditEvent
from portal.notifications.models import Channel, Notice, Subscription
from tests.api.conftest import bearer, check_schema
from tests.api.conftest import issue_token as issue_token  # fixtures, used by name
from tests.api.conftest import machine as machine
from tests.conftest import post_form
from tests.notifications.recipients_support import (
    breach,
    deliver_due,
    deliveries_of,
    endpoint,
    send,
    subprocessor_change,
)

N_ORGS = 5


async def _audit_count(db) -> int:
    return int(await db.scalar(select(func.count()).select_from(AuditEvent)))


async def _client_with_contacts(world, db, n: int):
    org = await world.client_org(f"Client {n} Holdings")
    people = {
        "privacy": await world.person(org, Role.PRIVACY_CONTACT, email=f"privacy{n}@client{n}.example"),
        "security": await world.person(org, Role.SECURITY_CONTACT, email=f"security{n}@client{n}.example"),
        "subscriber": await world.person(org, Role.MEMBER, email=f"follower{n}@client{n}.example"),
        "signatory": await world.person(org, Role.SIGNATORY, email=f"signatory{n}@client{n}.example"),
    }
    # Two reasons for one person (role and subscription), and a plain member who only subscribed.
    for member in (people["privacy"], people["subscriber"]):
        db.add(Subscription(id=uuid.uuid4(), org_id=org.id, user_id=member.user_id, topic="subprocessors"))
    await db.commit()
    hooks = {"subprocessors": await endpoint(db, org, ["subprocessors"]),
             "breaches": await endpoint(db, org, ["breaches"])}
    return org, people, hooks


async def test_one_notice_reaches_exactly_each_organisations_own_recipients(world, db, engine, settings, mail):
    clients = [await _client_with_contacts(world, db, n) for n in range(N_ORGS)]

    notices = await send(db, subprocessor_change(), [org for org, _, _ in clients], include_public=True)

    assert len(notices) == N_ORGS + 1  # one per organisation, and one to the (here: no) public subscribers
    assert await deliveries_of(db, notices[-1]) == []
    for n, ((org, _people, hooks), notice) in enumerate(zip(clients, notices[:N_ORGS], strict=True)):
        assert notice.org_id == org.id
        deliveries = await deliveries_of(db, notice)
        assert {d.org_id for d in deliveries} == {org.id}
        emails = {d.email: d.reason for d in deliveries if d.channel is Channel.EMAIL}
        assert emails == {f"follower{n}@client{n}.example": "subscribed to subprocessors",
                          f"privacy{n}@client{n}.example": "role: privacy contact; subscribed to subprocessors"}
        assert [d.endpoint_id for d in deliveries if d.channel is Channel.WEBHOOK] == [hooks["subprocessors"].id]

    await deliver_due(engine, settings)

    assert len(mail.messages) == 2 * N_ORGS
    for n in range(N_ORGS):
        for address in (f"privacy{n}@client{n}.example", f"follower{n}@client{n}.example"):
            [message] = mail.to(address)  # one email per person, even with two reasons
            text = mail.text_of(message)
            assert f"Client {n} Holdings" in text
            assert not [other for other in range(N_ORGS) if other != n and f"Client {other} Holdings" in text]
        assert mail.to(f"security{n}@client{n}.example") == []
        assert mail.to(f"signatory{n}@client{n}.example") == []


async def test_webhooks_receive_only_the_topics_they_listen_to(world, db):
    clients = [await _client_with_contacts(world, db, n) for n in range(2)]

    notices = await send(db, breach(), [org for org, _, _ in clients])

    for n, ((_org, _people, hooks), notice) in enumerate(zip(clients, notices, strict=True)):
        deliveries = await deliveries_of(db, notice)
        assert [d.endpoint_id for d in deliveries if d.channel is Channel.WEBHOOK] == [hooks["breaches"].id]
        assert [d.email for d in deliveries if d.channel is Channel.EMAIL] == [f"security{n}@client{n}.example"]


async def test_a_member_subscribes_to_a_topic_and_then_receives_it(world, db, login_as):
    org = await world.client_org()
    member = await world.person(org, Role.MEMBER, email="mo@acme.example", name="Mo Member")
    await world.person(org, Role.SECURITY_CONTACT, email="sec@acme.example")
    mo = await login_as(member)

    response = await post_form(mo, f"/orgs/{org.id}/notices/subscriptions", {"topics": ["breaches", "dpa"]})

    assert response.status_code == 303
    page = await mo.get(response.headers["location"])
    assert "Your subscriptions were saved." in page.text
    assert 'value="breaches" checked' in page.text and 'value="dpa" checked' in page.text
    assert "subscribed to breaches" in page.text
    [notice] = await send(db, breach(), [org])
    deliveries = {d.email: d.reason for d in await deliveries_of(db, notice)}
    assert deliveries == {"mo@acme.example": "subscribed to breaches", "sec@acme.example": "role: security contact"}

    before = await _audit_count(db)
    response = await post_form(mo, f"/orgs/{org.id}/notices/subscriptions", {})
    assert response.status_code == 303
    assert await db.scalar(select(func.count()).select_from(Subscription)) == 0
    assert await _audit_count(db) == before + 1
    [notice] = await send(db, breach(), [org])
    assert [d.email for d in await deliveries_of(db, notice)] == ["sec@acme.example"]


async def test_an_unknown_topic_is_refused_and_changes_nothing(world, db, login_as):
    org = await world.client_org()
    member = await login_as(await world.person(org, Role.MEMBER))
    await post_form(member, f"/orgs/{org.id}/notices/subscriptions", {"topics": ["dpa"]})
    before = await _audit_count(db)

    response = await post_form(member, f"/orgs/{org.id}/notices/subscriptions", {"topics": ["dpa", "gossip"]})

    assert response.status_code == 400
    assert "Unknown topic" in response.text
    assert 'value="dpa" checked' in response.text  # the submitted choice is kept
    assert await db.scalar(select(func.count()).select_from(Subscription)) == 1
    assert await _audit_count(db) == before


async def test_the_subscription_form_needs_its_csrf_token(world, db, login_as):
    org = await world.client_org()
    member = await login_as(await world.person(org, Role.MEMBER))

    response = await member.post(f"/orgs/{org.id}/notices/subscriptions", data={"topics": "dpa"})

    assert response.status_code == 403
    assert await db.scalar(select(func.count()).select_from(Subscription)) == 0


async def test_settings_warn_when_designated_contacts_are_missing(world, login_as):
    org = await world.client_org("Contactless Ltd")
    admin = await login_as(await world.person(org, Role.ADMIN))

    page = await admin.get(f"/orgs/{org.id}/notices/settings")

    assert page.status_code == 200
    assert "No privacy contact." in page.text and "No security contact." in page.text
    assert f'href="/orgs/{org.id}/members"' in page.text
    await world.person(org, Role.PRIVACY_CONTACT, Role.SECURITY_CONTACT, email="pat@contactless.example")
    page = await admin.get(f"/orgs/{org.id}/notices/settings")
    assert "No privacy contact." not in page.text and "No security contact." not in page.text
    assert "pat@contactless.example" in page.text


async def test_vendor_staff_read_a_clients_settings_but_cannot_subscribe_there(world, db, login_as):
    org = await world.client_org()
    await world.person(org, Role.PRIVACY_CONTACT, email="pia@acme.example")
    staff = await login_as(await world.person(await world.vendor(), Role.LEGAL))

    page = await staff.get(f"/orgs/{org.id}/notices/settings")
    response = await post_form(staff, f"/orgs/{org.id}/notices/subscriptions", {"topics": "dpa"})

    assert page.status_code == 200 and "pia@acme.example" in page.text
    assert "Save my subscriptions" not in page.text
    assert response.status_code == 404
    assert await db.scalar(select(func.count()).select_from(Subscription)) == 0


async def test_another_organisations_settings_answer_404(world, login_as):
    victim = await world.client_org("Victim Secret Bank")
    await world.person(victim, Role.PRIVACY_CONTACT, email="hidden@victim.example")
    intruder = await login_as(await world.person(await world.client_org("Intruder"), Role.ADMIN))

    for response in (await intruder.get(f"/orgs/{victim.id}/notices/settings"),
                     await post_form(intruder, f"/orgs/{victim.id}/notices/subscriptions", {"topics": "dpa"})):
        assert response.status_code == 404
        assert "hidden@victim.example" not in response.text and "Victim Secret Bank" not in response.text


async def test_the_api_lists_recipients_per_notice_type(world, db, machine, issue_token):
    org = await world.client_org()
    await world.person(org, Role.PRIVACY_CONTACT, email="pia@acme.example", name="Pia Privacy")
    hook = await endpoint(db, org, ["breaches"])
    _token, plaintext = await issue_token(org, "notices:read")

    response = await machine.get(f"/api/v1/organisations/{org.id}/notice-recipients", headers=bearer(plaintext))

    assert response.status_code == 200
    document = (await machine.get("/api/v1/openapi.json")).json()
    operation = document["paths"]["/api/v1/organisations/{org_id}/notice-recipients"]["get"]
    check_schema(document, operation["responses"]["200"]["content"]["application/json"]["schema"],
                 response.json())
    body = response.json()
    by_type = {item["type"]: item for item in body["items"]}
    assert by_type["subprocessor_change"]["recipients"] == [
        {"channel": "email", "name": "Pia Privacy", "email": "pia@acme.example", "endpoint_id": None,
         "reason": "role: privacy contact"}]
    assert by_type["breach_notice"]["recipients"] == [
        {"channel": "webhook", "name": None, "email": None, "endpoint_id": str(hook.id),
         "reason": "webhook for breaches"}]
    assert body["missing_contacts"] == [{"role": "security_contact", "needed_for": "personal-data breach notices"}]
    assert "subscription_confirmation" not in by_type


async def test_the_recipients_api_needs_its_scope_and_hides_other_organisations(world, machine, issue_token):
    org = await world.client_org()
    other = await world.client_org("Globex Secretive Corp")
    await world.person(other, Role.PRIVACY_CONTACT, email="gina@globex.example")
    _token, without_scope = await issue_token(org, "org:read")
    _token, reader = await issue_token(org, "notices:read")

    refused = await machine.get(f"/api/v1/organisations/{org.id}/notice-recipients", headers=bearer(without_scope))
    hidden = await machine.get(f"/api/v1/organisations/{other.id}/notice-recipients", headers=bearer(reader))

    assert refused.status_code == 403
    assert hidden.status_code == 404
    assert "gina@globex.example" not in hidden.text and "Globex" not in hidden.text


async def test_notices_are_written_per_organisation(world, db):
    clients = [await world.client_org(f"Org {n}") for n in range(3)]
    await send(db, subprocessor_change(), clients)
    assert await db.scalar(select(func.count()).select_from(Notice)) == 3
