"""Tenant isolation on the API: a token reads its own organisation (a vendor token also reads clients), and any
other organisation answers 404 without a trace of its names, ids or people."""

from __future__ import annotations

import pytest

from portal.accounts.roles import Role
from portal.api.registry import api as registry
from tests.api.conftest import bearer

API = "/api/v1"
PER_ORG = [e for e in registry.endpoints if "org_id" in e.path_params]


def test_every_endpoint_with_path_parameters_is_covered():
    """New endpoints that take other ids must teach this module how to point them at another tenant."""
    known = {"org_id"}
    for endpoint in registry.endpoints:
        assert set(endpoint.path_params) <= known, f"{endpoint.path}: add its parameters to the isolation tests"


@pytest.fixture
async def two_clients(world):
    acme = await world.client_org("Acme Logistics")
    globex = await world.client_org("Globex Secretive Corp")
    await world.person(acme, Role.ADMIN, email="ada@acme.example", name="Ada Admin")
    await world.person(globex, Role.ADMIN, Role.SIGNATORY, email="gina@globex.example", name="Gina Hidden")
    return acme, globex


def assert_no_trace(text: str, org, *secrets: str) -> None:
    for secret in (org.name, str(org.id), org.slug, *secrets):
        assert secret not in text


@pytest.mark.parametrize("endpoint", PER_ORG, ids=lambda e: f"{e.method} {e.path}")
async def test_token_of_another_client_gets_404(two_clients, machine, issue_token, endpoint):
    acme, globex = two_clients
    _token, plaintext = await issue_token(acme, "org:read", "audit:read")
    own = await machine.request(endpoint.method, endpoint.full_path.format(org_id=acme.id),
                                headers=bearer(plaintext))
    assert own.status_code == 200
    assert_no_trace(own.text, globex, "gina@globex.example", "Gina Hidden")

    other = await machine.request(endpoint.method, endpoint.full_path.format(org_id=globex.id),
                                  headers=bearer(plaintext))
    assert other.status_code == 404
    assert other.json()["error"]["code"] == "not_found"
    assert_no_trace(other.text, globex, "gina@globex.example", "Gina Hidden")


@pytest.mark.parametrize("endpoint", PER_ORG, ids=lambda e: f"{e.method} {e.path}")
async def test_client_token_cannot_read_the_vendor(world, two_clients, machine, issue_token, endpoint):
    acme, _globex = two_clients
    vendor = await world.vendor()
    _token, plaintext = await issue_token(acme, "org:read")
    response = await machine.request(endpoint.method, endpoint.full_path.format(org_id=vendor.id),
                                     headers=bearer(plaintext))
    assert response.status_code == 404
    assert_no_trace(response.text, vendor)


@pytest.mark.parametrize("org_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
async def test_malformed_or_unknown_ids_are_404(two_clients, machine, issue_token, org_id):
    acme, _globex = two_clients
    _token, plaintext = await issue_token(acme, "org:read")
    for endpoint in PER_ORG:
        response = await machine.request(endpoint.method, endpoint.full_path.format(org_id=org_id),
                                         headers=bearer(plaintext))
        assert response.status_code == 404


async def test_client_token_lists_only_its_own_organisation(two_clients, machine, issue_token):
    acme, globex = two_clients
    _token, plaintext = await issue_token(acme, "org:read")
    response = await machine.get(f"{API}/organisations", headers=bearer(plaintext))
    assert response.status_code == 200
    assert [org["id"] for org in response.json()["items"]] == [str(acme.id)]
    assert_no_trace(response.text, globex)


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
