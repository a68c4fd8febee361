"""Vendor creates a client and invites its admin; the admin accepts and invites colleagues; links are single use."""

import datetime as dt

from sqlalchemy import func, select, update

from portal.accounts.models import Invitation, Membership, Organisation, User
from portal.accounts.roles import Role
from tests.conftest import PASSWORD, post_form


async def test_vendor_creates_a_client_and_its_admin_joins_by_email_link(world, login_as, client, mail, db,
                                                                          settings):
    owner = await world.person(await world.vendor(), Role.OWNER)
    vendor = await login_as(owner)

    created = await post_form(vendor, "/clients", {"name": "Acme Logistics", "admin_email": "Ada@Acme.example",
                                                   "admin_name": "Ada Admin"})
    assert created.status_code == 303
    org = (await db.execute(select(Organisation).where(Organisation.name == "Acme Logistics"))).scalar_one()
    assert created.headers["location"] == f"/orgs/{org.id}/members"

    message = mail.last_to("ada@acme.example")
    assert "Acme Logistics" in message["Subject"]
    kept = [p.read_text() for p in (settings.mail_dir).glob("*.eml")]  # every mail is also kept as a file
    assert any("ada@acme.example" in text for text in kept)
    link = mail.link_in(message, "/invitations/")
    page = await client.get(link)
    assert page.status_code == 200 and "Join Acme Logistics" in page.text

    accepted = await post_form(client, link, {"name": "Ada Admin", "password": PASSWORD,
                                              "password_confirm": PASSWORD})
    assert accepted.status_code == 303
    logged_in = await post_form(client, "/login", {"email": "ada@acme.example", "password": PASSWORD})
    assert logged_in.status_code == 303
    members_page = await client.get(f"/orgs/{org.id}/members")
    assert "Ada Admin" in members_page.text

    invited = await post_form(client, f"/orgs/{org.id}/invitations",
                              {"email": "sig@acme.example", "roles": ["signatory", "privacy_contact"]})
    assert invited.status_code == 303
    assert mail.last_to("sig@acme.example")
    invitation = (await db.execute(select(Invitation).where(Invitation.email == "sig@acme.example"))).scalar_one()
    assert invitation.roles == ["privacy_contact", "signatory"]


async def test_an_invitation_link_works_once(world, login_as, client, mail, db):
    org = await world.client_org()
    admin = await login_as(await world.person(org, Role.ADMIN))
    await post_form(admin, f"/orgs/{org.id}/invitations", {"email": "bo@acme.example", "roles": "member"})
    link = mail.link_in(mail.last_to("bo@acme.example"), "/invitations/")
    form = {"name": "Bo", "password": PASSWORD, "password_confirm": PASSWORD}
    assert (await post_form(client, link, form)).status_code == 303

    again = await post_form(client, link, form)

    assert again.status_code == 400
    assert "not valid" in again.text
    assert (await db.execute(select(func.count()).select_from(User)
                             .where(User.email == "bo@acme.example"))).scalar_one() == 1


