"""Clients manage their notice routing through the API: designated contacts (``contacts:write``, contact roles
only) and the token creator's own topic subscriptions (``notices:write``); admins stand in when nobody holds the
role a notice needs."""

from __future__ import annotations

from sqlalchemy import select

from portal.accounts.models import Membership
from portal.accounts.roles import Role
from portal.audit.models import AuditEvent
from portal.notifications.models import Subscription
from tests.api.conftest import bearer, tenant_state
from tests.notifications.recipients_support import breach, deliveries_of, send, subprocessor_change

API = "/api/v1"


async def _roles(db, membership: Membership) -> list[str]:
    fresh = (await db.execute(select(Membership).where(Membership.id == membership.id)
                              .execution_options(populate_existing=True))).scalar_one()
    await db.refresh(fresh, ["role_rows"])
    return sorted(r.role.value for r in fresh.role_rows)


def _contact_url(org, membership) -> str:
    return f"{API}/organisations/{org.id}/members/{membership.id}/contact-roles"


# ---------------------------------------------------------------- contact roles

async def test_a_client_token_designates_a_privacy_contact_and_keeps_other_roles(world, db, machine, issue_token):
    acme = await world.client_org("Acme Logistics")
    await world.person(acme, Role.ADMIN, email="ada@acme.example")
    sig = await world.person(acme, Role.SIGNATORY, email="sig@acme.example", name="Sid Signer")
    _token, plaintext = await issue_token(acme, "contacts:write")

    response = await machine.put(_contact_url(acme, sig), headers=bearer(plaintext),
                                 json={"roles": ["privacy_contact", "security_contact"]})
    assert response.status_code == 200, response.text
    assert response.json()["roles"] == ["privacy_contact", "security_contact", "signatory"]
    assert await _roles(db, sig) == ["privacy_contact", "security_contact", "signatory"]
    event = (await db.execute(select(AuditEvent).where(AuditEvent.tag == "membership:roles_changed"))).scalar_one()
    assert event.actor.startswith("token:")
    assert event.data["after"] == ["privacy_contact", "security_contact", "signatory"]

    response = await machine.put(_contact_url(acme, sig), headers=bearer(plaintext), json={"roles": []})
    assert response.status_code == 200
    assert await _roles(db, sig) == ["signatory"]


async def test_a_member_left_without_any_role_stays_a_member(world, db, machine, issue_token):
    acme = await world.client_org("Acme Logistics")
    await world.person(acme, Role.ADMIN, email="ada@acme.example")
    pia = await world.person(acme, Role.PRIVACY_CONTACT, email="pia@acme.example")
    _token, plaintext = await issue_token(acme, "contacts:write")
    response = await machine.put(_contact_url(acme, pia), headers=bearer(plaintext), json={"roles": []})
    assert response.status_code == 200
    assert await _roles(db, pia) == ["member"]


async def test_a_token_cannot_grant_authority_roles(world, db, engine, machine, issue_token):
    acme = await world.client_org("Acme Logistics")
    await world.person(acme, Role.ADMIN, email="ada@acme.example")
    mo = await world.person(acme, Role.MEMBER, email="mo@acme.example")
    _token, plaintext = await issue_token(acme)  # every scope
    before = await tenant_state(engine, acme)
    for roles in (["admin"], ["privacy_contact", "signatory"], ["owner"], ["nonsense"], "privacy_contact", [7]):
        response = await machine.put(_contact_url(acme, mo), headers=bearer(plaintext), json={"roles": roles})
        assert response.status_code == 400, (roles, response.text)
        assert response.json()["error"]["code"] == "invalid_input"
        assert "roles" in response.json()["error"]["fields"]
    assert await tenant_state(engine, acme) == before
    assert await _roles(db, mo) == ["member"]


async def test_contact_roles_need_the_contacts_scope(world, engine, machine, issue_token):
    acme = await world.client_org("Acme Logistics")
    await world.person(acme, Role.ADMIN, email="ada@acme.example")
    mo = await world.person(acme, Role.MEMBER, email="mo@acme.example")
    _token, plaintext = await issue_token(acme, "org:read", "notices:write")
    before = await tenant_state(engine, acme)
    response = await machine.put(_contact_url(acme, mo), headers=bearer(plaintext),
                                 json={"roles": ["privacy_contact"]})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert await tenant_state(engine, acme) == before


async def test_a_vendor_token_cannot_set_a_clients_contacts(world, engine, machine, issue_token):
    vendor = await world.vendor()
    await world.person(vendor, Role.OWNER, email="owner@lumen.example")
    acme = await world.client_org("Acme Logistics")
    mo = await world.person(acme, Role.MEMBER, email="mo@acme.example")
    _token, plaintext = await issue_token(vendor)
    before = await tenant_state(engine, acme)
    response = await machine.put(_contact_url(acme, mo), headers=bearer(plaintext),
                                 json={"roles": ["privacy_contact"]})
    assert response.status_code == 404
    assert await tenant_state(engine, acme) == before


