"""The sub-processor journey in a real browser: vendor legal adds a sub-processor and publishes; the client's
privacy contact gets the notice by email (and the client's webhook receiver gets it signed per Standard Webhooks),
follows the link, objects; legal resolves the objection; the client sees the result and is notified of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from portal.accounts.roles import Role
from portal.settings import Settings
from tests.browser.conftest import browser as browser  # fixtures, used by name
from tests.browser.conftest import context as context
from tests.browser.conftest import live_server as live_server
from tests.browser.conftest import page as page
from tests.conftest import PASSWORD, SMTPSink, free_port, make_settings
from tests.notifications.recipients_support import deliver_due
from tests.notifications.webhook_support import add_endpoint
from tests.notifications.webhook_support import receiver as receiver
from tests.subprocessors.support import agreement

pytestmark = pytest.mark.browser

NEW_ENTRY = {
    "name": "Vectorly", "legal_entity": "Vectorly Inc.", "address": "500 Howard Street, San Francisco, CA 94105, USA",
    "contact_name": "Morgan Lee", "contact_position": "Privacy counsel", "contact_email": "privacy@vectorly.example",
    "purpose": "Embedding search for document retrieval",
    "processing": "Stores embeddings of customer documents to answer similarity queries; no training on the data.",
    "data_categories": "Document embeddings", "locations": "US",
    "flow_down_reference": "Vectorly DPA 2025-10", "flow_down_date": "2025-10-01",
}


@pytest.fixture
def live_settings(database_url: str, tmp_path: Path, smtp_sink: SMTPSink) -> Settings:
    """The live portal, allowed to call the webhook receiver on 127.0.0.1."""
    return make_settings(database_url, tmp_path, base_url=f"http://127.0.0.1:{free_port()}", smtp_url=smtp_sink.url,
                         webhook_allow_private=True)


async def log_in(page: Page, base: str, email: str) -> None:
    await page.get_by_label("Work email address").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()


async def test_add_publish_object_resolve(live_server, page, browser: Browser, world, engine, mail, receiver):
    base = live_server.url
    vendor = await world.vendor()
    await world.person(vendor, Role.LEGAL, email="lea@lumen.example", name="Lea Legal")
    acme = await world.client_org("Acme Logistics")
    await world.person(acme, Role.ADMIN, email="ada@acme.example", name="Ada Admin")
    await world.person(acme, Role.PRIVACY_CONTACT, email="pia@acme.example", name="Pia Privacy")
    await agreement(world, acme, days=30)
    _endpoint, secret = await add_endpoint(world, live_server.settings, acme, receiver.url, topics=("subprocessors",))
    receiver.secrets = [secret]

    # Vendor legal drafts the new sub-processor; a US location needs a transfer mechanism.
    await page.goto(f"{base}/login")
    await log_in(page, base, "lea@lumen.example")
    await page.get_by_role("link", name="Sub-processors", exact=True).first.click()
    await page.get_by_role("link", name="Add a sub-processor").click()
    for name, value in NEW_ENTRY.items():
        await page.locator(f"#f-{name}").fill(value)
    await page.get_by_role("button", name="Save as a draft").click()
    await expect(page.locator("#transfer_mechanism-error")).to_contain_text("US is outside the EEA")
    assert await page.locator("#f-name").input_value() == "Vectorly"  # what was typed is kept
    await page.locator("#f-transfer_mechanism").select_option("scc_module_3")
    await page.get_by_role("button", name="Save as a draft").click()

    await page.get_by_role("link", name="Publish 1 drafted change").click()
    await expect(page.get_by_role("heading", name="Publish the drafted changes")).to_be_visible()
    await page.get_by_role("button", name="Publish version and notify").click()
    await expect(page.get_by_text("Version 1 is published")).to_be_visible()

    await deliver_due(engine, live_server.settings)
    notice = mail.last_to("pia@acme.example")
    text = mail.text_of(notice)
    for detail in ("Vectorly Inc.", "500 Howard Street", "privacy@vectorly.example", "United States", "Module 3"):
        assert detail.lower() in text.lower(), detail
    link = mail.link_in(notice, "/subprocessors/versions/1/")
    assert link == "/subprocessors/versions/1/respond"
    [hook] = receiver.unique
    event = json.loads(hook.body)
    assert event["type"] == "subprocessors.changed"
    assert [c["name"] for c in event["data"]["changes"]] == ["Vectorly"]

    # The privacy contact follows the link, logs in, and objects.
    client_context = await browser.new_context()
    client_page = await client_context.new_page()
    await client_page.goto(f"{base}{link}")
    await log_in(client_page, base, "pia@acme.example")
    await expect(client_page.get_by_role("heading", name="Our sub-processors")).to_be_visible()
    await client_page.get_by_label("Your grounds for objecting to Vectorly").fill(
        "Our documents must stay in the EEA.")
    await client_page.get_by_role("button", name="Object").click()
    await expect(client_page.get_by_text("Your objection is recorded")).to_be_visible()

    # Vendor legal resolves it from the board.
    await page.goto(f"{base}/registry/objections")
    await expect(page.get_by_text("Our documents must stay in the EEA.")).to_be_visible()
    await page.get_by_role("link", name="Resolve", exact=True).click()
    await page.get_by_label("Accommodated").check()
    await page.get_by_label("Note to Acme Logistics").fill("Your data stays in our EU vector store.")
    await page.get_by_role("button", name="Resolve and notify Acme Logistics").click()
    await expect(page.get_by_text("is resolved")).to_be_visible()

    # The client sees the outcome and is told by email.
    await client_page.reload()
    await expect(client_page.get_by_text("Your data stays in our EU vector store.")).to_be_visible()
    await deliver_due(engine, live_server.settings)
    resolved = mail.last_to("pia@acme.example")
    assert "Accommodated" in resolved["Subject"]
    assert "Your data stays in our EU vector store." in mail.text_of(resolved)
    await client_context.close()
