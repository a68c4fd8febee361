"""Single sign-on against a real OpenID Connect provider (oidc-provider on loopback), the portal in-process."""

from __future__ import annotations

import html
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import func, select

from portal.accounts import auth
from portal.accounts.models import LoginSession, Membership, Organisation, User
from portal.accounts.roles import Role
from portal.accounts.service import membership_of
from portal.accounts.sessions import SESSION_COOKIE
from portal.accounts.sso import service as sso
from portal.accounts.sso import signin
from portal.accounts.sso.models import ExternalIdentity, IdentityProvider
from portal.actors import Actor
from portal.audit.models import AuditEvent
from portal.db import commit_and_run_jobs
from portal.errors import InvalidInput
from portal.security import hash_token
from tests.conftest import PASSWORD, World
from tests.sso_support import TestIdP, with_query

pytestmark = pytest.mark.idp


@pytest.fixture
async def browsers(app: Any) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """``browsers()`` gives another anonymous client (a second browser)."""
    opened: list[httpx.AsyncClient] = []

    def make() -> httpx.AsyncClient:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        opened.append(c)
        return c

    yield make
    for c in opened:
        await c.aclose()


@pytest.fixture
async def client_a(world: World) -> Organisation:
    return await world.client_org("Client A")  # its people are <x>@client-a.example


@pytest.fixture
async def provider(db: Any, client_a: Organisation, settings: Any, oidc_idp: TestIdP) -> IdentityProvider:
    return await oidc_idp.configure(db, client_a, settings, domains="client-a.example", role=Role.SIGNATORY)


async def start(client: httpx.AsyncClient, provider: IdentityProvider, **params: str) -> str:
    response = await client.get(f"/sso/start/{provider.id}", params=params)
    assert response.status_code == 302, response.text[:300]
    return response.headers["location"]


async def sso_login(client: httpx.AsyncClient, idp: TestIdP, provider: IdentityProvider, login: str,
                    **params: str) -> httpx.Response:
    callback = await idp.sign_in(await start(client, provider, **params), login)
    return await client.get(callback)


async def count(db: Any, model: Any) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)))


async def tags(db: Any) -> list[str]:
    return list((await db.execute(select(AuditEvent.tag).order_by(AuditEvent.seq))).scalars())


async def live_session_of(db: Any, client: httpx.AsyncClient) -> LoginSession | None:
    token = client.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    return await db.scalar(select(LoginSession).where(LoginSession.id == hash_token(token))
                           .execution_options(populate_existing=True))


def refused(response: httpx.Response, text: str) -> None:
    assert response.status_code == 400, response.text[:500]
    assert text in html.unescape(response.text), response.text[:2000]
    assert 'href="/login"' in response.text
    assert SESSION_COOKIE not in response.cookies


# ---------------------------------------------------------------- the happy paths

async def test_first_login_creates_the_member_just_in_time(client, db, provider, oidc_idp, client_a):
    authorize = await start(client, provider, next="/members", login_hint="alice@client-a.example")
    query = parse_qs(urlsplit(authorize).query)
    assert authorize.startswith(oidc_idp.issuer + "/auth?")
    assert query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) >= 43
    assert query["state"][0]
    assert query["nonce"][0]
    assert query["redirect_uri"] == [f"http://testserver/sso/callback/{provider.id}"]
    assert query["login_hint"] == ["alice@client-a.example"]
    assert set(query["scope"][0].split()) == {"openid", "email", "profile"}

    callback = await oidc_idp.sign_in(authorize, "alice")
    assert parse_qs(urlsplit(callback).query)["iss"] == [oidc_idp.issuer]
    response = await client.get(callback)

    assert response.status_code == 303, response.text[:500]
    assert response.headers["location"] == "/members"
    login = await live_session_of(db, client)
    assert login is not None
    assert login.auth_method == "sso"
    assert login.second_factor_done
    assert login.org_id == client_a.id
    user = await db.scalar(select(User).where(User.email == "alice@client-a.example"))
    assert login.user_id == user.id
    assert user.name == "Alice Martin"
    assert user.password_hash is None
    membership = await membership_of(db, org=client_a, user_id=user.id)
    assert membership is not None
    assert membership.roles == {Role.SIGNATORY}
    identity = await db.scalar(select(ExternalIdentity))
    assert (identity.provider_id, identity.subject, identity.user_id) == (provider.id, "alice", user.id)
    assert identity.last_login_at is not None
    assert (await tags(db))[-4:] == ["user:created", "user:sso_linked", "membership:created", "user:logged_in"]


