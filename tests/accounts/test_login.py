"""Password login, rate limiting, sessions (logout, expiry, fixation) and the TOTP step."""

import datetime as dt

import pyotp
from sqlalchemy import func, select, update

from portal.accounts.models import LoginFailure, LoginSession
from portal.accounts.roles import Role
from portal.accounts.sessions import SESSION_COOKIE
from portal.audit.models import AuditEvent
from portal.security import hash_token
from tests.conftest import PASSWORD, post_form


async def login(client, email, password=PASSWORD, **extra):
    return await post_form(client, "/login", {"email": email, "password": password, **extra})


async def test_login_lands_on_home_with_a_fresh_server_side_session(client, world, db):
    org = await world.client_org()
    member = await world.person(org, Role.ADMIN, email="ada@acme.example", name="Ada Admin")
    client.cookies.set(SESSION_COOKIE, "planted-by-an-attacker")

    response = await login(client, "Ada@Acme.example", next="/account")

    assert response.status_code == 303
    assert response.headers["location"] == "/account"
    token = response.cookies[SESSION_COOKIE]
    assert token != "planted-by-an-attacker"
    stored = (await db.execute(select(LoginSession).where(LoginSession.user_id == member.user_id))).scalar_one()
    assert stored.id == hash_token(token)  # only the hash is stored
    home = await client.get("/")
    assert home.status_code == 200
    assert "Ada Admin" in home.text and "Acme Logistics" in home.text
    tags = (await db.execute(select(AuditEvent.tag))).scalars().all()
    assert "user:logged_in" in tags


async def test_wrong_password_and_unknown_account_get_the_same_generic_message(client, world, db):
    org = await world.client_org()
    await world.person(org, email="ada@acme.example")

    wrong = await login(client, "ada@acme.example", "not the password at all")
    unknown = await login(client, "nobody@acme.example", "not the password at all")

    assert wrong.status_code == unknown.status_code == 400
    assert "do not match an account" in wrong.text and "do not match an account" in unknown.text
    assert 'value="ada@acme.example"' in wrong.text  # what the user typed is kept
    assert SESSION_COOKIE not in wrong.cookies
    assert (await db.execute(select(func.count()).select_from(LoginSession))).scalar_one() == 0


async def test_login_is_rate_limited_per_account_with_a_generic_error(client, world, db, settings):
    org = await world.client_org()
    await world.person(org, email="ada@acme.example")
    for _ in range(settings.login_max_failures):
        assert (await login(client, "ada@acme.example", "wrong wrong wrong")).status_code == 400

    blocked = await login(client, "ada@acme.example")  # even the right password is refused now

    assert blocked.status_code == 429
    assert "Too many failed attempts" in blocked.text
    assert SESSION_COOKIE not in blocked.cookies
    failures = (await db.execute(select(func.count()).select_from(LoginFailure))).scalar_one()
    assert failures == 2 * settings.login_max_failures  # per address and per client address


async def test_missing_fields_are_refused_clearly(client):
    response = await login(client, "", "")
    assert response.status_code == 400
    assert "Enter your email address and your password" in response.text


async def test_logout_ends_the_session_for_good(client, world, db):
    org = await world.client_org()
    await world.person(org, email="ada@acme.example")
    token = (await login(client, "ada@acme.example")).cookies[SESSION_COOKIE]

    response = await post_form(client, "/logout")

    assert response.status_code == 303
    assert "user:logged_out" in (await db.execute(select(AuditEvent.tag))).scalars().all()
    stored = await db.get(LoginSession, hash_token(token))
    await db.refresh(stored)
    assert stored.ended_at is not None
    client.cookies.set(SESSION_COOKIE, token)  # replaying the old cookie
    again = await client.get("/account")
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


async def test_an_expired_or_idle_session_sends_the_user_to_login(client, world, db, settings):
    org = await world.client_org()
    await world.person(org, email="ada@acme.example")
    now = dt.datetime.now(dt.UTC)
    cases = {
        "expired": {"expires_at": now - dt.timedelta(minutes=1)},
        "idle": {"last_seen_at": now - dt.timedelta(minutes=settings.session_idle_minutes + 1)},
    }
    for values in cases.values():
        token = (await login(client, "ada@acme.example")).cookies[SESSION_COOKIE]
        assert (await client.get("/account")).status_code == 200
        await db.execute(update(LoginSession).where(LoginSession.id == hash_token(token)).values(**values))
        await world.commit()

        response = await client.get("/account")

        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Faccount"


async def test_log_out_everywhere_ends_every_session(app, client, world, db):
    import httpx

    org = await world.client_org()
    await world.person(org, email="ada@acme.example")
    await login(client, "ada@acme.example")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as other:
        await login(other, "ada@acme.example")
        assert (await other.get("/account")).status_code == 200

        response = await post_form(client, "/account/sessions/end-all")

        assert response.status_code == 303
        assert (await other.get("/account")).status_code == 303
    live = (await db.execute(select(func.count()).select_from(LoginSession)
                             .where(LoginSession.ended_at.is_(None)))).scalar_one()
    assert live == 0
    event = (await db.execute(select(AuditEvent).where(AuditEvent.tag == "user:logged_out_everywhere"))).scalar_one()
    assert event.data == {"sessions": 2}


async def test_totp_is_asked_after_the_password_and_a_code_works_once(client, world, db, settings):
    from portal.accounts.models import User
    from portal.security import encrypt_field

    org = await world.client_org()
    member = await world.person(org, email="ada@acme.example")
    secret = pyotp.random_base32()
    user = await db.get(User, member.user_id)
    user.totp_secret = encrypt_field(settings.secret_key, secret)
    user.totp_enabled_at = dt.datetime.now(dt.UTC)
    await world.commit()

    first = await login(client, "ada@acme.example")
    assert first.headers["location"].startswith("/login/totp")
    assert (await client.get("/account")).status_code == 303  # nothing but the TOTP step yet

    wrong = await post_form(client, "/login/totp", {"code": "000000"})
    assert wrong.status_code == 400 and "not right" in wrong.text

    code = pyotp.TOTP(secret).now()
    done = await post_form(client, "/login/totp", {"code": code})
    assert done.status_code == 303
    assert done.cookies[SESSION_COOKIE] != first.cookies[SESSION_COOKIE]  # new session id after the 2nd factor
    assert (await client.get("/account")).status_code == 200

    await post_form(client, "/logout")
    await login(client, "ada@acme.example")
    replay = await post_form(client, "/login/totp", {"code": code})
    assert replay.status_code == 400  # the same code cannot be used twice
