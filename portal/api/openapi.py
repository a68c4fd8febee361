"""The OpenAPI 3.1 document, generated from the endpoint registry (and served by it)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from portal.accounts.tokens.models import SCOPES
from portal.api.registry import PREFIX, ApiRegistry, Endpoint, api

ERROR = api.schema("Error", {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "additionalProperties": False,
        "properties": {
            "code": {"type": "string", "description": "Stable machine-readable code, e.g. `invalid_token`."},
            "message": {"type": "string", "description": "What went wrong, for people."},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}},
        },
    }},
})

OPENAPI_DOCUMENT = api.schema("OpenAPIDocument", {
    "type": "object",
    "required": ["openapi", "info", "paths"],
    "properties": {
        "openapi": {"type": "string"},
        "info": {"type": "object"},
        "paths": {"type": "object"},
        "components": {"type": "object"},
    },
})

_ERRORS = {
    "401": "No token, or one that is unknown, expired or revoked.",
    "403": "The token lacks the scope this endpoint needs.",
    "404": "Not found, or not visible to this token.",
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR}}}


def _success(endpoint: Endpoint) -> dict[str, Any]:
    if endpoint.status == 204:
        return {"description": "Done"}
    response: dict[str, Any] = {"description": "OK", "content": {
        media_type: {"schema": endpoint.response} for media_type in endpoint.media_types}}
    if endpoint.is_download:
        response["description"] = "The file, in one of these media types."
        response["headers"] = {"Content-Disposition": {
            "description": "`attachment; filename=\"...\"`: the file's name.", "schema": {"type": "string"}}}
    return response


def _operation(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
        "responses": {str(endpoint.status): _success(endpoint)},
    }
    if endpoint.request is not None:
        operation["requestBody"] = {"required": True,
                                    "content": {"application/json": {"schema": endpoint.request}}}
        operation["responses"]["400"] = _error_response("The body is not valid; `fields` says where.")
    if endpoint.description:
        operation["description"] = endpoint.description
    if endpoint.path_params:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": endpoint.param_schema(name)}
            for name in endpoint.path_params
        ]
    if endpoint.public:
        operation["security"] = []
        return operation
    operation["security"] = [{"bearerToken": [endpoint.scope] if endpoint.scope else []}]
    operation["responses"]["401"] = _error_response(_ERRORS["401"])
    if endpoint.scope:
        operation["x-required-scope"] = endpoint.scope
        operation["responses"]["403"] = _error_response(_ERRORS["403"])
    if endpoint.path_params:
        operation["responses"]["404"] = _error_response(_ERRORS["404"])
    return operation


def openapi_document(registry: ApiRegistry = api) -> dict[str, Any]:
    """The OpenAPI 3.1 description of every endpoint in ``registry``."""
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in registry.endpoints:
        paths.setdefault(endpoint.full_path, {})[endpoint.method.lower()] = _operation(endpoint)
    scopes = "\n".join(f"- `{name}`: {text}" for name, text in SCOPES.items())
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "DPA portal API",
            "version": PREFIX.rsplit("/", 1)[1],
            "description": (
                "Read-only access for an organisation's own tools. Create a token under Settings, API tokens "
                "(or with `portal token create`) and send it as `Authorization: Bearer <token>`. Errors have "
                "one shape: `{\"error\": {\"code\": ..., \"message\": ...}}`.\n\nScopes:\n" + scopes
            ),
        },
        "paths": paths,
        "components": {
            "schemas": dict(registry.schemas),
            "securitySchemes": {"bearerToken": {
                "type": "http", "scheme": "bearer",
                "description": "An API token of one organisation. Scopes:\n" + scopes,
            }},
        },
        "x-scopes": dict(SCOPES),
    }


@api.public_get("/openapi.json", summary="This OpenAPI document", response=OPENAPI_DOCUMENT, tag="Meta")
async def get_openapi(request: Request) -> dict[str, Any]:
    return openapi_document()

