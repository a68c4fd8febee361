"""The API's one list of endpoints: each handler declares method, path, summary, scope and response schema.

The Starlette routes and the OpenAPI document are both generated from ``api``, so they cannot drift apart; a
test compares the mounted routes with the document and checks real responses against the declared schemas.

Invariants:
- every endpoint except those declared ``public`` needs ``Authorization: Bearer <token>`` of a live token;
  no cookie or session is read, so there is no CSRF surface;
- a missing, unknown, expired or revoked token answers 401 with ``WWW-Authenticate: Bearer``; a token
  without the endpoint's scope answers 403; both in the one JSON error shape;
- a success is JSON, except for downloads (``download``), whose handler returns the file as a ``Response`` with
  one of the media types the endpoint declares.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from portal.accounts.tokens.models import SCOPES, ApiToken
from portal.accounts.tokens.service import authenticate
from portal.actors import Actor
from portal.errors import InvalidInput, PortalError, json_error
from portal.web import client_ip, db

PREFIX = "/api/v1"
_PATH_PARAM = re.compile(r"{([a-z_]+)}")
JSON = "application/json"
BINARY = {"type": "string", "format": "binary"}
ID_PARAM = {"type": "string", "format": "uuid"}


@dataclass(frozen=True)
class Caller:
    """Who is calling: the authenticated token and the actor services see."""

    token: ApiToken
    actor: Actor


Handler = Callable[[Request, Caller], Awaitable[Any]]
PublicHandler = Callable[[Request], Awaitable[Any]]


class TokenRejected(PortalError):
    """401 with a ``WWW-Authenticate`` challenge (RFC 6750)."""

    status = 401
    code = "invalid_token"
    default_message = "The API token is not valid."

    def __init__(self, message: str, *, challenge: str, code: str = "invalid_token") -> None:
        super().__init__(message)
        self.challenge = challenge
        self.code = code


class ScopeMissing(PortalError):
    status = 403
    code = "insufficient_scope"

    def __init__(self, scope: str) -> None:
        super().__init__(f"This endpoint needs a token with the {scope!r} scope.")
        self.challenge = f'Bearer realm="api", error="insufficient_scope", scope="{scope}"'


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # below PREFIX, e.g. "/organisations/{org_id}"
    summary: str
    description: str
    scope: str | None  # None: any live token (or no token at all when public)
    public: bool
    response: dict[str, Any]  # JSON Schema of the success body
    handler: Callable[..., Awaitable[Any]]
    tag: str
    request: dict[str, Any] | None = None  # JSON Schema of the request body (POST, PUT)
    status: int = 200
    media_types: tuple[str, ...] = (JSON,)  # of the success body; other than JSON only for downloads
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # schemas of path parameters that are not ids

    @property
    def full_path(self) -> str:
        return PREFIX + self.path

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    @property
    def is_download(self) -> bool:
        """The success body is a file (``download``), not JSON."""
        return self.response == BINARY

    def param_schema(self, name: str) -> dict[str, Any]:
        return self.params.get(name, ID_PARAM)


class ApiRegistry:
    def __init__(self) -> None:
        self.endpoints: list[Endpoint] = []
        self.schemas: dict[str, dict[str, Any]] = {}

    def schema(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Declare a named component schema; returns a ``$ref`` to it."""
        self.schemas[name] = schema
        return ref(name)

    def get(self, path: str, *, summary: str, response: dict[str, Any], scope: str | None = None,
            description: str = "", tag: str = "API") -> Callable[[Handler], Handler]:
        """Register a token-authenticated GET endpoint."""
        return self.operation("GET", path, summary=summary, response=response, scope=scope,
                              description=description, tag=tag)

    def download(self, path: str, *, summary: str, media_types: Iterable[str], scope: str | None = None,
                 params: dict[str, dict[str, Any]] | None = None, description: str = "",
                 tag: str = "API") -> Callable[[Handler], Handler]:
        """Register a token-authenticated GET endpoint whose handler returns the file itself as a ``Response``
        with one of ``media_types``; ``params`` gives the schemas of path parameters that are not ids."""
        return self.operation("GET", path, summary=summary, response=BINARY, scope=scope, description=description,
                              tag=tag, media_types=tuple(sorted(set(media_types))), params=params)

    def operation(self, method: str, path: str, *, summary: str, response: dict[str, Any],
                  scope: str | None = None, request: dict[str, Any] | None = None, status: int = 200,
                  description: str = "", tag: str = "API", media_types: tuple[str, ...] = (JSON,),
                  params: dict[str, dict[str, Any]] | None = None) -> Callable[[Handler], Handler]:
        """Register a token-authenticated endpoint; ``request`` documents the JSON body the handler reads
        (with ``json_body``), ``status`` the success status (201 for creations, 204 without body)."""
        if scope is not None and scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")

        def register(handler: Handler) -> Handler:
            self._add(Endpoint(method, path, summary, description, scope, False, response, handler, tag,
                               request, status, media_types, dict(params or {})))
            return handler

        return register

    def public_get(self, path: str, *, summary: str, response: dict[str, Any], description: str = "",
                   tag: str = "API") -> Callable[[PublicHandler], PublicHandler]:
        """Register a GET endpoint anyone may call."""

        def register(handler: PublicHandler) -> PublicHandler:
            self._add(Endpoint("GET", path, summary, description, None, True, response, handler, tag))
            return handler

        return register

    def _add(self, endpoint: Endpoint) -> None:
        if any(e.method == endpoint.method and e.path == endpoint.path for e in self.endpoints):
            raise ValueError(f"{endpoint.method} {endpoint.path} is registered twice")
        if unknown := set(endpoint.params) - set(endpoint.path_params):
            raise ValueError(f"{endpoint.path} has no path parameter {', '.join(sorted(unknown))}")
        self.endpoints.append(endpoint)

    def routes(self) -> list[Route]:
        return [Route(e.full_path, _endpoint_app(e), methods=[e.method], name=f"api:{e.operation_id}")
                for e in self.endpoints]


