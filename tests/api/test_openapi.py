"""The OpenAPI document is true: it lists exactly the mounted /api/v1 routes, and real responses match it."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from starlette.routing import Mount, Route

from portal.accounts.roles import Role
from tests.api.conftest import ERROR_REF, bearer, check_schema

API = "/api/v1"


def mounted_api_operations(routes: list[Any], prefix: str = "") -> set[tuple[str, str]]:
    """(METHOD, path) for every Starlette route under /api/v1, convertors stripped, HEAD implied by GET."""
    found: set[tuple[str, str]] = set()
    for route in routes:
        if isinstance(route, Mount):
            found |= mounted_api_operations(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            path = re.sub(r"{(\w+)(:\w+)?}", r"{\1}", prefix + route.path)
            if path == API or path.startswith(API + "/"):
                found |= {(method, path) for method in (route.methods or {"GET"}) if method != "HEAD"}
    return found


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    methods = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in methods}


async def test_document_lists_exactly_the_mounted_routes(app, machine):
    response = await machine.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    mounted = mounted_api_operations(list(app.routes))
    documented = documented_operations(document)
    assert mounted, "no /api/v1 routes are mounted"
    assert mounted - documented == set(), "routes missing from the OpenAPI document"
    assert documented - mounted == set(), "documented operations that no route serves"


async def test_document_is_openapi_31_with_valid_schemas(machine):
    document = (await machine.get(f"{API}/openapi.json")).json()
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"]
    assert document["info"]["version"]
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    scopes = set(document["x-scopes"])
    assert {"org:read", "audit:read"} <= scopes
    for path, item in document["paths"].items():
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation["summary"], where
            assert operation["operationId"], where
            Draft202012Validator.check_schema(operation["responses"]["200"]["content"]["application/json"]["schema"])
            for name in re.findall(r"{(\w+)}", path):
                assert name in {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}, where
            if operation["security"]:
                requirement = operation["security"][0]["bearerToken"]
                assert set(requirement) <= scopes, where
                assert "401" in operation["responses"], where
                if requirement:
                    assert operation["x-required-scope"] == requirement[0], where
                    assert "403" in operation["responses"], where


async def test_openapi_is_public_and_sets_no_cookie(machine):
    response = await machine.get(f"{API}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "set-cookie" not in response.headers


async def test_every_endpoint_answers_as_documented(world, machine, issue_token):
    """Each documented operation, called with a vendor token holding every scope, returns its documented schema."""
    vendor = await world.vendor()
    client = await world.client_org("Acme Logistics")
    await world.person(vendor, Role.OWNER, email="owner@lumen.example")
    await world.person(client, Role.ADMIN, Role.SIGNATORY, email="ada@acme.example", name="Ada Admin")
    await world.person(client, Role.PRIVACY_CONTACT, email="pia@acme.example", name="Pia Privacy")
    _token, plaintext = await issue_token(vendor, "org:read", "audit:read", days=30)
    values = {"org_id": str(client.id)}

    document = (await machine.get(f"{API}/openapi.json")).json()
    checked = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            params = re.findall(r"{(\w+)}", path)
            assert set(params) <= values.keys(), f"give {path} a value for {params} in this test"
            url = path.format(**values)
            response = await machine.request(method.upper(), url, headers=bearer(plaintext))
            assert response.status_code == 200, (method, url, response.text)
            schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
            check_schema(document, schema, response.json())
            checked += 1
    assert checked == len(documented_operations(document))


async def test_error_responses_match_the_error_schema(world, machine, issue_token):
    document = (await machine.get(f"{API}/openapi.json")).json()
    client = await world.client_org("Acme Logistics")
    _token, plaintext = await issue_token(client, "audit:read")
    for response in [
        await machine.get(f"{API}/me"),
        await machine.get(f"{API}/organisations", headers=bearer(plaintext)),
        await machine.get(f"{API}/organisations/not-an-id", headers=bearer("dpa_nope_nope")),
        await machine.get(f"{API}/no-such-endpoint"),
    ]:
        assert response.status_code >= 400
        check_schema(document, ERROR_REF, response.json())
