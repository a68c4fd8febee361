"""API tokens: created per organisation with scopes, shown once, stored hashed, revocable.

Invariants:
- the plaintext token (``dpa_<prefix>_<secret>``) leaves this module once, as the return value of a create
  call; the database holds its SHA-256 and the non-secret ``dpa_<prefix>`` to recognise it in lists;
- a token belongs to one organisation and only members of that organisation with ``manage_tokens`` (or the
  command line) create, list and revoke it; another organisation's token answers 404;
- a revoked or expired token authenticates nothing; ``last_used_at`` is refreshed at most once a minute;
- creating and revoking write ``api_token:created`` / ``api_token:revoked`` audit events, never the secret.
"""

from __future__ import annotations

import datetime as dt
import secrets
import string
import uuid
from collections.abc import Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission
from portal.accounts.tokens.models import SCOPES, ApiToken
from portal.actors import Actor
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound
from portal.security import hash_token
from portal.tenancy import get_scoped, scoped

TOKEN_PREFIX = "dpa_"  # noqa: S105 - a fixed marker, not a secret
_PREFIX_ALPHABET = string.ascii_lowercase + string.digits
_PREFIX_LENGTH = 8
MAX_DAYS = 3650
# last_used_at is refreshed at most this often, so a busy integration does not write on every request.
_TOUCH_EVERY = dt.timedelta(seconds=60)


def new_token_secret() -> tuple[str, str]:
    """A fresh ``(plaintext, display prefix)`` pair."""
    prefix = TOKEN_PREFIX + "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(_PREFIX_LENGTH))
    return f"{prefix}_{secrets.token_urlsafe(32)}", prefix


def checked_scopes(values: Iterable[str]) -> list[str]:
    """The scopes named in ``values`` (sorted, without repeats); unknown or no scopes are InvalidInput."""
    chosen = {value.strip() for value in values if value.strip()}
    unknown = sorted(chosen - SCOPES.keys())
    if unknown:
        raise InvalidInput(f"Unknown scope {', '.join(repr(s) for s in unknown)}. Choose from: "
                           f"{', '.join(SCOPES)}.", fields={"scopes": "Unknown scope."})
    if not chosen:
        raise InvalidInput(f"Choose at least one scope ({', '.join(SCOPES)}).",
                           fields={"scopes": "Required."})
    return sorted(chosen)


def checked_name(raw: str) -> str:
    name = " ".join(raw.split())
    if not name:
        raise InvalidInput("Give the token a name, e.g. the tool that will use it.",
                           fields={"name": "Required."})
    if len(name) > 200:
        raise InvalidInput("The name is too long (at most 200 characters).", fields={"name": "Too long."})
    return name


def expiry_after(days: int | None, now: dt.datetime) -> dt.datetime | None:
    """``now`` plus ``days`` (None: the token does not expire); days must be 1 to ``MAX_DAYS``."""
    if days is None:
        return None
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"Expiry must be a whole number of days from 1 to {MAX_DAYS}, or empty for none.",
                           fields={"days": "Out of range."})
    return now + dt.timedelta(days=days)


def _require_manager(actor: Actor, org: Organisation) -> None:
    if actor.trusted:
        return
    if actor.org is None or actor.org.id != org.id:
        raise NotFound()
    actor.require(Permission.MANAGE_TOKENS)


async def create_token(session: AsyncSession, *, actor: Actor, org: Organisation, name: str,
                       scopes: Iterable[str], days: int | None) -> tuple[ApiToken, str]:
    """Members with ``manage_tokens`` create tokens for their own organisation; live tokens have unique names.

    Returns the stored token and its plaintext, which is never available again.
    """
    _require_manager(actor, org)
    name = checked_name(name)
    chosen = checked_scopes(scopes)
    now = utcnow()
    expires_at = expiry_after(days, now)
    if any(existing.name.lower() == name.lower() for existing in await _live_tokens(session, org=org)):
        raise InvalidInput(f"A token called {name!r} already exists. Choose another name or revoke that one.",
                           fields={"name": "Already in use."})
    plaintext, prefix = new_token_secret()
    token = ApiToken(id=uuid.uuid4(), org_id=org.id, name=name, prefix=prefix,
                     token_hash=hash_token(plaintext), scopes=chosen, created_by_id=actor.user_id,
                     created_at=now, expires_at=expires_at)
    session.add(token)
    await session.flush()
    await audit.record(session, actor=actor, tag="api_token:created", subject=token,
                       data={"name": name, "prefix": prefix, "scopes": chosen,
                             "expires_at": expires_at.isoformat() if expires_at else None})
    return token, plaintext


async def _live_tokens(session: AsyncSession, *, org: Organisation) -> list[ApiToken]:
    statement = scoped(select(ApiToken).where(ApiToken.revoked_at.is_(None)), ApiToken, org)
    return [token for token in (await session.execute(statement)).scalars() if token.is_active]


async def list_tokens(session: AsyncSession, *, actor: Actor, org: Organisation) -> list[ApiToken]:
    """The organisation's tokens, newest first, for members with ``manage_tokens``."""
    _require_manager(actor, org)
    statement = scoped(select(ApiToken), ApiToken, org).options(joinedload(ApiToken.created_by))
    rows = (await session.execute(statement.order_by(ApiToken.created_at.desc()))).scalars().all()
    return list(rows)


async def revoke_token(session: AsyncSession, *, actor: Actor, org: Organisation,
                       token_id: uuid.UUID | str) -> ApiToken:
    """Revoke one of the organisation's tokens at once; revoking a revoked token changes nothing."""
    _require_manager(actor, org)
    token = await get_scoped(session, ApiToken, token_id, org)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        await session.flush()
        await audit.record(session, actor=actor, tag="api_token:revoked", subject=token,
                           data={"name": token.name, "prefix": token.prefix})
    return token


async def create_token_for_org_slug(session: AsyncSession, *, org_slug: str, name: str, scopes: list[str],
                                    days: int | None) -> str:
    """The command line creates a token for any organisation, named by its slug; returns the plaintext."""
    org = (await session.execute(
        select(Organisation).where(Organisation.slug == org_slug.strip().lower())
    )).scalar_one_or_none()
    if org is None:
        raise NotFound(f"No organisation has the slug {org_slug!r}.")
    _token, plaintext = await create_token(session, actor=Actor.system("cli", org=org), org=org, name=name,
                                           scopes=scopes, days=days)
    return plaintext


async def authenticate(session: AsyncSession, plaintext: str) -> ApiToken | None:
    """The token with this plaintext (live or not) with its organisation, recording its use; else None."""
    token_hash = hash_token(plaintext)
    now = utcnow()
    # Write first: on SQLite a transaction that reads and then writes can be refused its write lock.
    await session.execute(
        update(ApiToken)
        .where(ApiToken.token_hash == token_hash, ApiToken.revoked_at.is_(None),
               or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
               or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < now - _TOUCH_EVERY))
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    return (await session.execute(
        select(ApiToken).where(ApiToken.token_hash == token_hash).options(joinedload(ApiToken.org))
        .execution_options(populate_existing=True)
    )).scalar_one_or_none()