async def test_an_expired_invitation_is_refused_and_creates_nothing(world, login_as, client, mail, db):
    org = await world.client_org()
    admin = await login_as(await world.person(org, Role.ADMIN))
    await post_form(admin, f"/orgs/{org.id}/invitations", {"email": "bo@acme.example", "roles": "member"})
    link = mail.link_in(mail.last_to("bo@acme.example"), "/invitations/")
    await db.execute(update(Invitation).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    await world.commit()

    page = await client.get(link)
    response = await post_form(client, link, {"name": "Bo", "password": PASSWORD, "password_confirm": PASSWORD})

    assert page.status_code == 400 and "expired" in page.text
    assert response.status_code == 400 and "expired" in response.text
    assert await db.scalar(select(func.count()).select_from(User).where(User.email == "bo@acme.example")) == 0


async def test_a_resent_invitation_replaces_the_old_link(world, login_as, client, mail, db):
    org = await world.client_org()
    admin = await login_as(await world.person(org, Role.ADMIN))
    await post_form(admin, f"/orgs/{org.id}/invitations", {"email": "bo@acme.example", "roles": "member"})
    old_link = mail.link_in(mail.last_to("bo@acme.example"), "/invitations/")
    invitation = (await db.execute(select(Invitation))).scalar_one()

    await post_form(admin, f"/orgs/{org.id}/invitations/{invitation.id}/resend")

    new_link = mail.link_in(mail.last_to("bo@acme.example"), "/invitations/")
    assert new_link != old_link
    assert (await client.get(old_link)).status_code == 400
    assert (await client.get(new_link)).status_code == 200


async def test_weak_or_mismatched_password_is_refused_and_the_link_still_works(world, login_as, client, mail, db):
    org = await world.client_org()
    admin = await login_as(await world.person(org, Role.ADMIN))
    await post_form(admin, f"/orgs/{org.id}/invitations", {"email": "bo@acme.example", "roles": "member"})
    link = mail.link_in(mail.last_to("bo@acme.example"), "/invitations/")

    short = await post_form(client, link, {"name": "Bo", "password": "short", "password_confirm": "short"})
    mismatch = await post_form(client, link, {"name": "Bo", "password": PASSWORD, "password_confirm": PASSWORD + "x"})
    guessable = await post_form(client, link, {"name": "Bo", "password": "bo@acme.example1",
                                               "password_confirm": "bo@acme.example1"})

    assert short.status_code == 400 and "at least 12 characters" in short.text
    assert mismatch.status_code == 400 and "do not match" in mismatch.text
    assert guessable.status_code == 400 and "stronger password" in guessable.text
    assert 'value="Bo"' in short.text
    assert await db.scalar(select(func.count()).select_from(User).where(User.email == "bo@acme.example")) == 0
    assert (await client.get(link)).status_code == 200


async def test_inviting_a_member_or_an_already_invited_address_is_refused(world, login_as, mail, db):
    org = await world.client_org()
    admin_member = await world.person(org, Role.ADMIN, email="ada@acme.example")
    admin = await login_as(admin_member)
    await post_form(admin, f"/orgs/{org.id}/invitations", {"email": "bo@acme.example", "roles": "member"})

    twice = await post_form(admin, f"/orgs/{org.id}/invitations", {"email": "BO@acme.example", "roles": "member"})
    member = await post_form(admin, f"/orgs/{org.id}/invitations", {"email": "ada@acme.example", "roles": "member"})
    bad_role = await post_form(admin, f"/orgs/{org.id}/invitations", {"email": "cy@acme.example", "roles": "owner"})
    no_email = await post_form(admin, f"/orgs/{org.id}/invitations", {"email": "not-an-email", "roles": "member"})

    assert twice.status_code == 400 and "already has an open invitation" in twice.text
    assert member.status_code == 400 and "already a member" in member.text
    assert bad_role.status_code == 400 and "does not exist in a client organisation" in bad_role.text
    assert no_email.status_code == 400 and "valid email" in no_email.text
    assert await db.scalar(select(func.count()).select_from(Invitation)) == 1
    assert len(mail.to("bo@acme.example")) == 1


async def test_an_existing_user_joins_a_second_organisation_with_their_own_password(world, login_as, client, mail,
                                                                                    db):
    first = await world.client_org("First Co")
    second = await world.client_org("Second Co")
    await world.person(first, Role.ADMIN, email="ada@first.example")
    admin = await login_as(await world.person(second, Role.ADMIN))
    await post_form(admin, f"/orgs/{second.id}/invitations", {"email": "ada@first.example", "roles": "signatory"})
    link = mail.link_in(mail.last_to("ada@first.example"), "/invitations/")

    wrong = await post_form(client, link, {"password": "somebody else's guess"})
    right = await post_form(client, link, {"password": PASSWORD})

    assert wrong.status_code == 400 and "already exists" in wrong.text
    assert right.status_code == 303
    assert await db.scalar(select(func.count()).select_from(Membership)
                           .join(User).where(User.email == "ada@first.example")) == 2


async def test_client_admin_cannot_create_client_organisations(world, login_as, db):
    org = await world.client_org()
    admin = await login_as(await world.person(org, Role.ADMIN))
    assert (await admin.get("/clients")).status_code in {403, 404}
    response = await post_form(admin, "/clients", {"name": "Sneaky", "admin_email": "x@sneaky.example"})
    assert response.status_code == 403
    assert await db.scalar(select(func.count()).select_from(Organisation).where(Organisation.name == "Sneaky")) == 0


async def test_duplicate_client_name_is_refused_and_nothing_is_sent(world, login_as, mail, db):
    await world.client_org("Acme Logistics")
    vendor = await login_as(await world.person(await world.vendor(), Role.LEGAL))

    response = await post_form(vendor, "/clients", {"name": "ACME logistics", "admin_email": "x@acme.example"})

    assert response.status_code == 400 and "already exists" in response.text
    assert 'value="ACME logistics"' in response.text
    assert mail.to("x@acme.example") == []
