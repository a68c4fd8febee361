"""A personal data breach in a real browser: vendor security records the incident, marks three clients affected and
sends each its initial notice with its own figures; the delivered emails and the signed webhook carry only that
client's figures; one client's security contact acknowledges, vendor security sends it an update, the client follows
the timeline and vendor security sees the acknowledgement and closes the incident."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from portal.accounts.roles import Role
from portal.breaches.models import UNKNOWN
from portal.settings import Settings
from tests.breaches.support import client_with_contact, notice_input
from tests.browser.support import log_in
from tests.conftest import SMTPSink, free_port, make_settings
from tests.notifications.recipients_support import deliver_due
from tests.notifications.webhook_support import add_endpoint
from tests.notifications.webhook_support import receiver as receiver  # fixture, used by name

pytestmark = pytest.mark.browser

# Per client: its security contact and its own figures. The numbers carry a thousands separator, which no id, token
# or timestamp in a message contains, so finding one in another client's message can only be a leak.
FIGURES = {"Acme Logistics": ("1,310 employees", "5,213 records"),
           "Globex Corporation": ("2,470 contractors", "6,427 records"),
           "Initech Systems": ("3,890 customers", "7,841 records")}
CONSEQUENCES = "Targeted phishing of the affected employees is possible."


@pytest.fixture
def live_settings(database_url: str, tmp_path: Path, smtp_sink: SMTPSink) -> Settings:
    """The live portal (and the delivery worker run with its settings), allowed to call the receiver on 127.0.0.1."""
    return make_settings(database_url, tmp_path, base_url=f"http://127.0.0.1:{free_port()}", smtp_url=smtp_sink.url,
                         webhook_allow_private=True)


@pytest.fixture
async def client_page(browser: Browser) -> AsyncIterator[Page]:
    """A page in a browser context of its own: the client's security contact, with their own cookies."""
    context = await browser.new_context()
    context.set_default_timeout(15_000)
    yield await context.new_page()
    await context.close()


def text_of(message: EmailMessage) -> str:
    """Everything a reader of ``message`` sees: subject, plain text and HTML, decoded."""
    parts = [message.get_body(preferencelist=(kind,)) for kind in ("plain", "html")]
    return "\n".join([str(message["Subject"]), *(str(part.get_content()) for part in parts if part is not None)])


def others_of(name: str) -> list[str]:
    """What must not appear in a message to ``name``: the other clients' names and figures."""
    return [text for other, figures in FIGURES.items() if other != name
            for text in (other, *(figure.split()[0] for figure in figures))]


async def fill_notice(page: Page, name: str) -> None:
    """The initial notice to ``name``, with its own figures; the likely consequences are not known yet."""
    subjects, records = FIGURES[name]
    values = notice_input(subjects=subjects, records=records)
    for field in ("nature", "categories", "approximate_subjects", "approximate_records", "measures"):
        await page.locator("#" + field.replace("_", "-")).fill(values[field])
    await page.locator("#likely-consequences").fill("")
    await page.locator('input[name="likely_consequences_unknown"]').check()
    await expect(page.locator("#contact-point")).to_have_value("Security operations, security@lumen.example")
    await expect(page.locator("#phase")).to_have_value("initial")


