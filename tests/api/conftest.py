"""API fixtures: tokens issued through the real service, and a client without cookies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from portal.accounts.models import Organisation
from portal.accounts.tokens.models import SCOPES, ApiToken
from portal.accounts.tokens.service import create_token
from portal.actors import Actor

IssueToken = Callable[..., Awaitable[tuple[ApiToken, str]]]


@pytest.fixture
def issue_token(world: Any) -> IssueToken:
    """``await issue_token(org, "org:read", days=None, name=None)`` gives (stored token, plaintext)."""
    count = 0

    async def issue(org: Organisation, *scopes: str, days: int | None = None,
                    name: str | None = None) -> tuple[ApiToken, str]:
        nonlocal count
        count += 1
        token, plaintext = await create_token(world.session, actor=Actor.system("test"), org=org,
                                              name=name or f"tool {count}", scopes=list(scopes or SCOPES),
                                              days=days)
        await world.commit()
        return token, plaintext

    return issue


def bearer(plaintext: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.fixture
async def machine(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A machine client: no cookies, redirects not followed."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


def check_schema(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """Validate ``instance`` against ``schema``, whose ``$ref``s point into ``document``'s components."""
    validator = Draft202012Validator({**schema, "components": document["components"]},
                                     format_checker=FormatChecker())
    validator.validate(instance)


ERROR_REF = {"$ref": "#/components/schemas/Error"}
