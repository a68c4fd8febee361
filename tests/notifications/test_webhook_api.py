"""Webhook endpoints in the API: list, create (secret once), rotate (secret once), delete; scope, bad bodies,
vendor tokens read only, other tenants 404; every answer matches the OpenAPI document."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.accounts.roles import Role
from portal.audit.models import AuditEvent
from portal.notifications.models import WebhookEndpoint
from portal.security import decrypt_field
from tests.api.conftest import bearer, check_schema
from tests.api.conftest import issue_token as issue_token  # fixtures, used by name
from tests.api.conftest import machine as machine
from tests.conftest import TEST_SECRET
from tests.notifications.webhook_support import add_endpoint
from tests.notifications.webhook_support import allow_private as allow_private
from tests.notifications.webhook_support import settings as settings

API = "/api/v1"
HOOK = "http://127.0.0.1:9/dpa-hook"


@pytest.fixture
async def acme(world):
    org = await world.client_org("Acme Logistics")
    await world.person(org, Role.ADMIN, email="ada@acme.example")
    return org


@pytest.fixture
async def acme_token(acme, issue_token):
    _token, plaintext = await issue_token(acme, "webhooks:write")
    return bearer(plaintext)


async def document(machine):
    return (await machine.get(f"{API}/openapi.json")).json()


async def stored(db) -> list[WebhookEndpoint]:
    rows = list((await db.execute(select(WebhookEndpoint).execution_options(populate_existing=True))).scalars())
    await db.commit()
    return rows


async def audit_count(db) -> int:
    total = int(await db.scalar(select(func.count()).select_from(AuditEvent)))
    await db.commit()
    return total


async def test_create_list_rotate_delete(machine, acme, acme_token, db):
    doc = await document(machine)
    base = f"{API}/organisations/{acme.id}/webhooks"

    created = await machine.post(base, json={"url": HOOK, "description": "SIEM", "topics": ["breaches"]},
                                 headers=acme_token)
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    body = created.json()
    check_schema(doc, {"$ref": "#/components/schemas/WebhookEndpointWithSecret"}, body)
    [endpoint] = await stored(db)
    assert body["id"] == str(endpoint.id) and body["enabled"] is True
    assert decrypt_field(TEST_SECRET, endpoint.secret_encrypted) == body["secret"]

    listed = await machine.get(base, headers=acme_token)
    assert listed.status_code == 200
    check_schema(doc, doc["paths"][f"{API}/organisations/{{org_id}}/webhooks"]["get"]["responses"]["200"]
                 ["content"]["application/json"]["schema"], listed.json())
    assert [e["url"] for e in listed.json()["items"]] == [HOOK]
    assert "whsec_" not in listed.text

    rotated = await machine.post(f"{base}/{endpoint.id}/rotate", headers=acme_token)
    assert rotated.status_code == 200
    check_schema(doc, {"$ref": "#/components/schemas/WebhookEndpointWithSecret"}, rotated.json())
    assert rotated.json()["secret"] != body["secret"]
    assert rotated.json()["previous_secret_valid_until"] is not None

    deleted = await machine.delete(f"{base}/{endpoint.id}", headers=acme_token)
    assert deleted.status_code == 204 and deleted.content == b""
    assert await stored(db) == []
    again = await machine.delete(f"{base}/{endpoint.id}", headers=acme_token)
    assert again.status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"url": HOOK}, "topics"),
    ({"url": HOOK, "topics": "breaches"}, "topics"),
    ({"url": 7, "topics": ["breaches"]}, "url"),
    ({"url": HOOK, "topics": ["breaches"], "secret": "whsec_mine"}, "secret"),
    ({"url": "gopher://x.example/", "topics": ["breaches"]}, "url"),
])
async def test_bad_bodies_are_400_and_change_nothing(body, field, machine, acme, acme_token, db):
    before = await audit_count(db)
    response = await machine.post(f"{API}/organisations/{acme.id}/webhooks", json=body, headers=acme_token)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_input"
    assert field in response.json()["error"]["fields"]
    check_schema(await document(machine), {"$ref": "#/components/schemas/Error"}, response.json())
    assert await stored(db) == []
    assert await audit_count(db) == before


@pytest.mark.parametrize("allow_private", [False])
async def test_a_private_target_is_refused(allow_private, machine, acme, acme_token, db):
    response = await machine.post(f"{API}/organisations/{acme.id}/webhooks",
                                  json={"url": "http://localhost:8080/x", "topics": ["dpa"]}, headers=acme_token)
    assert response.status_code == 400
    assert "public addresses" in response.json()["error"]["message"]
    assert await stored(db) == []


async def test_a_token_without_the_scope_gets_403(machine, acme, issue_token, world, settings):
    endpoint, _secret = await add_endpoint(world, settings, acme, HOOK)
    _token, plaintext = await issue_token(acme, "org:read", "notices:read")
    base = f"{API}/organisations/{acme.id}/webhooks"
    for method, url in (("GET", base), ("POST", base), ("DELETE", f"{base}/{endpoint.id}"),
                        ("POST", f"{base}/{endpoint.id}/rotate")):
        response = await machine.request(method, url, json={"url": HOOK, "topics": ["dpa"]},
                                         headers=bearer(plaintext))
        assert response.status_code == 403, (method, url)
        assert response.json()["error"]["code"] == "insufficient_scope"


async def test_another_organisations_token_gets_404_and_learns_nothing(machine, acme, issue_token, world, settings,
                                                                       db):
    endpoint, _secret = await add_endpoint(world, settings, acme, "http://127.0.0.1:9/acme-secret-hook")
    globex = await world.client_org("Globex")
    _token, plaintext = await issue_token(globex, "webhooks:write")
    before = await audit_count(db)
    base = f"{API}/organisations/{acme.id}/webhooks"
    for method, url in (("GET", base), ("POST", base), ("DELETE", f"{base}/{endpoint.id}"),
                        ("POST", f"{base}/{endpoint.id}/rotate"),
                        # its own organisation in the path does not reach the other's endpoint either
                        ("DELETE", f"{API}/organisations/{globex.id}/webhooks/{endpoint.id}"),
                        ("POST", f"{API}/organisations/{globex.id}/webhooks/{endpoint.id}/rotate")):
        response = await machine.request(method, url, json={"url": HOOK, "topics": ["dpa"]},
                                         headers=bearer(plaintext))
        assert response.status_code == 404, (method, url)
        assert "acme-secret-hook" not in response.text and "Acme" not in response.text
    no_body = await machine.post(base, content=b"not json", headers=bearer(plaintext))
    assert no_body.status_code == 404  # who may act is settled before the body is read
    for bad in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        assert (await machine.get(f"{API}/organisations/{bad}/webhooks", headers=bearer(plaintext))).status_code == 404
    assert await audit_count(db) == before
    assert len(await stored(db)) == 1


async def test_a_vendor_token_lists_a_clients_endpoints_but_changes_nothing(machine, acme, issue_token, world,
                                                                            settings, db):
    endpoint, _secret = await add_endpoint(world, settings, acme, HOOK)
    _token, plaintext = await issue_token(await world.vendor(), "webhooks:write")
    base = f"{API}/organisations/{acme.id}/webhooks"

    listed = await machine.get(base, headers=bearer(plaintext))
    assert listed.status_code == 200 and [e["id"] for e in listed.json()["items"]] == [str(endpoint.id)]
    assert "whsec_" not in listed.text
    for method, url in (("POST", base), ("DELETE", f"{base}/{endpoint.id}"), ("POST", f"{base}/{endpoint.id}/rotate")):
        response = await machine.request(method, url, json={"url": HOOK + "/v", "topics": ["dpa"]},
                                         headers=bearer(plaintext))
        assert response.status_code == 403, (method, url)
    assert [e.secret_encrypted for e in await stored(db)] == [endpoint.secret_encrypted]


async def test_every_event_type_is_documented(machine):
    schemas = (await document(machine))["components"]["schemas"]
    breach = schemas["WebhookEvent_breach_notice"]
    assert breach["properties"]["type"] == {"const": "breach.notified"}
    assert "acknowledge_url" in breach["properties"]["data"]["required"]
    assert schemas["WebhookEvent_webhook_test"]["properties"]["type"] == {"const": "webhook.test"}
