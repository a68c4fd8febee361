"""Roles, removal and the rule that an organisation keeps someone who can manage it."""

from sqlalchemy import func, select

from portal.accounts.models import LoginSession, Membership
from portal.accounts.roles import Role
from portal.audit.models import AuditEvent
from tests.conftest import post_form


async def test_admin_changes_roles_and_the_change_is_audited(world, login_as, db):
    org = await world.client_org()
    admin = await login_as(await world.person(org, Role.ADMIN))
    colleague = await world.person(org, Role.MEMBER, name="Bo")

    response = await post_form(admin, f"/orgs/{org.id}/members/{colleague.id}/roles",
                               {"roles": ["signatory", "security_contact"]})

    assert response.status_code == 303
    page = await admin.get(f"/orgs/{org.id}/members")
    assert "Signatory" in page.text and "Security contact" in page.text
    event = (await db.execute(select(AuditEvent).where(AuditEvent.tag == "membership:roles_changed"))).scalar_one()
    assert event.data == {"after": ["security_contact", "signatory"], "before": ["member"],
                          "email": event.data["email"]}
    assert event.org_id == org.id


async def test_the_last_admin_keeps_the_role_and_cannot_be_removed(world, login_as, db):
    org = await world.client_org()
    only_admin = await world.person(org, Role.ADMIN)
    admin = await login_as(only_admin)

    demote = await post_form(admin, f"/orgs/{org.id}/members/{only_admin.id}/roles", {"roles": "member"})
    remove = await post_form(admin, f"/orgs/{org.id}/members/{only_admin.id}/remove")
    no_roles = await post_form(admin, f"/orgs/{org.id}/members/{only_admin.id}/roles", {})

    assert demote.status_code == 400 and "at least one admin" in demote.text
    assert remove.status_code == 400 and "last admin" in remove.text
    assert no_roles.status_code == 400 and "at least one role" in no_roles.text
    membership = (await db.execute(select(Membership))).scalar_one()
    await db.refresh(membership, ["role_rows"])
    assert membership.roles == {Role.ADMIN}


async def test_removing_a_member_ends_their_sessions(world, login_as, db):
    org = await world.client_org()
    admin = await login_as(await world.person(org, Role.ADMIN))
    colleague = await world.person(org, Role.MEMBER)
    colleague_client = await login_as(colleague)
    assert (await colleague_client.get("/")).status_code == 200

    response = await post_form(admin, f"/orgs/{org.id}/members/{colleague.id}/remove")

    assert response.status_code == 303
    assert (await colleague_client.get("/")).status_code == 303
    assert await db.scalar(select(func.count()).select_from(LoginSession)
                           .where(LoginSession.user_id == colleague.user_id, LoginSession.ended_at.is_(None))) == 0


async def test_members_without_manage_permission_see_people_but_cannot_change_them(world, login_as, db):
    org = await world.client_org()
    admin_member = await world.person(org, Role.ADMIN)
    member = await login_as(await world.person(org, Role.SIGNATORY))

    page = await member.get(f"/orgs/{org.id}/members")
    invite = await post_form(member, f"/orgs/{org.id}/invitations", {"email": "x@acme.example", "roles": "admin"})
    promote = await post_form(member, f"/orgs/{org.id}/members/{admin_member.id}/roles", {"roles": "member"})

    assert page.status_code == 200 and "Send invitation" not in page.text
    assert invite.status_code == 403
    assert promote.status_code == 403


async def test_vendor_legal_manages_a_clients_people_but_a_vendor_viewer_only_looks(world, login_as, mail):
    org = await world.client_org()
    legal = await login_as(await world.person(await world.vendor(), Role.LEGAL))
    viewer = await login_as(await world.person(await world.vendor(), Role.VIEWER))

    assert (await post_form(legal, f"/orgs/{org.id}/invitations",
                            {"email": "ada@acme.example", "roles": "admin"})).status_code == 303
    assert (await viewer.get(f"/orgs/{org.id}/members")).status_code == 200
    assert (await post_form(viewer, f"/orgs/{org.id}/invitations",
                            {"email": "bo@acme.example", "roles": "admin"})).status_code == 403
    assert mail.to("bo@acme.example") == []
