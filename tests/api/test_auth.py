"""Bearer authentication on /api/v1: what a missing, wrong, revoked or expired token or scope gets."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from portal.accounts.roles import Role
from portal.accounts.tokens.models import ApiToken
from portal.accounts.tokens.service import revoke_token
from portal.actors import Actor
from portal.api.registry import api as registry
from portal.db import utcnow
from tests.api.conftest import bearer

API = "/api/v1"
AUTHENTICATED = [e for e in registry.endpoints if not e.public]


def fill(path: str, org_id: object) -> str:
    return path.replace("{org_id}", str(org_id))


def assert_rejected(response, code: str = "invalid_token") -> None:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert response.json()["error"]["code"] == code
    assert "set-cookie" not in response.headers


async def test_me_describes_the_token(world, machine, issue_token):
    client = await world.client_org("Acme Logistics")
    token, plaintext = await issue_token(client, "org:read", name="GRC sync", days=10)
    response = await machine.get(f"{API}/me", headers=bearer(plaintext))
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "GRC sync"
    assert body["prefix"] == token.prefix
    assert plaintext.startswith(token.prefix + "_")
    assert body["scopes"] == ["org:read"]
    assert body["organisation"]["id"] == str(client.id)
    assert body["expires_at"] is not None
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("endpoint", AUTHENTICATED, ids=lambda e: f"{e.method} {e.path}")
async def test_missing_token_is_401_with_a_challenge(world, machine, endpoint):
    client = await world.client_org("Acme Logistics")
    response = await machine.request(endpoint.method, fill(endpoint.full_path, client.id))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="api"'
    assert response.json()["error"]["code"] == "not_authenticated"
    assert "Authorization" in response.json()["error"]["message"]
    assert "Acme" not in response.text


@pytest.mark.parametrize("header", [
    "Bearer dpa_abcdefgh_not-a-real-token",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    "dpa_abcdefgh_no-scheme",
])
async def test_invalid_token_is_401(world, machine, issue_token, header):
    client = await world.client_org("Acme Logistics")
    await issue_token(client)
    response = await machine.get(f"{API}/organisations/{client.id}", headers={"Authorization": header})
    assert_rejected(response)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]
    assert "Acme" not in response.text
    assert str(client.id) not in response.text


async def test_revoked_token_is_401(world, db, machine, issue_token):
    client = await world.client_org("Acme Logistics")
    token, plaintext = await issue_token(client)
    assert (await machine.get(f"{API}/me", headers=bearer(plaintext))).status_code == 200
    await revoke_token(db, actor=Actor.system("test"), org=client, token_id=token.id)
    await db.commit()
    response = await machine.get(f"{API}/me", headers=bearer(plaintext))
    assert_rejected(response)
    assert "revoked" in response.json()["error"]["message"]
    assert "Acme" not in response.text


async def test_expired_token_is_401(world, db, machine, issue_token):
    client = await world.client_org("Acme Logistics")
    token, plaintext = await issue_token(client, days=1)
    stored = await db.get_one(ApiToken, token.id)
    stored.expires_at = utcnow() - dt.timedelta(seconds=1)
    await db.commit()
    response = await machine.get(f"{API}/organisations/{client.id}", headers=bearer(plaintext))
    assert_rejected(response)
    assert "expired" in response.json()["error"]["message"]
    assert "Acme" not in response.text


@pytest.mark.parametrize("endpoint", [e for e in AUTHENTICATED if e.scope],
                         ids=lambda e: f"{e.method} {e.path}")
async def test_missing_scope_is_403(world, machine, issue_token, endpoint):
    client = await world.client_org("Acme Logistics")
    other_scope = next(s for s in ("org:read", "audit:read") if s != endpoint.scope)
    _token, plaintext = await issue_token(client, other_scope)
    response = await machine.request(endpoint.method, fill(endpoint.full_path, client.id),
                                     headers=bearer(plaintext))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert f'scope="{endpoint.scope}"' in response.headers["www-authenticate"]
    assert "Acme" not in response.text


async def test_last_used_is_recorded(world, db, machine, issue_token):
    client = await world.client_org("Acme Logistics")
    token, plaintext = await issue_token(client)
    assert token.last_used_at is None
    assert (await machine.get(f"{API}/me", headers=bearer(plaintext))).status_code == 200
    first = (await db.execute(select(ApiToken.last_used_at).where(ApiToken.id == token.id))).scalar_one()
    await db.commit()
    assert first is not None
    assert first <= utcnow()

    # Within the minute a second call does not write again; after it, it does.
    assert (await machine.get(f"{API}/me", headers=bearer(plaintext))).status_code == 200
    again = (await db.execute(select(ApiToken.last_used_at).where(ApiToken.id == token.id))).scalar_one()
    assert again == first
    stored = await db.get_one(ApiToken, token.id)
    stored.last_used_at = first - dt.timedelta(minutes=5)
    await db.commit()
    assert (await machine.get(f"{API}/me", headers=bearer(plaintext))).status_code == 200
    later = (await db.execute(select(ApiToken.last_used_at).where(ApiToken.id == token.id))).scalar_one()
    await db.commit()
    assert later > first - dt.timedelta(minutes=5)


async def test_a_login_session_does_not_authenticate_the_api(world, login_as):
    client = await world.client_org("Acme Logistics")
    admin = await world.person(client, Role.ADMIN)
    browser = await login_as(admin)
    response = await browser.get(f"{API}/organisations/{client.id}")
    assert_rejected(response, code="not_authenticated")
    assert "Acme" not in response.text


async def test_unknown_api_path_is_a_json_404(machine):
    response = await machine.get(f"{API}/nothing-here")
    assert response.status_code == 404
    assert set(response.json()["error"]) >= {"code", "message"}
