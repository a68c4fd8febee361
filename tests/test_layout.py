"""The page frame: the vendor's name, navigation by permission, empty states."""

import dataclasses

import httpx

from portal.accounts.roles import Role
from portal.app import create_app
from portal.notifications.mail import Mailer


async def test_the_header_names_the_vendor_organisation_when_no_name_is_configured(settings, engine, world, db):
    unnamed = dataclasses.replace(settings, vendor_name="")
    app = create_app(unnamed, engine=engine, mailer=Mailer.from_settings(unnamed))
    await world.vendor()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        page = await c.get("/login")
    assert '<a class="brand" href="/">Lumen AI GmbH</a>' in page.text


async def test_navigation_shows_only_what_the_member_may_use(world, login_as):
    owner = await login_as(await world.person(await world.vendor(), Role.OWNER))
    assert "Add your first client" in (await owner.get("/")).text  # the empty state says what to do next
    org = await world.client_org()
    admin = await login_as(await world.person(org, Role.ADMIN))
    assert "Invite your colleagues" in (await admin.get("/")).text  # alone in the organisation
    member = await login_as(await world.person(org, Role.MEMBER))

    admin_nav, member_nav, owner_nav = [(await c.get("/")).text for c in (admin, member, owner)]

    assert 'href="/audit"' in admin_nav and 'href="/settings/tokens"' in admin_nav
    assert 'href="/clients"' not in admin_nav
    assert 'href="/audit"' not in member_nav and 'href="/settings/sso"' not in member_nav
    assert 'href="/clients"' in owner_nav
    assert "1 client organisation." in owner_nav
