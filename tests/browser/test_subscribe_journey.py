"""A visitor without an account subscribes to public updates, confirms from the inbox, receives a notice and
leaves through the unsubscribe page, in a real browser; every email goes through the outbox, the delivery worker
and a real SMTP server."""

from __future__ import annotations

from playwright.async_api import expect
from sqlalchemy import select

from portal.notifications.models import PublicSubscriber, SubscriberStatus
from tests.notifications.recipients_support import deliver_due, send, subprocessor_change

VISITOR = "vera@visitor.example"


async def _status(db) -> SubscriberStatus:
    return (await db.execute(select(PublicSubscriber.status).where(PublicSubscriber.email == VISITOR)
                             .execution_options(populate_existing=True))).scalar_one()


async def test_a_visitor_subscribes_confirms_and_unsubscribes(live_server, page, world, db, engine, mail):
    base = live_server.url
    await world.vendor()

    await page.goto(f"{base}/subscribe")
    await expect(page.get_by_role("heading", name="Subscribe to updates")).to_be_visible()
    await page.get_by_label("Email address").fill(VISITOR)
    await page.get_by_label("AI data-use commitments").uncheck()
    await page.get_by_role("button", name="Subscribe").click()
    await expect(page.get_by_text("a confirmation email is on its way")).to_be_visible()
    assert await _status(db) is SubscriberStatus.PENDING

    # The confirmation is a delivery in the outbox; the worker sends it to the SMTP server.
    await deliver_due(engine, live_server.settings)
    confirmation = mail.last_to(VISITOR)
    assert "Confirm your subscription" in confirmation["Subject"]
    await page.goto(base + mail.link_in(confirmation, "/subscribe/confirm/"))
    await expect(page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
    await expect(page.get_by_text("Sub-processor changes and objections")).to_be_visible()
    await page.get_by_role("button", name="Confirm my subscription").click()
    await expect(page.get_by_text("Your subscription is confirmed.")).to_be_visible()
    assert await _status(db) is SubscriberStatus.CONFIRMED

    # Later the vendor announces a sub-processor change; the visitor receives it with an unsubscribe link.
    await send(db, subprocessor_change(9), [], include_public=True)
    await deliver_due(engine, live_server.settings)
    notice = mail.last_to(VISITOR)
    assert "Sub-processor list version 9" in notice["Subject"]
    assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    await page.goto(base + mail.link_in(notice, "/unsubscribe/"))
    await expect(page.get_by_role("heading", name="Unsubscribe")).to_be_visible()
    await expect(page.get_by_text(VISITOR)).to_be_visible()
    await page.get_by_role("button", name="Unsubscribe").click()
    await expect(page.get_by_role("heading", name="You are unsubscribed")).to_be_visible()
    assert await _status(db) is SubscriberStatus.UNSUBSCRIBED

    received = len(mail.to(VISITOR))
    await send(db, subprocessor_change(10), [], include_public=True)
    await deliver_due(engine, live_server.settings)
    assert len(mail.to(VISITOR)) == received
