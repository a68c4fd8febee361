"""The webhook journey in a real browser: a client admin connects a receiver, keeps the secret shown once, sends a
test event, and sees it delivered (verified by the reference library on the receiving side)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import expect

from portal.accounts.roles import Role
from portal.settings import Settings
from tests.browser.conftest import browser as browser  # fixtures, used by name
from tests.browser.conftest import context as context
from tests.browser.conftest import live_server as live_server
from tests.browser.conftest import page as page
from tests.conftest import PASSWORD, SMTPSink, free_port, make_settings
from tests.notifications.webhook_support import deliver_due
from tests.notifications.webhook_support import receiver as receiver

pytestmark = pytest.mark.browser


@pytest.fixture
def live_settings(database_url: str, tmp_path: Path, smtp_sink: SMTPSink) -> Settings:
    """The live portal, allowed to call the receiver on 127.0.0.1."""
    return make_settings(database_url, tmp_path, base_url=f"http://127.0.0.1:{free_port()}", smtp_url=smtp_sink.url,
                         webhook_allow_private=True)


async def test_an_admin_connects_a_receiver_and_sends_a_test_event(live_server, page, world, engine, receiver):
    base = live_server.url
    acme = await world.client_org("Acme Logistics")
    await world.person(acme, Role.ADMIN, email="ada@acme.example", name="Ada Admin")

    await page.goto(f"{base}/login")
    await page.get_by_label("Work email address").fill("ada@acme.example")
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Acme Logistics")).to_be_visible()

    await page.goto(f"{base}/settings/webhooks")
    await expect(page.get_by_text("No webhook endpoints yet")).to_be_visible()
    form = page.get_by_role("form", name="Add an endpoint")
    await form.get_by_label("URL").fill(receiver.url)
    await form.get_by_label("Description").fill("SIEM intake")
    await form.get_by_label("Personal-data breach notices").check()
    await form.get_by_role("button", name="Add endpoint").click()

    await expect(page.get_by_text("It is shown only this once")).to_be_visible()
    secret = (await page.locator("#signing-secret").inner_text()).strip()
    assert secret.startswith("whsec_")
    receiver.secrets = [secret]
    await page.get_by_role("link", name="Done, back to the endpoint").click()
    await expect(page.get_by_text("Nothing was sent to this endpoint yet")).to_be_visible()
    assert secret not in await page.content()

    await page.get_by_role("button", name="Send test event").click()
    await expect(page.get_by_text("Test event queued")).to_be_visible()
    await deliver_due(engine, live_server.settings)
    await page.reload()

    [request] = receiver.requests
    assert request.verified_with == [0]
    deliveries = page.get_by_role("table", name="Latest deliveries")
    await expect(deliveries.get_by_text("Webhook test event")).to_be_visible()
    await expect(deliveries.get_by_text("HTTP 204")).to_be_visible()
    await expect(deliveries.get_by_text(request.webhook_id)).to_be_visible()