async def test_a_second_login_reuses_the_linked_identity(client, browsers, db, provider, oidc_idp):
    first = await sso_login(client, oidc_idp, provider, "alice")
    assert first.status_code == 303
    identity = await db.scalar(select(ExternalIdentity))
    first_seen = identity.last_login_at

    again = browsers()
    second = await sso_login(again, oidc_idp, provider, "alice")

    assert second.status_code == 303, second.text[:500]
    assert (await live_session_of(db, again)).auth_method == "sso"
    assert await count(db, User) == 1
    assert await count(db, Membership) == 1
    assert await count(db, ExternalIdentity) == 1
    identity = await db.scalar(select(ExternalIdentity).execution_options(populate_existing=True))
    assert identity.last_login_at > first_seen
    assert (await tags(db)).count("user:logged_in") == 2


async def test_an_existing_member_is_linked_by_email_on_first_login(client, db, world, provider, oidc_idp,
                                                                  client_a):
    carol = await world.person(client_a, Role.ADMIN, email="carol@client-a.example")

    response = await sso_login(client, oidc_idp, provider, "carol@client-a.example")

    assert response.status_code == 303, response.text[:500]
    assert await count(db, User) == 1
    assert await count(db, Membership) == 1
    identity = await db.scalar(select(ExternalIdentity))
    assert identity.user_id == carol.user_id
    membership = await membership_of(db, org=client_a, user_id=carol.user_id)
    assert membership.roles == {Role.ADMIN}  # the default role is only for new members


async def test_the_next_page_must_be_on_the_portal(client, provider, oidc_idp):
    response = await sso_login(client, oidc_idp, provider, "alice", next="//evil.example/x")
    assert response.status_code == 303
    assert response.headers["location"] == "/"


# ---------------------------------------------------------------- the issuer and the state

async def test_a_forged_iss_is_refused_and_no_session_is_made(client, db, provider, oidc_idp):
    callback = await oidc_idp.sign_in(await start(client, provider), "alice")

    forged = await client.get(with_query(callback, iss="https://attacker.example"))

    refused(forged, "different identity provider")
    assert await live_session_of(db, client) is None
    assert await count(db, User) == 0
    assert await count(db, LoginSession) == 0
    # The attempt is used up: the genuine answer cannot be replayed after it.
    refused(await client.get(callback), "not valid any more")
    assert await count(db, LoginSession) == 0


async def test_a_missing_iss_is_refused_when_the_provider_sends_it(client, db, provider, oidc_idp):
    assert provider.metadata_json["authorization_response_iss_parameter_supported"] is True
    callback = await oidc_idp.sign_in(await start(client, provider), "alice")

    response = await client.get(with_query(callback, iss=None))

    refused(response, "did not say who sent it")
    assert await count(db, LoginSession) == 0


async def test_a_state_issued_for_another_provider_is_refused(client, db, world, settings, provider, oidc_idp):
    other_org = await world.client_org("Client B")
    other = await oidc_idp.configure(db, other_org, settings, domains="client-b.example")
    callback = await oidc_idp.sign_in(await start(client, provider), "bob@client-b.example")
    # Same IdP, so the iss matches; only the state says the answer belongs to the first provider.
    mixed_up = callback.replace(f"/sso/callback/{provider.id}", f"/sso/callback/{other.id}")

    refused(await client.get(mixed_up), "not valid any more")
    assert await count(db, LoginSession) == 0
    assert await count(db, User) == 0


async def test_a_callback_in_another_browser_is_refused(client, browsers, db, provider, oidc_idp):
    callback = await oidc_idp.sign_in(await start(client, provider), "alice")
    refused(await browsers().get(callback), "not valid any more")
    assert await count(db, LoginSession) == 0


async def test_a_used_callback_cannot_be_replayed(client, db, provider, oidc_idp):
    callback = await oidc_idp.sign_in(await start(client, provider), "alice")
    assert (await client.get(callback)).status_code == 303
    refused(await client.get(callback), "not valid any more")
    assert await count(db, LoginSession) == 1


async def test_an_error_from_the_provider_is_shown(client, db, provider, oidc_idp):
    callback = await oidc_idp.sign_in(await start(client, provider), "alice", abort=True)
    assert "error=access_denied" in callback
    refused(await client.get(callback), "did not sign you in (access_denied)")
    assert await count(db, User) == 0


async def test_unknown_or_disabled_providers_cannot_start(client, db, provider):
    assert (await client.get("/sso/start/not-a-uuid")).status_code == 404
    provider.enabled = False
    await commit_and_run_jobs(db)
    assert (await client.get(f"/sso/start/{provider.id}")).status_code == 404
    refused(await client.get(f"/sso/callback/{provider.id}?code=x&state=y"), "not available")


