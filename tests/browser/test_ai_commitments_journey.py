"""The AI data-use commitments ledger in a real browser, with two clients and a public subscriber.

Version 1 is history (published 40 days ago). Vendor legal starts a draft from it, shortens how long telemetry is
kept (not expanding), publishes version 2: every client and the public subscriber is notified and it is in effect for
both clients at once. Vendor legal then lets feedback be used for training when a client opts in (expanding) and
publishes version 3: both clients are asked to accept it and it applies to neither yet. Acme's admin is refused
without the confirmation ticked, then accepts; version 3 applies to Acme while Globex stays on version 2, as the
vendor's board shows. Acme's admin switches training on feedback on (allowed by version 3) and is refused for
prompts (which no version trains on); Globex's setting stays off. Asked about a date 20 days ago, Acme's page says
version 1 applied then. The acceptance is on the audit trail.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

import pytest
from playwright.async_api import Locator, Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from portal.accounts.models import Organisation
from portal.accounts.roles import Role
from portal.ai_commitments import acceptance, ledger
from portal.ai_commitments.models import Acceptance, CommitmentVersion, TrainingInstruction
from portal.audit.models import AuditEvent
from portal.notifications import subscriptions
from portal.notifications.catalog import NoticeType
from portal.notifications.models import Notice
from tests.ai_commitments.support import SYSTEM, commitments, register_provider
from tests.browser.conftest import LiveServer
from tests.browser.support import log_in
from tests.conftest import SMTPSink, World
from tests.notifications.recipients_support import deliver_due

pytestmark = pytest.mark.browser

# Per client: its admin (who accepts and instructs) and its privacy contact; both receive the notices.
CLIENTS = {"Acme Logistics": ("ada@acme.example", "pia@acme.example"),
           "Globex Corporation": ("gus@globex.example", "pat@globex.example")}
LEGAL = "lea@lumen.example"
READER = "reader@public.example"
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")
WIDENS = "Feedback: training use widens to 'Only if the client opts in'"


async def first_version(world: World) -> None:
    """Version 1 of the commitments, published and in effect 40 days ago: history by the time clients join."""
    await register_provider(world)
    forty_days_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    draft = await ledger.save_draft(world.session, actor=SYSTEM, raw=commitments())
    await ledger.publish(world.session, actor=SYSTEM, draft_id=str(draft.id), reason="The first commitments",
                         effective_date=forty_days_ago.date().isoformat(), now=forty_days_ago)
    await world.commit()


async def public_subscriber(world: World, engine: AsyncEngine, live: LiveServer, mail: SMTPSink) -> None:
    """``READER`` subscribed to the AI commitments topic and confirmed through the emailed link."""
    await subscriptions.request_subscription(world.session, actor=SYSTEM, email=READER, topics=["ai_commitments"],
                                             base_url=live.url)
    await world.commit()
    await deliver_due(engine, live.settings)
    token = mail.link_in(mail.last_to(READER), "/subscribe/confirm/").rsplit("/", 1)[1]
    await subscriptions.confirm_subscription(world.session, actor=SYSTEM, token=token)
    await world.commit()
    mail.messages.clear()


async def notices_of(db: AsyncSession, number: int) -> dict[str | None, dict[str, Any]]:
    """The payloads of the notices of version ``number``, by organisation name (None: the public notice)."""
    rows = (await db.execute(select(Organisation.name, Notice.payload).select_from(Notice)
                             .outerjoin(Organisation, Organisation.id == Notice.org_id)
                             .where(Notice.type == NoticeType.AI_COMMITMENT_CHANGE.value))).all()
    await db.commit()  # end the read: the live portal writes next
    found = [(name, payload) for name, payload in rows if payload["version"] == number]
    assert len(found) == len({name for name, _ in found}), f"more than one notice per recipient: {found}"
    return dict(found)


async def rows_of(db: AsyncSession, statement: Any) -> list[Any]:
    rows = list((await db.execute(statement)).all())
    await db.commit()
    return rows


def said(message: EmailMessage) -> str:
    return f"{message['Subject']}\n{SMTPSink.text_of(message)}"


async def draft_and_publish(page: Page, base: str, change: Callable[[Page], Awaitable[None]], *, number: int,
                            reason: str, widens: tuple[str, ...] = ()) -> None:
    """Vendor legal: a new draft from the form (as filled in from the newest version), ``change`` applied, checked,
    then published effective today; the draft page first says whether, and by what, it widens the commitments
    (``widens``: nothing for a narrowing change). Ends on the ledger page."""
    expanding = bool(widens)
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="AI commitments").click()
    await expect(page).to_have_url(f"{base}/ai-commitments/manage")
    await expect(page.locator("#prompts-providers")).to_have_value("Mistral AI SAS | none | 0 | zdr")
    await change(page)
    await page.get_by_role("button", name="Check and save the draft").click()
    await expect(page.get_by_text("The draft is checked and saved.")).to_be_visible()
    await expect(page).to_have_url(re.compile(re.escape(base) + r"/ai-commitments/manage/drafts/[0-9a-f-]{36}$"))
    await expect(page.locator("#classification strong")).to_have_text("Expanding" if expanding else "Not expanding")
    await expect(page.locator("#classification")).to_contain_text(f"against version {number - 1}")
    await expect(page.locator("#classification + ul li")).to_have_text(list(widens))
    await page.get_by_label("Effective date").fill(dt.datetime.now(dt.UTC).date().isoformat())
    await page.get_by_label("Reason for the change").fill(reason)
    await page.get_by_role("button", name="Publish as the next version").click()
    # Vendor legal is told what publishing did on the page publishing leads to, and only there (a flash left over
    # for a later page would report the publication out of place).
    published = page.get_by_text(f"Published as version {number}; every client and public subscriber is notified")
    await expect(published).to_be_visible()
    await expect(page).to_have_url(f"{base}/ai-commitments/manage")
    await page.goto(f"{base}/ai-commitments/versions/{number}")
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"AI data-use commitments, version {number}")
    await expect(page.locator("dt:text-is('Reason for the change') + dd")).to_have_text(reason)
    await expect(page.locator("dt:text-is('Expanding') + dd")).to_contain_text("Yes" if expanding else "No")
    await expect(page.locator("dt:text-is('Expanding') + dd li")).to_have_text(list(widens))
    await page.goto(f"{base}/ai-commitments/manage")
    await expect(page.get_by_role("heading", name="AI data-use commitments ledger")).to_be_visible()
    await expect(published).to_have_count(0)


async def shorter_telemetry(page: Page) -> None:
    telemetry = page.get_by_role("group", name="Telemetry and metadata", exact=True)
    retention = telemetry.get_by_label("Retention at the vendor (days or none)")
    await expect(retention).to_have_value("30")
    await retention.fill("14")


async def training_on_feedback(page: Page) -> None:
    await expect(page.get_by_role("group", name="Telemetry and metadata", exact=True)
                 .get_by_label("Retention at the vendor (days or none)")).to_have_value("14")  # from version 2
    feedback = page.get_by_role("group", name="Feedback", exact=True)
    await feedback.get_by_label("Training use").select_option(label="Only if the client opts in")
    await feedback.get_by_label("Models it may train (when training is allowed)").fill("Lumen answer-ranking model")


async def board_row(page: Page, name: str, state: str) -> Locator:
    row = page.locator(f'#client-board tr[data-org="{name}"]')
    await expect(row).to_have_attribute("data-state", state)
    return row


async def test_narrowing_then_expanding_versions_reach_each_client_as_it_stands(
        live_server: LiveServer, page: Page, new_page: Callable[[], Awaitable[Page]], world: World, db: AsyncSession,
        engine: AsyncEngine, mail: SMTPSink) -> None:
    base = live_server.url
    await first_version(world)
    await world.person(await world.vendor(), Role.LEGAL, email=LEGAL, name="Lea Legal")
    orgs: dict[str, Organisation] = {}
    for name, (admin, contact) in CLIENTS.items():
        orgs[name] = await world.client_org(name)
        await world.person(orgs[name], Role.ADMIN, email=admin, name=f"{name.split()[0]} Admin")
        await world.person(orgs[name], Role.PRIVACY_CONTACT, email=contact, name=f"{name.split()[0]} Privacy")
    acme, globex = orgs["Acme Logistics"], orgs["Globex Corporation"]
    await public_subscriber(world, engine, live_server, mail)

    # Vendor legal keeps telemetry 14 days instead of 30: narrowing, so it applies to everyone on its date.
    await log_in(page, base, LEGAL)
    await draft_and_publish(page, base, shorter_telemetry, number=2, reason="Telemetry is kept 14 days instead of 30.")
    notices = await notices_of(db, 2)
    assert set(notices) == {*CLIENTS, None}, notices
    assert all(payload["expanding"] is False for payload in notices.values())
    await deliver_due(engine, live_server.settings)
    for name, people in CLIENTS.items():
        for email in people:
            text = said(mail.last_to(email))
            assert "AI data-use commitments version 2" in text and "acceptance is needed" not in text, text
            assert "Telemetry is kept 14 days instead of 30." in text and "It applies from its effective date." in text
            assert f"{base}/orgs/{orgs[name].id}/ai-commitments" in text
    assert f"{base}/ai-commitments/versions/2" in said(mail.last_to(READER))
    await expect(page.get_by_role("heading", name="Clients on version 2")).to_be_visible()
    for name in CLIENTS:
        row = await board_row(page, name, "in_effect")
        await expect(row.locator("td").nth(1)).to_have_text(re.compile(r"^Version 2 since "))
        await expect(row.locator("td").nth(4)).to_have_text(TIME)

    # Vendor legal lets feedback train a model when a client opts in: expanding, so each client must accept it.
    await draft_and_publish(page, base, training_on_feedback, number=3, widens=(WIDENS,),
                            reason="Clients may let their feedback improve answer ranking.")
    notices = await notices_of(db, 3)
    assert set(notices) == {*CLIENTS, None}, notices
    assert all(payload["expanding"] is True for payload in notices.values())
    await deliver_due(engine, live_server.settings)
    for people in CLIENTS.values():
        for email in people:
            assert len(mail.to(email)) == 2
            text = said(mail.last_to(email))
            assert "AI data-use commitments version 3: your acceptance is needed" in text, text
            assert WIDENS in text and "applies to you only once your admin accepts it" in text
    for name in CLIENTS:
        row = await board_row(page, name, "pending_acceptance")
        await expect(row.locator("td").nth(1)).to_have_text(re.compile(r"^Version 2 since "))
        await expect(row.locator("td").nth(2)).to_contain_text(WIDENS)
        await expect(row.locator("td").nth(3)).to_have_text("—")

    # Acme's admin sees what version 3 widens; without the confirmation ticked nothing is accepted.
    acme_page = await new_page()
    await log_in(acme_page, base, CLIENTS["Acme Logistics"][0])
    await acme_page.get_by_role("navigation", name="Main").get_by_role("link", name="AI commitments").click()
    await expect(acme_page).to_have_url(f"{base}/orgs/{acme.id}/ai-commitments")
    pending = acme_page.locator("#pending")
    await expect(pending.get_by_role("heading")).to_have_text("Version 3 waits for Acme Logistics's acceptance")
    await expect(pending.locator("ul.widening")).to_have_text(WIDENS)
    changes = pending.get_by_role("table")
    await expect(changes.locator("caption")).to_have_text("2 field(s) differ from version 2")
    await expect(changes.get_by_role("row", name=re.compile("^Feedback.*Training use"))).to_contain_text(
        "Only if the client opts in")
    await expect(acme_page.locator("#applying strong[data-version]")).to_have_attribute("data-version", "2")
    accept = pending.get_by_role("button", name="Accept version 3")
    async with acme_page.expect_response(re.compile(r"/ai-commitments/acceptances$")) as refused:
        await accept.click()
    assert (await refused.value).status == 400
    await expect(acme_page.locator("#form-error")).to_contain_text("Nothing was accepted. Tick the confirmation")
    assert await rows_of(db, select(Acceptance.id)) == []

    # Acme's admin ticks the confirmation, which names the version's hash, and accepts: version 3 applies to Acme.
    [(sha,)] = await rows_of(db, select(CommitmentVersion.sha256).where(CommitmentVersion.number == 3))
    confirm = pending.get_by_label(acceptance.statement_for(acme, 3, sha), exact=True)
    await expect(confirm).not_to_be_checked()
    await confirm.check()
    await acme_page.locator("#pending").get_by_role("button", name="Accept version 3").click()
    await expect(acme_page.get_by_text("Recorded: Acme Logistics accepts version 3 of the AI commitments.")
                 ).to_be_visible()
    await expect(acme_page.locator("#pending")).to_have_count(0)
    applying = acme_page.locator("#applying")
    await expect(applying.locator("strong[data-version]")).to_have_attribute("data-version", "3")
    await expect(applying).to_contain_text(f"accepted by user:{CLIENTS['Acme Logistics'][0]} on")
    [(accepted_org, accepted_sha)] = await rows_of(db, select(Acceptance.org_id, Acceptance.sha256))
    assert (accepted_org, accepted_sha) == (acme.id, sha)

    # Globex's admin still has version 2, and version 3 still waits for Globex.
    globex_page = await new_page()
    await log_in(globex_page, base, CLIENTS["Globex Corporation"][0])
    await globex_page.get_by_role("navigation", name="Main").get_by_role("link", name="AI commitments").click()
    await expect(globex_page).to_have_url(f"{base}/orgs/{globex.id}/ai-commitments")
    await expect(globex_page.locator("#applying strong[data-version]")).to_have_attribute("data-version", "2")
    await expect(globex_page.locator("#pending").get_by_role("heading")).to_have_text(
        "Version 3 waits for Globex Corporation's acceptance")
    await page.reload()
    acme_row = await board_row(page, "Acme Logistics", "in_effect")
    await expect(acme_row.locator("td").nth(1)).to_have_text(re.compile(r"^Version 3 since "))
    await expect(acme_row.locator("td").nth(3)).to_have_text(
        re.compile(TIME.pattern + re.escape(f" by user:{CLIENTS['Acme Logistics'][0]}")))
    globex_row = await board_row(page, "Globex Corporation", "pending_acceptance")
    await expect(globex_row.locator("td").nth(3)).to_have_text("—")

    # Acme's admin switches training on feedback on, which version 3 allows; prompts are never trained on.
    instruct = acme_page.get_by_role("form", name="Record an instruction")
    await instruct.get_by_label("Data class").select_option(label="Feedback")
    await instruct.get_by_label("Switch training on").check()
    await instruct.get_by_label("Why").fill("Our DPO approved answer-ranking improvements.")
    await instruct.get_by_role("button", name="Record the instruction").click()
    await expect(acme_page.get_by_text("Recorded: training on feedback is on for Acme Logistics.")).to_be_visible()
    await expect(acme_page.locator('tr[data-class="feedback"] .training')).to_have_text("On")
    history = acme_page.get_by_role("table", name="Instructions recorded")
    await expect(history.locator("tbody tr")).to_have_count(1)
    await expect(history.locator("tbody tr")).to_contain_text(
        re.compile(r"Feedback\s*On\s*user:ada@acme\.example\s*Our DPO approved answer-ranking improvements\."))
    await instruct.get_by_label("Data class").select_option(label="Prompts and inputs")
    await instruct.get_by_label("Switch training on").check()
    await instruct.get_by_label("Why").fill("Try prompts too.")
    async with acme_page.expect_response(re.compile(r"/ai-commitments/instructions$")) as refused:
        await instruct.get_by_role("button", name="Record the instruction").click()
    assert (await refused.value).status == 400
    await expect(acme_page.locator("#form-error")).to_contain_text(
        re.compile(r"Nothing was recorded\. The commitments .* do not use prompts and inputs for training at all"))
    await expect(acme_page.locator('tr[data-class="prompts"] .training')).to_have_text("Off")
    await expect(history.locator("tbody tr")).to_have_count(1)
    recorded = await rows_of(db, select(TrainingInstruction.org_id, TrainingInstruction.data_class,
                                        TrainingInstruction.enabled, TrainingInstruction.commitments_version))
    assert recorded == [(acme.id, "feedback", True, 3)]
    await globex_page.reload()
    await expect(globex_page.locator('tr[data-class="feedback"] .training')).to_have_text("Off")
    await expect(globex_page.get_by_text("No instruction recorded: training is off for every data class.")
                 ).to_be_visible()

    # Asked about a date 20 days ago, Acme's page says version 1 applied then.
    twenty_days_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=20)).date().isoformat()
    await acme_page.goto(f"{base}/orgs/{acme.id}/ai-commitments")
    await acme_page.get_by_label("Date", exact=True).fill(twenty_days_ago)
    await acme_page.get_by_role("button", name="Show").click()
    await expect(acme_page).to_have_url(f"{base}/orgs/{acme.id}/ai-commitments?on={twenty_days_ago}")
    shown = acme_page.locator("#shown")
    await expect(shown).to_contain_text(f"On {twenty_days_ago}, version 1 applied to Acme Logistics")
    await expect(shown.locator("strong")).to_have_text("1")

    # The acceptance is on the audit trail, for Acme only.
    events = await rows_of(db, select(AuditEvent.org_id, AuditEvent.data)
                           .where(AuditEvent.tag == "ai_commitments:accepted"))
    assert [(org_id, data["number"], data["sha256"]) for org_id, data in events] == [(acme.id, 3, sha)]
