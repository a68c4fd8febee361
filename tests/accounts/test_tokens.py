"""API token pages: create (shown once, stored hashed), list, revoke; bad input, CSRF, permissions, tenants."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import func, select

from portal.accounts.roles import Role
from portal.accounts.tokens.models import ApiToken
from portal.audit.models import AuditEvent
from tests.conftest import post_form

PAGE = "/settings/tokens"
TOKEN_RE = re.compile(r"dpa_[a-z0-9]{8}_[A-Za-z0-9_-]{40,}")


async def count(db, model) -> int:
    total = (await db.execute(select(func.count()).select_from(model))).scalar_one()
    await db.commit()
    return int(total)


async def stored_tokens(db) -> list[ApiToken]:
    rows = list((await db.execute(select(ApiToken).execution_options(populate_existing=True))).scalars())
    await db.commit()
    return rows


@pytest.fixture
async def acme(world):
    return await world.client_org("Acme Logistics")


@pytest.fixture
async def acme_admin(world, acme):
    return await world.person(acme, Role.ADMIN, email="ada@acme.example", name="Ada Admin")


async def test_empty_state_explains_what_to_do(acme_admin, login_as):
    browser = await login_as(acme_admin)
    page = await browser.get(PAGE)
    assert page.status_code == 200
    assert "No API tokens yet" in page.text
    assert 'name="scopes" value="org:read"' in page.text
    assert 'name="scopes" value="audit:read"' in page.text


async def test_create_shows_the_token_once_and_stores_only_its_hash(acme_admin, login_as, db):
    browser = await login_as(acme_admin)
    created = await post_form(browser, PAGE, {"name": "GRC sync", "scopes": ["org:read"], "days": "30"})
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    plaintext = TOKEN_RE.search(created.text).group(0)

    [token] = await stored_tokens(db)
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext.startswith(token.prefix + "_")
    assert len(token.prefix) == 12
    assert token.scopes == ["org:read"]
    assert token.org_id == acme_admin.org_id
    assert token.created_by_id == acme_admin.user_id
    assert token.expires_at is not None

    # It works on the API ...
    me = await browser.get("/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"})
    assert me.status_code == 200
    assert me.json()["name"] == "GRC sync"

    # ... and the list shows it without the secret.
    listing = await browser.get(PAGE)
    assert "GRC sync" in listing.text
    assert token.prefix in listing.text
    assert plaintext not in listing.text
    assert plaintext.split("_", 2)[2] not in listing.text
    assert "Ada Admin" in listing.text
    assert "Active" in listing.text

    event = (await db.execute(select(AuditEvent).where(AuditEvent.tag == "api_token:created"))).scalar_one()
    await db.commit()
    assert event.subject_id == str(token.id)
    assert event.data["scopes"] == ["org:read"]
    assert plaintext not in str(event.data)
    assert token.token_hash not in str(event.data)


async def test_revoke_stops_the_token(acme_admin, login_as, db):
    browser = await login_as(acme_admin)
    created = await post_form(browser, PAGE, {"name": "GRC sync", "scopes": ["org:read", "audit:read"]})
    plaintext = TOKEN_RE.search(created.text).group(0)
    [token] = await stored_tokens(db)

    revoked = await post_form(browser, f"{PAGE}/{token.id}/revoke")
    assert revoked.status_code == 303
    assert revoked.headers["location"] == PAGE
    [token] = await stored_tokens(db)
    assert token.revoked_at is not None
    listing = await browser.get(PAGE)
    assert "Revoked" in listing.text
    assert "revoked: it no longer works" in listing.text

    api = await browser.get("/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"})
    assert api.status_code == 401

    # Revoking again changes nothing and records nothing new.
    again = await post_form(browser, f"{PAGE}/{token.id}/revoke")
    assert again.status_code == 303
    events = (await db.execute(select(AuditEvent.tag).where(AuditEvent.tag == "api_token:revoked"))).all()
    await db.commit()
    assert len(events) == 1


@pytest.mark.parametrize(("data", "message"), [
    ({"name": "", "scopes": ["org:read"], "days": "5"}, "Give the token a name"),
    ({"name": "GRC sync", "days": "5"}, "Choose at least one scope"),
    ({"name": "GRC sync", "scopes": ["org:write"], "days": "5"}, "Unknown scope"),
    ({"name": "GRC sync", "scopes": ["org:read"], "days": "soon"}, "whole number of days"),
    ({"name": "GRC sync", "scopes": ["org:read"], "days": "0"}, "whole number of days"),
    ({"name": "GRC sync", "scopes": ["org:read"], "days": "99999"}, "whole number of days"),
    ({"name": "x" * 201, "scopes": ["org:read"], "days": "5"}, "too long"),
])
async def test_bad_input_keeps_the_form_and_changes_nothing(acme_admin, login_as, db, data, message):
    browser = await login_as(acme_admin)
    events_before = await count(db, AuditEvent)
    response = await post_form(browser, PAGE, data)
    assert response.status_code == 400
    assert message in response.text
    assert 'aria-invalid="true"' in response.text
    if data["name"]:
        assert f'value="{data["name"]}"' in response.text
    assert f'value="{data["days"]}"' in response.text
    for scope in data.get("scopes", []):
        if scope == "org:read":
            assert 'value="org:read" checked' in response.text
    assert await count(db, ApiToken) == 0
    assert await count(db, AuditEvent) == events_before


async def test_live_token_names_are_unique(acme_admin, login_as, db):
    browser = await login_as(acme_admin)
    assert (await post_form(browser, PAGE, {"name": "GRC sync", "scopes": ["org:read"]})).status_code == 200
    duplicate = await post_form(browser, PAGE, {"name": "grc SYNC", "scopes": ["org:read"]})
    assert duplicate.status_code == 400
    assert "already exists" in duplicate.text
    assert await count(db, ApiToken) == 1


async def test_forms_without_csrf_token_are_refused(acme_admin, login_as, db):
    browser = await login_as(acme_admin)
    await browser.get(PAGE)
    refused = await browser.post(PAGE, data={"name": "GRC sync", "scopes": ["org:read"]})
    assert refused.status_code == 403
    assert await count(db, ApiToken) == 0

    await post_form(browser, PAGE, {"name": "GRC sync", "scopes": ["org:read"]})
    [token] = await stored_tokens(db)
    refused = await browser.post(f"{PAGE}/{token.id}/revoke")
    assert refused.status_code == 403
    [token] = await stored_tokens(db)
    assert token.revoked_at is None


async def test_member_of_another_org_cannot_see_or_revoke_the_token(world, acme_admin, login_as, db):
    globex = await world.client_org("Globex Corp")
    intruder = await world.person(globex, Role.ADMIN)
    owner = await login_as(acme_admin)
    await post_form(owner, PAGE, {"name": "Acme GRC secret name", "scopes": ["org:read"]})
    [token] = await stored_tokens(db)

    browser = await login_as(intruder)
    listing = await browser.get(PAGE)
    assert listing.status_code == 200
    assert "Acme GRC secret name" not in listing.text
    assert token.prefix not in listing.text
    response = await post_form(browser, f"{PAGE}/{token.id}/revoke")
    assert response.status_code == 404
    assert "Acme" not in response.text
    [token] = await stored_tokens(db)
    assert token.revoked_at is None


async def test_vendor_staff_cannot_revoke_a_client_token_from_the_page(world, acme_admin, login_as, db):
    vendor = await world.vendor()
    owner = await world.person(vendor, Role.OWNER)
    await post_form(await login_as(acme_admin), PAGE, {"name": "GRC sync", "scopes": ["org:read"]})
    [token] = await stored_tokens(db)
    response = await post_form(await login_as(owner), f"{PAGE}/{token.id}/revoke")
    assert response.status_code == 404
    [token] = await stored_tokens(db)
    assert token.revoked_at is None


async def test_vendor_owner_manages_vendor_tokens(world, login_as, db):
    vendor = await world.vendor()
    owner = await world.person(vendor, Role.OWNER, name="Olga Owner")
    browser = await login_as(owner)
    created = await post_form(browser, PAGE, {"name": "Status board", "scopes": ["org:read"]})
    assert created.status_code == 200
    [token] = await stored_tokens(db)
    assert token.org_id == vendor.id


@pytest.mark.parametrize("role", [Role.SIGNATORY, Role.MEMBER, Role.PRIVACY_CONTACT])
async def test_members_without_manage_tokens_get_403(world, acme, acme_admin, login_as, db, role):
    acme_admin_client = await login_as(acme_admin)
    await post_form(acme_admin_client, PAGE, {"name": "GRC sync", "scopes": ["org:read"]})
    [token] = await stored_tokens(db)
    member = await world.person(acme, role)
    browser = await login_as(member)
    assert (await browser.get(PAGE)).status_code == 403
    assert (await post_form(browser, PAGE, {"name": "Mine", "scopes": ["org:read"]})).status_code == 403
    assert (await post_form(browser, f"{PAGE}/{token.id}/revoke")).status_code == 403
    assert await count(db, ApiToken) == 1
    [token] = await stored_tokens(db)
    assert token.revoked_at is None


async def test_vendor_viewer_gets_403(world, login_as):
    vendor = await world.vendor()
    viewer = await world.person(vendor, Role.VIEWER)
    browser = await login_as(viewer)
    assert (await browser.get(PAGE)).status_code == 403


async def test_anonymous_visitors_are_sent_to_log_in(client):
    response = await client.get(PAGE)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