# ---------------------------------------------------------------- who may come in

async def test_an_unverified_email_is_refused_and_audited(client, db, world, provider, oidc_idp, client_a):
    carol = await world.person(client_a, Role.MEMBER, email="carol@client-a.example")

    response = await sso_login(client, oidc_idp, provider, "unverified:carol@client-a.example")

    refused(response, "has not verified your email address")
    assert await count(db, ExternalIdentity) == 0
    assert await count(db, LoginSession) == 0
    failed = await db.scalar(select(AuditEvent).where(AuditEvent.tag == "user:sso_failed"))
    assert failed.actor_id == carol.user_id
    assert failed.org_id == client_a.id
    assert failed.data == {"provider_id": str(provider.id), "reason": "email_not_verified"}


async def test_an_email_outside_the_providers_domains_is_refused(client, db, provider, oidc_idp):
    refused(await sso_login(client, oidc_idp, provider, "mallory@elsewhere.example"),
            "is not in a domain that Client A's single sign-on covers")
    assert await count(db, User) == 0


async def test_without_jit_only_members_get_in(client, browsers, db, world, settings, client_a, oidc_idp):
    provider = await oidc_idp.configure(db, client_a, settings, domains="client-a.example", jit=False)
    refused(await sso_login(client, oidc_idp, provider, "alice"), "You are not a member of Client A")
    assert await count(db, User) == 0
    assert await count(db, ExternalIdentity) == 0

    await world.person(client_a, Role.MEMBER, email="alice@client-a.example")
    assert (await sso_login(browsers(), oidc_idp, provider, "alice")).status_code == 303


async def test_an_account_of_another_organisation_is_not_taken_over(client, db, world, provider, oidc_idp):
    elsewhere = await world.client_org("Other Co")
    victim = await world.person(elsewhere, Role.ADMIN, email="dana@client-a.example")

    response = await sso_login(client, oidc_idp, provider, "dana@client-a.example")

    refused(response, "already exists but is not a member of Client A")
    assert await count(db, ExternalIdentity) == 0
    assert await count(db, LoginSession) == 0
    assert await count(db, Membership) == 1
    failed = await db.scalar(select(AuditEvent).where(AuditEvent.tag == "user:sso_failed"))
    assert failed.actor_id == victim.user_id
    assert failed.data["reason"] == "not_a_member"


async def test_once_linked_the_email_alone_does_not_sign_in(client, browsers, db, provider, oidc_idp):
    assert (await sso_login(client, oidc_idp, provider, "alice")).status_code == 303
    # Another IdP account (another sub) that claims the same address:
    response = await sso_login(browsers(), oidc_idp, provider, "alice@client-a.example")
    refused(response, "is linked to a different account at your identity provider")
    assert await count(db, ExternalIdentity) == 1
    assert await count(db, LoginSession) == 1


async def test_a_disabled_account_is_refused(client, db, world, provider, oidc_idp, client_a):
    erin = await world.person(client_a, Role.MEMBER, email="erin@client-a.example")
    user = await db.get(User, erin.user_id)
    user.disabled_at = user.created_at
    await commit_and_run_jobs(db)
    refused(await sso_login(client, oidc_idp, provider, "erin@client-a.example"), "This account is disabled")


# ---------------------------------------------------------------- the login page and enforcement

async def test_the_login_page_finds_the_provider_of_an_email_domain(db, provider):
    assert (await signin.provider_for_email(db, "Someone@Client-A.example")).id == provider.id
    assert await signin.provider_for_email(db, "someone@client-b.example") is None
    assert await signin.provider_for_email(db, "not an email") is None
    provider.enabled = False
    await commit_and_run_jobs(db)
    assert await signin.provider_for_email(db, "someone@client-a.example") is None


async def test_enforced_sso_blocks_password_logins(db, world, settings, provider, client_a):
    admin = await world.person(client_a, Role.ADMIN, email="frank@client-a.example")
    user = await db.get(User, admin.user_id)
    assert (await auth.authenticate(db, email=user.email, password=PASSWORD, ip="10.0.0.1", settings=settings)) == user

    await sso.set_enforced(db, actor=Actor.system("test"), org_id=client_a.id, enforced=True)
    await commit_and_run_jobs(db)

    with pytest.raises(InvalidInput, match="signs in with single sign-on"):
        await auth.authenticate(db, email=user.email, password=PASSWORD, ip="10.0.0.1", settings=settings)