async def test_vendor_security_notifies_three_clients_and_one_follows_up(live_server, page, client_page, world,
                                                                         engine, mail, receiver):
    base = live_server.url
    await world.person(await world.vendor(), Role.SECURITY, email="sam@lumen.example", name="Sam Security")
    clients = {name: await client_with_contact(world, name) for name in FIGURES}
    globex, _ = clients["Globex Corporation"]
    _endpoint, secret = await add_endpoint(world, live_server.settings, globex, receiver.url)
    receiver.secrets = [secret]
    _acme, acme_contact = clients["Acme Logistics"]

    # Vendor security records the incident; awareness three hours ago starts every client's clock.
    await log_in(page, base, "sam@lumen.example")
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Incidents").click()
    await page.get_by_role("link", name="Record an incident").click()
    await expect(page).to_have_url(f"{base}/incidents/new")
    aware = dt.datetime.now(dt.UTC) - dt.timedelta(hours=3)
    await page.locator("#title").fill("Export sent to the wrong tenant")
    await page.locator("#aware_at").fill(aware.strftime("%Y-%m-%dT%H:%M"))
    await page.locator("#detected_at").fill((aware - dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_label("Confidentiality (disclosure or access)").check()
    await page.locator("#summary").fill("An export job sent document metadata to another tenant.")
    await expect(page.get_by_label("Our own systems")).to_be_checked()
    await page.locator("#contact_point").fill("Security operations, security@lumen.example")
    await page.locator("#internal_notes").fill("Cache key without the tenant id, SEC-4411")
    await page.get_by_role("button", name="Record the incident").click()
    await expect(page.get_by_text("is on the register. Choose the affected clients")).to_be_visible()
    await expect(page.locator("#incident-status")).to_have_text("Open")
    await expect(page.locator("#elapsed-hours")).to_have_text("3")
    heading = await page.get_by_role("heading", level=1).inner_text()
    reference = heading.split(":", 1)[0]
    assert re.fullmatch(r"INC-\d{4}-\d{4}", reference), heading
    incident_url = page.url

    # All three clients are affected; each gets its initial notice with its own figures.
    chooser = page.get_by_role("form", name="Affected clients")
    for name in FIGURES:
        await chooser.get_by_label(name, exact=True).check()
    await chooser.get_by_role("button", name="Mark as affected").click()
    await expect(page.get_by_text("3 client(s) marked as affected.")).to_be_visible()
    for name in FIGURES:
        row = page.locator(f'tr[data-client="{name}"]')
        await expect(row).to_contain_text("not notified")
        await row.get_by_role("link", name="Send the initial notice").click()
        await expect(page.get_by_role("heading", name=f"Notify {name} of {reference}")).to_be_visible()
        await fill_notice(page, name)
        await page.get_by_role("button", name=f"Send the notice to {name}").click()
        await expect(page.get_by_text(f"Notice 1 (initial) is on its way to the security contacts of {name}")
                     ).to_be_visible()
        await expect(page.locator(f'tr[data-client="{name}"]')).to_contain_text("1 (initial)")

    # The outbox is delivered: one email to each security contact, one signed request to Globex's receiver.
    await deliver_due(engine, live_server.settings)
    for name, (_org, contact) in clients.items():
        [message] = mail.to(contact.user.email)
        said = text_of(message)
        assert reference in said and all(figure in said for figure in FIGURES[name]), said
        assert UNKNOWN in said and "SEC-4411" not in said
        leaked = [text for text in others_of(name) if text in said]
        assert not leaked, f"the notice to {name} names {leaked}"
    [request] = receiver.requests
    assert request.verified_with == [0] and not request.duplicate and request.status == 204
    event = json.loads(request.body)
    data = event["data"]
    assert event["type"] == "breach.notified" and data["incident"] == reference
    assert data["organisation_id"] == str(globex.id) and data["phase"] == "initial"
    assert (data["approximate_subjects"], data["approximate_records"]) == FIGURES["Globex Corporation"]
    notified = dt.datetime.fromisoformat(data["notified_at"])
    assert dt.datetime.fromisoformat(data["reference_sa_deadline"]) - notified == dt.timedelta(hours=72)
    leaked = [text for text in [*others_of("Globex Corporation"), "SEC-4411"] if text in request.body.decode()]
    assert not leaked, f"the webhook to Globex carries {leaked}"
    await page.reload()
    for name in FIGURES:
        await expect(page.locator(f'tr[data-client="{name}"] td').nth(4)).to_have_text(re.compile(r"\d{4}-.* UTC"))

    # Acme's security contact finds the incident under Incidents and acknowledges notice 1.
    await log_in(client_page, base, acme_contact.user.email)
    await client_page.get_by_role("navigation", name="Main").get_by_role("link", name="Incidents").click()
    await expect(client_page.get_by_role("heading", name="Personal data breaches notified to Acme Logistics")
                 ).to_be_visible()
    await client_page.get_by_role("link", name=reference).click()
    notice_1 = client_page.locator("#notice-1")
    await expect(notice_1).to_contain_text("1,310 employees")
    for text in others_of("Acme Logistics"):
        await expect(client_page.locator("main")).not_to_contain_text(text)
    await notice_1.get_by_role("button", name="Acknowledge notice 1").click()
    await expect(client_page.get_by_text("Notice 1 is acknowledged for Acme Logistics.")).to_be_visible()
    await expect(notice_1).to_contain_text(f"by {acme_contact.user.name} ({acme_contact.user.email})")
    acknowledged = re.search(r"Acknowledged (\d{4}-\d\d-\d\d \d\d:\d\d UTC)", await notice_1.inner_text())
    assert acknowledged, await notice_1.inner_text()

    # Vendor security sees the acknowledgement in Acme's row, then sends Acme an update: the consequences are known.
    await page.reload()
    acme_row = page.locator('tr[data-client="Acme Logistics"]')
    await expect(acme_row.locator("td").nth(5)).to_have_text(f"1: {acknowledged.group(1)}")
    for name in ("Globex Corporation", "Initech Systems"):
        await expect(page.locator(f'tr[data-client="{name}"] td').nth(5)).to_have_text("1: not yet")
    await acme_row.get_by_role("link", name="Send an update").click()
    await expect(page.locator("#phase")).to_have_value("interim")
    await expect(page.locator("#approximate-subjects")).to_have_value("1,310 employees")
    await expect(page.locator("#likely-consequences")).to_have_value(UNKNOWN)
    await page.locator("#likely-consequences").fill(CONSEQUENCES)
    await page.get_by_role("button", name="Send the notice to Acme Logistics").click()
    sent = "Notice 2 (interim) is on its way to the security contacts of Acme Logistics"
    await expect(page.get_by_text(sent)).to_be_visible()
    await expect(acme_row).to_contain_text("2 (interim)")

    # The client sees notice 1 then notice 2, with only the likely consequences marked as changed.
    await client_page.reload()
    assert [await s.get_attribute("id") for s in await client_page.locator("section.notice").all()] == \
        ["notice-1", "notice-2"]
    notice_2 = client_page.locator("#notice-2")
    await expect(notice_2.get_by_role("heading")).to_have_text("Notice 2: interim")
    await expect(notice_2.locator("dt", has_text="changed")).to_have_count(1)
    await expect(notice_2.locator("dt", has_text="changed")).to_contain_text("Likely consequences")
    await expect(notice_2.locator("dd", has_text=CONSEQUENCES)).to_contain_text(f"(before: {UNKNOWN})")
    await expect(notice_1.locator("dd", has_text=CONSEQUENCES)).to_have_count(0)
    await expect(notice_1).to_contain_text(f"Acknowledged {acknowledged.group(1)}")
    await expect(notice_2.get_by_role("button", name="Acknowledge notice 2")).to_be_visible()

    # The update reaches Acme's contact alone; nothing more goes to the others or to Globex's receiver.
    await deliver_due(engine, live_server.settings)
    update = mail.to(acme_contact.user.email)[-1]
    assert len(mail.to(acme_contact.user.email)) == 2 and CONSEQUENCES in text_of(update)
    assert "Changed since our previous notice: Likely consequences" in text_of(update)
    for name in ("Globex Corporation", "Initech Systems"):
        assert len(mail.to(clients[name][1].user.email)) == 1
    assert len(receiver.requests) == 1

    # Vendor security closes the incident with a rationale; it stays on record, closed.
    await page.goto(incident_url)
    await page.locator("#closure").select_option("breach_handled")
    await page.locator("#closure_rationale").fill("Export fixed, every affected client notified and informed.")
    await page.get_by_role("button", name="Close the incident").click()
    await expect(page.get_by_text(f"{reference} is closed and kept on record.")).to_be_visible()
    await expect(page.locator("#incident-status")).to_have_text("Closed: Personal data breach, notified and handled")
    await expect(page.get_by_text("Export fixed, every affected client notified and informed.")).to_be_visible()
    await expect(page.get_by_role("button", name="Close the incident")).to_have_count(0)
    await client_page.reload()
    await expect(client_page.locator("main")).to_contain_text("Closed")
