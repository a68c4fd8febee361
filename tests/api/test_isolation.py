"""Tenant isolation on the API: a token reads its own organisation (a vendor token also reads clients), and any
other organisation's objects answer 404 without a trace of its names, ids or people, whatever the method; nothing
of the other organisation changes. Changes (non-GET endpoints) are for a client token on its own organisation."""

from __future__ import annotations

import itertools
from typing import Any

import httpx
import pytest

from portal.accounts.roles import Role
from portal.api.openapi import openapi_document
from portal.api.registry import Endpoint
from portal.api.registry import api as registry
from tests.api.conftest import (
    PATH_PARAMETERS,
    VOCABULARY_PARAMETERS,
    TenantObjects,
    bearer,
    example_body,
    tenant_state,
)

API = "/api/v1"
WITH_PARAMS = [e for e in registry.endpoints if e.path_params]
PER_ORG = [e for e in WITH_PARAMS if "org_id" in e.path_params]
CHANGES = [e for e in registry.endpoints if e.method != "GET"]
READS_PER_ORG = [e for e in PER_ORG if e.method == "GET"]
# The vendor's own records, which a client token does not see at all (404: test_breach_api.py covers it).
VENDOR_ONLY = {"GET /incidents"}
READS_WITHOUT_PARAMS = [e for e in registry.endpoints if e.method == "GET" and not e.path_params and not e.public
                        and f"{e.method} {e.path}" not in VENDOR_ONLY]


