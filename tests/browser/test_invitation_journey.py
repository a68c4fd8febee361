"""The foundation's main journey in a real browser: vendor owner → new client → its admin → a colleague."""

from __future__ import annotations

from playwright.async_api import Page, expect

from portal.accounts.roles import Role
from tests.conftest import PASSWORD

ADMIN_PASSWORD = "admin passphrase for acme"
COLLEAGUE_PASSWORD = "colleague passphrase for acme"


async def log_in(page: Page, base: str, email: str, password: str) -> None:
    await page.goto(f"{base}/login")
    await page.get_by_label("Work email address").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def log_out(page: Page) -> None:
    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_text("You are logged out.")).to_be_visible()


async def test_vendor_onboards_a_client_whose_admin_invites_a_colleague(live_server, page, world, mail):
    base = live_server.url
    await world.person(await world.vendor(), Role.OWNER, email="olivia@nordlicht.example", name="Olivia Owner")

    # The vendor owner logs in and creates a client organisation with its first admin.
    await log_in(page, base, "olivia@nordlicht.example", PASSWORD)
    await expect(page.get_by_role("heading", name="Lumen AI GmbH")).to_be_visible()
    await page.get_by_role("link", name="Clients", exact=True).click()
    await expect(page.get_by_text("No client organisations yet")).to_be_visible()
    await page.get_by_label("Organisation name").fill("Acme Logistics SE")
    await page.get_by_label("Administrator's email address").fill("ada@acme.example")
    await page.get_by_label("Administrator's name").fill("Ada Admin")
    await page.get_by_role("button", name="Create and invite").click()
    await expect(page.get_by_text("Acme Logistics SE created; an invitation was sent to ada@acme.example")) \
        .to_be_visible()
    await expect(page.get_by_role("cell", name="ada@acme.example")).to_be_visible()
    await log_out(page)

    # The admin follows the link from the email (read from the SMTP sink), sets a password and logs in.
    link = mail.link_in(mail.last_to("ada@acme.example"), "/invitations/")
    await page.goto(base + link)
    await expect(page.get_by_role("heading", name="Join Acme Logistics SE")).to_be_visible()
    await page.get_by_label("Choose a password").fill(ADMIN_PASSWORD)
    await page.get_by_label("Repeat the password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Accept invitation").click()
    await expect(page.get_by_text("Welcome to Acme Logistics SE")).to_be_visible()
    await expect(page.get_by_label("Work email address")).to_have_value("ada@acme.example")
    await page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("heading", name="Acme Logistics SE")).to_be_visible()
    await expect(page.get_by_text("Invite your colleagues")).to_be_visible()

    # The admin invites a colleague as signatory and privacy contact.
    await page.get_by_role("link", name="Invite people").click()
    invite = page.get_by_role("form", name="Invite someone")
    await invite.get_by_label("Email address").fill("sam@acme.example")
    await invite.get_by_label("Signatory").check()
    await invite.get_by_label("Privacy contact").check()
    await invite.get_by_role("button", name="Send invitation").click()
    await expect(page.get_by_text("Invitation sent to sam@acme.example.")).to_be_visible()
    await log_out(page)

    # The colleague joins and sees their roles.
    link = mail.link_in(mail.last_to("sam@acme.example"), "/invitations/")
    await page.goto(base + link)
    await page.get_by_label("Your name").fill("Sam Signer")
    await page.get_by_label("Choose a password").fill(COLLEAGUE_PASSWORD)
    await page.get_by_label("Repeat the password").fill(COLLEAGUE_PASSWORD)
    await page.get_by_role("button", name="Accept invitation").click()
    await page.get_by_label("Password").fill(COLLEAGUE_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_text("Welcome, Sam Signer")).to_be_visible()
    await expect(page.get_by_text("Privacy contact")).to_be_visible()
    await expect(page.get_by_text("Signatory")).to_be_visible()