async def json_body(request: Request, *, fields: Iterable[str] | None = None) -> dict[str, Any]:
    """The request's JSON object, or a 400 ``invalid_input`` error saying what is wrong with it (including, when
    ``fields`` names the allowed ones, any other field)."""
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("The request body must be JSON.") from None
    if not isinstance(body, dict):
        raise InvalidInput("The request body must be a JSON object.")
    unknown = sorted(set(body) - set(fields)) if fields is not None else []
    if unknown:
        raise InvalidInput(f"Unknown field {', '.join(repr(k) for k in unknown)}.",
                           fields={k: "Unknown field." for k in unknown})
    return body


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _endpoint_app(endpoint: Endpoint) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        try:
            if endpoint.public:
                body = await endpoint.handler(request)
            else:
                caller = await _authenticate(request, endpoint.scope)
                body = await endpoint.handler(request, caller)
        except (TokenRejected, ScopeMissing) as exc:
            response = json_error(exc.status, exc.code, exc.message)
            response.headers["WWW-Authenticate"] = exc.challenge
            return response
        if endpoint.status == 204:
            return Response(status_code=204, headers={"Cache-Control": "no-store"})
        if endpoint.is_download:
            if not isinstance(body, Response):
                raise TypeError(f"{endpoint.operation_id} must return the file as a Response")
            body.headers["Cache-Control"] = "no-store"
            return body
        return JSONResponse(body, status_code=endpoint.status, headers={"Cache-Control": "no-store"})

    run.__name__ = endpoint.operation_id
    return run


_INVALID = 'Bearer realm="api", error="invalid_token"'


async def _authenticate(request: Request, scope: str | None) -> Caller:
    header = request.headers.get("authorization", "")
    kind, _, credentials = header.partition(" ")
    if not header:
        raise TokenRejected("Send an API token in the Authorization header: 'Bearer <token>'.",
                            challenge='Bearer realm="api"', code="not_authenticated")
    if kind.lower() != "bearer" or not credentials.strip():
        raise TokenRejected("The Authorization header must be 'Bearer <token>'.", challenge=_INVALID)
    token = await authenticate(db(request), credentials.strip())
    if token is None:
        raise TokenRejected("The API token is not valid.", challenge=_INVALID)
    if token.revoked_at is not None:
        raise TokenRejected("The API token was revoked.", challenge=_INVALID)
    if token.expires_at is not None and token.status == "expired":
        raise TokenRejected(f"The API token expired on {token.expires_at:%Y-%m-%d %H:%M} UTC.",
                            challenge=_INVALID)
    if scope is not None and scope not in token.scopes:
        raise ScopeMissing(scope)
    actor = Actor(label=f"token:{token.name}", org=token.org, ip=client_ip(request),
                  scopes=frozenset(token.scopes), on_behalf_of=token.created_by_id)
    return Caller(token=token, actor=actor)


api = ApiRegistry()