def name(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


def test_every_endpoint_with_path_parameters_is_covered():
    """New endpoints that take other ids must teach this module how to point them at another tenant (add the
    object to ``TenantObjects`` in conftest.py)."""
    for endpoint in registry.endpoints:
        assert set(endpoint.path_params) <= PATH_PARAMETERS, \
            f"{endpoint.path}: add its parameters to the isolation tests"


# Changes without ids in the path act on the token's own creator; test_my_subscriptions.py covers each one.
CHANGES_OF_THE_CREATOR = {"PUT /me/subscriptions"}


def test_changes_are_covered():
    """Every endpoint that changes something takes a path parameter, so the tests below point it at other tenants
    (or acts only on the token's creator, with a test of its own)."""
    assert CHANGES, "the registry has no non-GET endpoints any more: are these tests still right?"
    for endpoint in CHANGES:
        assert endpoint in WITH_PARAMS or name(endpoint) in CHANGES_OF_THE_CREATOR, \
            f"{name(endpoint)}: add an isolation test for a change without path ids"


@pytest.fixture
async def two_clients(world):
    acme = await world.client_org("Acme Logistics")
    globex = await world.client_org("Globex Secretive Corp")
    await world.person(acme, Role.ADMIN, email="ada@acme.example", name="Ada Admin")
    await world.person(globex, Role.ADMIN, Role.SIGNATORY, email="gina@globex.example", name="Gina Hidden")
    return acme, globex


@pytest.fixture
async def tenants(two_clients, add_objects) -> tuple[TenantObjects, TenantObjects]:
    """Acme (the caller) and Globex (the victim), each with a webhook endpoint, a notice and its deliveries."""
    acme, globex = two_clients
    return await add_objects(acme, "Acme"), await add_objects(globex, "Globex")


def assert_no_trace(text: str, org, *secrets: str) -> None:
    for secret in (org.name, str(org.id), org.slug, *secrets):
        assert secret not in text


def victim_traces(victim: TenantObjects) -> tuple[str, ...]:
    return ("gina@globex.example", "Gina Hidden", *victim.traces)


async def call(machine: httpx.AsyncClient, endpoint: Endpoint, values: dict[str, str], plaintext: str,
               document: dict[str, Any]) -> httpx.Response:
    """``endpoint`` at ``values``, with a valid body when it takes one (so a 404 is never about the body)."""
    body = example_body(endpoint, document)
    return await machine.request(endpoint.method, endpoint.full_path.format(**values), headers=bearer(plaintext),
                                 json=body)


def mixes(params: list[str]) -> list[frozenset[str]]:
    """Every non-empty set of parameters to point at the victim (the rest stay the caller's own)."""
    return [frozenset(chosen) for size in range(1, len(params) + 1) for chosen in itertools.combinations(params, size)]


@pytest.mark.parametrize("endpoint", WITH_PARAMS, ids=name)
async def test_token_of_another_client_gets_404(engine, tenants, machine, issue_token, endpoint):
    """Another client's ids, alone or mixed with the caller's own, answer 404 and change nothing of the victim;
    the same token (every scope) does get its own objects."""
    own, victim = tenants
    document = openapi_document()
    _token, plaintext = await issue_token(own.org)  # every scope
    before = await tenant_state(engine, victim.org)

    for towards_victim in mixes([p for p in endpoint.path_params if p not in VOCABULARY_PARAMETERS]):
        values = {p: (victim if p in towards_victim else own).values[p] for p in endpoint.path_params}
        other = await call(machine, endpoint, values, plaintext, document)
        assert other.status_code == 404, (endpoint.full_path.format(**values), other.text)
        assert other.json()["error"]["code"] == "not_found"
        assert_no_trace(other.text, victim.org, *victim_traces(victim))
    assert await tenant_state(engine, victim.org) == before, "a request of another tenant changed the victim's data"

    mine = await call(machine, endpoint, own.values, plaintext, document)
    assert mine.status_code == endpoint.status, (endpoint.full_path.format(**own.values), mine.text)
    assert_no_trace(mine.text, victim.org, *victim_traces(victim))


@pytest.mark.parametrize("endpoint", PER_ORG, ids=name)
async def test_client_token_cannot_read_the_vendor(world, engine, tenants, machine, issue_token, endpoint):
    own, _victim = tenants
    vendor = await world.vendor()
    document = openapi_document()
    _token, plaintext = await issue_token(own.org)  # every scope
    before = await tenant_state(engine, own.org)
    response = await call(machine, endpoint, {**own.values, "org_id": str(vendor.id)}, plaintext, document)
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert_no_trace(response.text, vendor)
    assert await tenant_state(engine, own.org) == before


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
@pytest.mark.parametrize("endpoint", WITH_PARAMS, ids=name)
async def test_malformed_or_unknown_ids_are_404(tenants, machine, issue_token, endpoint, bad_id):
    """Each parameter (and all of them at once) malformed or unknown, the others the caller's own: 404."""
    own, _victim = tenants
    document = openapi_document()
    _token, plaintext = await issue_token(own.org)  # every scope
    for bad in mixes(endpoint.path_params):
        values = {p: bad_id if p in bad else own.values[p] for p in endpoint.path_params}
        response = await call(machine, endpoint, values, plaintext, document)
        assert response.status_code == 404, (endpoint.full_path.format(**values), response.text)
        assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", sorted(VENDOR_ONLY))
async def test_client_token_gets_404_for_the_vendors_own_records(tenants, machine, issue_token, path):
    own, victim = tenants
    _token, plaintext = await issue_token(own.org)  # every scope
    method, _, where = path.partition(" ")
    response = await machine.request(method, API + where, headers=bearer(plaintext))
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert_no_trace(response.text, victim.org, *victim_traces(victim))


@pytest.mark.parametrize("endpoint", READS_WITHOUT_PARAMS, ids=name)
async def test_client_token_reads_nothing_of_another_client(tenants, machine, issue_token, endpoint):
    """Lists and the token itself (no ids in the path) show a client token nothing of another client."""
    own, victim = tenants
    _token, plaintext = await issue_token(own.org)  # every scope
    response = await machine.get(endpoint.full_path, headers=bearer(plaintext))
    assert response.status_code == 200, response.text
    assert own.org.name in response.text or str(own.org.id) in response.text
    assert_no_trace(response.text, victim.org, *victim_traces(victim))


async def test_client_token_lists_only_its_own_organisation(two_clients, machine, issue_token):
    acme, globex = two_clients
    _token, plaintext = await issue_token(acme, "org:read")
    response = await machine.get(f"{API}/organisations", headers=bearer(plaintext))
    assert response.status_code == 200
    assert [org["id"] for org in response.json()["items"]] == [str(acme.id)]
    assert_no_trace(response.text, globex)


async def test_client_token_lists_only_its_own_notices(tenants, machine, issue_token):
    own, victim = tenants
    _token, plaintext = await issue_token(own.org, "notices:read")
    response = await machine.get(f"{API}/notices", headers=bearer(plaintext))
    assert response.status_code == 200
    assert [notice["id"] for notice in response.json()["items"]] == [str(own.notice.id)]
    for params in ({"organisation_id": str(victim.org.id)}, {"before": str(victim.notice.id)}):
        response = await machine.get(f"{API}/notices", params=params, headers=bearer(plaintext))
        assert response.status_code in {200, 400, 404}, (params, response.text)
        assert_no_trace(response.text, victim.org, *victim_traces(victim))


async def test_vendor_token_reads_every_client(world, two_clients, machine, issue_token):
    _acme, globex = two_clients
    vendor = await world.vendor()
    _token, plaintext = await issue_token(vendor, "org:read")
    listed = (await machine.get(f"{API}/organisations", headers=bearer(plaintext))).json()["items"]
    assert [org["name"] for org in listed] == ["Acme Logistics", "Globex Secretive Corp"]

    members = await machine.get(f"{API}/organisations/{globex.id}/members", headers=bearer(plaintext))
    assert members.status_code == 200
    [gina] = members.json()["items"]
    assert gina == {"id": gina["id"], "name": "Gina Hidden", "email": "gina@globex.example",
                    "roles": ["admin", "signatory"]}
    own = await machine.get(f"{API}/organisations/{vendor.id}", headers=bearer(plaintext))
    assert own.status_code == 200
    assert own.json()["kind"] == "vendor"


@pytest.mark.parametrize("endpoint", READS_PER_ORG, ids=name)
async def test_vendor_token_reads_each_client_endpoint(world, tenants, machine, issue_token, endpoint):
    """What a client reads about itself, a vendor token (every scope) reads too, without the client's secrets."""
    _own, client = tenants
    vendor = await world.vendor()
    _token, plaintext = await issue_token(vendor)  # every scope
    response = await machine.get(endpoint.full_path.format(**client.values), headers=bearer(plaintext))
    assert response.status_code == 200, response.text
    assert "whsec_" not in response.text


@pytest.mark.parametrize("endpoint", CHANGES, ids=name)
async def test_vendor_token_changes_nothing_of_a_client(world, engine, tenants, machine, issue_token, endpoint):
    """Changes are for a client token on its own organisation: a vendor token (every scope) is refused (403 where
    it may look, else 404), learns no secret, and the client's data stays as it was."""
    _own, client = tenants
    vendor = await world.vendor()
    document = openapi_document()
    _token, plaintext = await issue_token(vendor)  # every scope
    before = await tenant_state(engine, client.org)
    response = await call(machine, endpoint, client.values, plaintext, document)
    assert response.status_code in {403, 404}, response.text
    assert response.json()["error"]["code"] in {"forbidden", "not_found"}
    assert "whsec_" not in response.text
    assert await tenant_state(engine, client.org) == before
