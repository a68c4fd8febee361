"""Single sign-on in a real browser: the login page, the organisation's identity provider (oidc-provider on
loopback), just-in-time membership, and a forged ``iss`` on the callback being refused."""

from __future__ import annotations

import base64
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from portal.accounts.models import LoginSession, Organisation, User
from portal.accounts.roles import Role
from portal.accounts.service import membership_of
from portal.accounts.sessions import SESSION_COOKIE
from portal.accounts.sso.models import IdentityProvider
from tests.conftest import World
from tests.sso_support import TestIdP, with_query
from tests.sso_support import oidc_idp as oidc_idp  # a fixture, used by name

pytestmark = [pytest.mark.browser, pytest.mark.idp]


@pytest.fixture
async def client_a(world: World) -> Organisation:
    return await world.client_org("Client A")


@pytest.fixture
async def provider(db: Any, client_a: Organisation, live_server: Any, oidc_idp: TestIdP) -> IdentityProvider:
    return await oidc_idp.configure(db, client_a, live_server.settings, domains="client-a.example",
                                    role=Role.PRIVACY_CONTACT)


async def log_in_at_the_idp(page: Page, login: str) -> None:
    """The identity provider's own pages: its login form, then its consent form."""
    await page.fill('input[name="login"]', login)
    await page.fill('input[name="password"]', "anything")
    await page.click('button[type="submit"]')
    await expect(page.locator('input[name="prompt"][value="consent"]')).to_have_count(1)
    await page.click('button[type="submit"]')


async def test_a_new_person_signs_in_with_their_organisations_idp(page, live_server, provider, client_a, oidc_idp,
                                                                  db):
    await page.goto(f"{live_server.url}/login")
    await page.fill('input[name="email"]', "alice@client-a.example")
    await page.click('button:has-text("Log in")')

    await page.wait_for_url(re.compile(re.escape(oidc_idp.issuer) + r"/interaction/"))
    await expect(page.locator('input[name="login"]')).to_have_value("alice@client-a.example")  # the login hint
    await log_in_at_the_idp(page, "alice")

    await page.wait_for_url(f"{live_server.url}/")
    await expect(page.locator(".account-menu")).to_contain_text("Alice Martin · Client A")
    user = await db.scalar(select(User).where(User.email == "alice@client-a.example"))
    membership = await membership_of(db, org=client_a, user_id=user.id)
    assert membership is not None
    assert membership.roles == {Role.PRIVACY_CONTACT}
    login = await db.scalar(select(LoginSession).where(LoginSession.user_id == user.id))
    assert login.auth_method == "sso"


async def test_a_forged_iss_on_the_callback_is_refused(page, context, live_server, provider, oidc_idp, db):
    # The IdP answers with a redirect chain, which Playwright's page.route does not see; Chromium's Fetch domain
    # does, so it holds back the genuine answer before it reaches the portal.
    cdp = await context.new_cdp_session(page)
    callbacks: list[str] = []

    async def hold_back(event: dict[str, Any]) -> None:
        callbacks.append(event["request"]["url"])
        await cdp.send("Fetch.fulfillRequest", {
            "requestId": event["requestId"], "responseCode": 200,
            "responseHeaders": [{"name": "Content-Type", "value": "text/plain"}],
            "body": base64.b64encode(b"held back by the test").decode(),
        })

    cdp.on("Fetch.requestPaused", hold_back)
    await cdp.send("Fetch.enable", {"patterns": [{"urlPattern": f"{live_server.url}/sso/callback/*"}]})
    await page.goto(f"{live_server.url}/login")
    await page.fill('input[name="email"]', "alice@client-a.example")
    await page.click('button:has-text("Log in")')
    await page.wait_for_url(re.compile(re.escape(oidc_idp.issuer) + r"/interaction/"))
    await log_in_at_the_idp(page, "alice")
    await expect(page.locator("body")).to_contain_text("held back by the test")
    await cdp.send("Fetch.disable")
    await cdp.detach()
    [genuine] = callbacks
    assert parse_qs(urlsplit(genuine).query)["iss"] == [oidc_idp.issuer]

    response = await page.goto(with_query(genuine, iss="https://attacker.example"))

    assert response is not None
    assert response.status == 400
    await expect(page.locator("h1")).to_have_text("Single sign-on did not work")
    await expect(page.locator("[role=alert]")).to_contain_text("different identity provider")
    await expect(page.locator('a[href="/login"]')).to_be_visible()
    assert SESSION_COOKIE not in {c["name"] for c in await context.cookies()}
    assert await db.scalar(select(User).where(User.email == "alice@client-a.example")) is None