async def test_a_designated_contact_receives_the_next_notice(world, db, machine, issue_token):
    acme = await world.client_org("Acme Logistics")
    await world.person(acme, Role.ADMIN, email="ada@acme.example")
    mo = await world.person(acme, Role.MEMBER, email="mo@acme.example")
    _token, plaintext = await issue_token(acme, "contacts:write")
    await machine.put(_contact_url(acme, mo), headers=bearer(plaintext), json={"roles": ["security_contact"]})
    [notice] = await send(db, breach(), [acme])
    assert [(d.email, d.reason) for d in await deliveries_of(db, notice)] == [
        ("mo@acme.example", "role: security contact")]


# ---------------------------------------------------------------- the creator's own subscriptions

async def test_a_token_chooses_its_creators_topics_only(world, db, machine, issue_token):
    acme = await world.client_org("Acme Logistics")
    ada = await world.person(acme, Role.ADMIN, email="ada@acme.example")
    other = await world.person(acme, Role.MEMBER, email="mo@acme.example")
    _token, plaintext = await issue_token(acme, "notices:read", "notices:write")

    response = await machine.put(f"{API}/me/subscriptions", headers=bearer(plaintext),
                                 json={"topics": ["breaches", "subprocessors"]})
    assert response.status_code == 200, response.text
    assert response.json() == {"organisation_id": str(acme.id), "topics": ["subprocessors", "breaches"]}
    rows = (await db.execute(select(Subscription.user_id, Subscription.topic))).all()
    assert {(user_id, str(topic)) for user_id, topic in rows} == {
        (ada.user_id, "subprocessors"), (ada.user_id, "breaches")}
    assert other.user_id not in {user_id for user_id, _ in rows}
    read = await machine.get(f"{API}/me/subscriptions", headers=bearer(plaintext))
    assert read.json()["topics"] == ["subprocessors", "breaches"]

    [notice] = await send(db, subprocessor_change(), [acme])
    assert [(d.email, d.reason) for d in await deliveries_of(db, notice)] == [
        ("ada@acme.example", "role: admin (no privacy contact designated); subscribed to subprocessors")]


async def test_an_unknown_topic_is_refused_and_changes_nothing(world, db, machine, issue_token):
    acme = await world.client_org("Acme Logistics")
    await world.person(acme, Role.ADMIN, email="ada@acme.example")
    _token, plaintext = await issue_token(acme, "notices:write")
    response = await machine.put(f"{API}/me/subscriptions", headers=bearer(plaintext),
                                 json={"topics": ["breaches", "gossip"]})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"topics": "Unknown topic."}
    assert (await db.execute(select(Subscription))).first() is None


async def test_a_token_without_a_creator_in_the_organisation_has_no_subscriptions(world, db, machine,
                                                                                   issue_token):
    acme = await world.client_org("Acme Logistics")
    _token, no_creator = await issue_token(acme, "notices:read", "notices:write")  # no admin yet: no creator
    response = await machine.put(f"{API}/me/subscriptions", headers=bearer(no_creator), json={"topics": []})
    assert response.status_code == 404
    assert "no creator" in response.json()["error"]["message"]

    ada = await world.person(acme, Role.ADMIN, email="ada@acme.example")
    await world.person(acme, Role.ADMIN, email="bo@acme.example")
    _token, plaintext = await issue_token(acme, "notices:read", "notices:write")
    await db.delete(await db.get(Membership, ada.id))
    await db.commit()
    response = await machine.get(f"{API}/me/subscriptions", headers=bearer(plaintext))
    assert response.status_code == 404
    assert "no longer a member" in response.json()["error"]["message"]


# ---------------------------------------------------------------- nobody in the role: the admins stand in

async def test_admins_receive_contractual_notices_when_no_contact_is_designated(world, db):
    acme = await world.client_org("Acme Logistics")
    globex = await world.client_org("Globex")
    await world.person(acme, Role.ADMIN, email="ada@acme.example")
    await world.person(globex, Role.ADMIN, email="gil@globex.example")
    await world.person(globex, Role.PRIVACY_CONTACT, email="pia@globex.example")
    acme_notice, globex_notice = await send(db, subprocessor_change(), [acme, globex])
    assert [(d.email, d.reason) for d in await deliveries_of(db, acme_notice)] == [
        ("ada@acme.example", "role: admin (no privacy contact designated)")]
    assert [d.email for d in await deliveries_of(db, globex_notice)] == ["pia@globex.example"]
