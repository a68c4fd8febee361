"""The OpenAPI document is true: it lists exactly the mounted /api/v1 routes and the registry's endpoints (every
method, declared success status and request body), and real responses, successes and errors, match it."""

from __future__ import annotations

import re
from typing import Any

from jsonschema import Draft202012Validator
from starlette.routing import Mount, Route

from portal.accounts.roles import Role
from portal.api.registry import Endpoint
from portal.api.registry import api as registry
from tests.api.conftest import ERROR_REF, PATH_PARAMETERS, bearer, check_schema, example_body

API = "/api/v1"
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


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
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item
            if method in METHODS}


def operations(document: dict[str, Any]) -> list[tuple[Endpoint, dict[str, Any]]]:
    """Each documented operation with the registry's endpoint it documents."""
    registered = {(e.method, e.full_path): e for e in registry.endpoints}
    return [(registered[(method.upper(), path)], operation) for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS]


def success_schemas(operation: dict[str, Any], endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """The documented schema of the endpoint's success body by media type (none for 204, which has no body)."""
    response = operation["responses"][str(endpoint.status)]
    if endpoint.status == 204:
        assert "content" not in response
        return {}
    return {media_type: content["schema"] for media_type, content in response["content"].items()}


def check_success(document: dict[str, Any], schemas: dict[str, dict[str, Any]], response: Any) -> None:
    """``response`` is one of the documented bodies: JSON valid against its schema, or a file (``format: binary``)
    in one of the documented media types, sent as an attachment."""
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in schemas, (media_type, list(schemas))
    if schemas[media_type].get("format") == "binary":
        assert response.content
        assert response.headers["content-disposition"].startswith("attachment; filename=")
    else:
        check_schema(document, schemas[media_type], response.json())


async def test_document_lists_exactly_the_mounted_routes(app, machine):
    response = await machine.get(f"{API}/openapi.json")
    assert response.status_code == 200
    document = response.json()
    mounted = mounted_api_operations(list(app.routes))
    documented = documented_operations(document)
    registered = {(e.method, e.full_path) for e in registry.endpoints}
    assert mounted, "no /api/v1 routes are mounted"
    assert {method for method, _path in mounted} > {"GET"}, "only GET routes found: are the others still mounted?"
    assert mounted - documented == set(), "routes missing from the OpenAPI document"
    assert documented - mounted == set(), "documented operations that no route serves"
    assert registered == documented, "the document and the endpoint registry disagree"


async def test_document_is_openapi_31_with_valid_schemas(machine):
    document = (await machine.get(f"{API}/openapi.json")).json()
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"]
    assert document["info"]["version"]
    for schema in document["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)
    scopes = set(document["x-scopes"])
    assert {"org:read", "audit:read", "notices:read", "notices:write", "webhooks:write"} <= scopes
    for path, item in document["paths"].items():
        assert set(item) <= METHODS, path
    for endpoint, operation in operations(document):
        where = f"{endpoint.method} {endpoint.full_path}"
        assert operation["summary"], where
        assert operation["operationId"], where
        # The success response is exactly the declared status; 204 has no body to describe.
        assert {code for code in operation["responses"] if code.startswith("2")} == {str(endpoint.status)}, where
        for schema in success_schemas(operation, endpoint).values():
            Draft202012Validator.check_schema(schema)
        # A request body is documented exactly when the endpoint reads one.
        if endpoint.request is None:
            assert "requestBody" not in operation, where
        else:
            body = operation["requestBody"]
            assert body["required"] is True, where
            Draft202012Validator.check_schema(body["content"]["application/json"]["schema"])
            assert "400" in operation["responses"], where
        path_params = re.findall(r"{(\w+)}", endpoint.full_path)
        documented_params = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
        assert sorted(documented_params) == sorted(path_params), where
        if operation["security"]:
            requirement = operation["security"][0]["bearerToken"]
            assert set(requirement) <= scopes, where
            assert requirement == ([endpoint.scope] if endpoint.scope else []), where
            assert "401" in operation["responses"], where
            if requirement:
                assert operation["x-required-scope"] == requirement[0], where
                assert "403" in operation["responses"], where
            if path_params:
                assert "404" in operation["responses"], where
        else:
            assert endpoint.public, where


async def test_openapi_is_public_and_sets_no_cookie(machine):
    response = await machine.get(f"{API}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert "set-cookie" not in response.headers


async def test_every_endpoint_answers_as_documented(world, machine, issue_token, add_objects):
    """Each documented operation answers its declared status with its documented schema: reads called with a vendor
    token holding every scope, changes (which are for a client's own organisation) with a client token holding
    every scope and a valid body built from the documented request schema."""
    vendor = await world.vendor()
    client = await world.client_org("Acme Logistics")
    await world.person(vendor, Role.OWNER, email="owner@lumen.example")
    await world.person(client, Role.ADMIN, Role.SIGNATORY, email="ada@acme.example", name="Ada Admin")
    await world.person(client, Role.PRIVACY_CONTACT, email="pia@acme.example", name="Pia Privacy")
    objects = await add_objects(client, "Acme")
    _token, vendor_token = await issue_token(vendor, days=30)  # every scope
    _token, client_token = await issue_token(client, days=30)  # every scope
    values = objects.values

    document = (await machine.get(f"{API}/openapi.json")).json()
    documented = operations(document)
    for endpoint, _operation in documented:
        assert set(endpoint.path_params) <= values.keys(), \
            f"give {endpoint.path} a value for {endpoint.path_params} (see PATH_PARAMETERS in conftest.py)"
    assert set(values) == PATH_PARAMETERS
    reads = [(e, op) for e, op in documented if e.method == "GET"]
    changes = sorted(((e, op) for e, op in documented if e.method != "GET"),
                     key=lambda pair: pair[0].method == "DELETE")  # deleting last: the others use the endpoint
    checked = 0
    for (endpoint, operation), plaintext in [*((pair, vendor_token) for pair in reads),
                                             *((pair, client_token) for pair in changes)]:
        url = endpoint.full_path.format(**values)
        response = await machine.request(endpoint.method, url, headers=bearer(plaintext),
                                         json=example_body(endpoint, document))
        assert response.status_code == endpoint.status, (endpoint.method, url, response.text)
        schemas = success_schemas(operation, endpoint)
        if not schemas:
            assert response.content == b"", (endpoint.method, url)
        else:
            check_success(document, schemas, response)
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


async def test_invalid_bodies_answer_the_documented_400(world, machine, issue_token, add_objects):
    """Every endpoint that reads a body answers 400 in the error shape when the body is not what it documents."""
    document = (await machine.get(f"{API}/openapi.json")).json()
    client = await world.client_org("Acme Logistics")
    values = (await add_objects(client, "Acme")).values
    _token, plaintext = await issue_token(client)  # every scope
    with_body = [e for e in registry.endpoints if e.request is not None]
    assert with_body, "no endpoint takes a body any more: is this test still needed?"
    for endpoint in with_body:
        url = endpoint.full_path.format(**values)
        valid = example_body(endpoint, document)
        assert isinstance(valid, dict)
        for body in [b"not json", b"[]", b'{"nonsense": true}', {**valid, "unexpected": "field"}]:
            sent = {"json": body} if isinstance(body, dict) else {"content": body}
            response = await machine.request(endpoint.method, url, headers={
                **bearer(plaintext), "Content-Type": "application/json"}, **sent)
            assert response.status_code == 400, (endpoint.method, url, body, response.text)
            check_schema(document, ERROR_REF, response.json())
            assert response.json()["error"]["code"] == "invalid_input"
