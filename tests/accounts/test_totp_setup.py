"""Setting up and turning off TOTP; vendor staff must have it when PORTAL_REQUIRE_VENDOR_MFA is on."""

import dataclasses
import re

import httpx
import pyotp
from sqlalchemy import select

from portal.accounts.models import User
from portal.accounts.roles import Role
from portal.app import create_app
from portal.notifications.mail import Mailer
from tests.conftest import post_form


async def _setup_fields(client):
    page = await client.get("/account/totp")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    setup = re.search(r'name="setup" value="([^"]+)"', page.text).group(1)
    return secret, setup


async def test_totp_setup_needs_a_correct_code_and_can_be_turned_off(world, login_as, db):
    org = await world.client_org()
    member = await world.person(org)
    client = await login_as(member)
    secret, setup = await _setup_fields(client)

    wrong = await post_form(client, "/account/totp", {"setup": setup, "code": "123456"})
    assert wrong.status_code == 400 and "not right" in wrong.text
    user = await db.get(User, member.user_id)
    await db.refresh(user)
    assert not user.has_totp

    right = await post_form(client, "/account/totp", {"setup": setup, "code": pyotp.TOTP(secret).now()})
    assert right.status_code == 303
    await db.refresh(user)
    assert user.has_totp and secret not in (user.totp_secret or "")  # stored encrypted

    off = await post_form(client, "/account/totp/disable", {"code": "000000"})
    assert off.status_code == 400
    await db.refresh(user)
    assert user.has_totp


async def test_vendor_owner_without_totp_is_sent_to_set_it_up_when_required(world, settings, engine, db, mail):
    strict = dataclasses.replace(settings, require_vendor_mfa=True)
    app = create_app(strict, engine=engine, mailer=Mailer.from_settings(strict))
    owner = await world.person(await world.vendor(), Role.OWNER)
    viewer = await world.person(await world.vendor(), Role.VIEWER)
    user = await db.get(User, owner.user_id)
    org = await world.vendor()
    from portal.accounts.sessions import SESSION_COOKIE

    owner_token = await world.login_cookie(user, org)
    viewer_token = await world.login_cookie(await db.get(User, viewer.user_id), org)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                 cookies={SESSION_COOKIE: owner_token}) as owner_client, \
            httpx.AsyncClient(transport=transport, base_url="http://testserver",
                              cookies={SESSION_COOKIE: viewer_token}) as viewer_client:
        blocked = await owner_client.get("/clients")
        assert blocked.status_code == 303 and blocked.headers["location"] == "/account/totp"
        assert (await owner_client.get("/account/totp")).status_code == 200
        assert (await viewer_client.get("/clients")).status_code == 200  # viewers are not required
        secret, setup = await _setup_fields(owner_client)
        await post_form(owner_client, "/account/totp", {"setup": setup, "code": pyotp.TOTP(secret).now()})
        assert (await owner_client.get("/clients")).status_code == 200
    assert (await db.execute(select(User.totp_enabled_at).where(User.id == owner.user_id))).scalar_one()
