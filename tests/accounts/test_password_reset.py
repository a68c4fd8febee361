"""Password reset by email link and password change."""

import datetime as dt

from sqlalchemy import select, update

from portal.accounts.models import LoginSession, PasswordReset, User
from portal.security import verify_password
from tests.conftest import PASSWORD, post_form

NEW_PASSWORD = "a brand new passphrase here"


async def test_reset_by_email_link_sets_the_password_and_ends_sessions(world, login_as, client, mail, db):
    org = await world.client_org()
    member = await world.person(org, email="ada@acme.example")
    other_browser = await login_as(member)

    asked = await post_form(client, "/password/forgot", {"email": "ADA@acme.example"})
    assert asked.status_code == 303
    link = mail.link_in(mail.last_to("ada@acme.example"), "/password/reset/")

    done = await post_form(client, link, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})

    assert done.status_code == 303
    user = await db.get(User, member.user_id)
    await db.refresh(user)
    assert verify_password(user.password_hash, NEW_PASSWORD)
    assert (await other_browser.get("/")).status_code == 303  # logged out everywhere
    reused = await post_form(client, link, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert reused.status_code == 400 and "not valid any more" in reused.text


async def test_reset_request_says_the_same_for_unknown_addresses_and_sends_nothing(client, mail):
    response = await post_form(client, "/password/forgot", {"email": "nobody@nowhere.example"})
    assert response.status_code == 303
    assert mail.messages == []


async def test_an_expired_reset_link_or_weak_password_changes_nothing(world, client, mail, db):
    org = await world.client_org()
    member = await world.person(org, email="ada@acme.example")
    await post_form(client, "/password/forgot", {"email": "ada@acme.example"})
    link = mail.link_in(mail.last_to("ada@acme.example"), "/password/reset/")

    weak = await post_form(client, link, {"password": "abcabcabcabc", "password_confirm": "abcabcabcabc"})
    assert weak.status_code == 400 and "stronger password" in weak.text

    await db.execute(update(PasswordReset).values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)))
    await world.commit()
    expired = await post_form(client, link, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert expired.status_code == 400

    user = await db.get(User, member.user_id)
    await db.refresh(user)
    assert verify_password(user.password_hash, PASSWORD)


async def test_change_password_needs_the_current_one_and_keeps_only_this_session(world, login_as, db):
    org = await world.client_org()
    member = await world.person(org)
    this_browser = await login_as(member)
    other_browser = await login_as(member)

    wrong = await post_form(this_browser, "/account/password", {"current_password": "nope",
                            "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert wrong.status_code == 400 and "current password is not right" in wrong.text

    ok = await post_form(this_browser, "/account/password", {"current_password": PASSWORD,
                         "password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})
    assert ok.status_code == 303
    assert (await this_browser.get("/account")).status_code == 200
    assert (await other_browser.get("/account")).status_code == 303
    live = (await db.execute(select(LoginSession).where(LoginSession.ended_at.is_(None)))).scalars().all()
    assert len(live) == 1
