"""Identity providers of client organisations (OpenID Connect): their configuration and whether an organisation
enforces single sign-on. The login handshake with these providers is in ``signin.py``.

Invariants:
- only client organisations have identity providers; their own members with ``manage_sso`` and vendor staff
  with ``manage_sso`` configure them; someone who cannot see the organisation gets 404, and someone who can but
  lacks ``manage_sso`` gets 403;
- a provider is saved only after its issuer's discovery document was fetched and names exactly the configured
  issuer (ASVS 10.5.3); an email domain is covered by one provider at most;
- the client secret is stored encrypted and is never shown, logged or written to the audit trail;
- an organisation enforces single sign-on only while it has an enabled provider;
- every configuration change writes an audit event.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from portal import audit
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission, Role
from portal.accounts.service import client_orgs, email_domain, members, visible_org
from portal.accounts.sso.models import IdentityProvider, SSODomain
from portal.actors import Actor
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound
from portal.security import encrypt_field
from portal.settings import Settings
from portal.tenancy import get_scoped, scoped

DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_TIMEOUT = 5.0
MAX_DISCOVERY_BYTES = 256_000
MAX_DOMAINS = 20
# Roles a person may receive on their first single sign-on; administrators are promoted by hand.
JIT_ROLES = (Role.MEMBER, Role.SIGNATORY, Role.PRIVACY_CONTACT, Role.SECURITY_CONTACT)
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")


@dataclass(frozen=True)
class ProviderInput:
    """A provider form as typed; ``client_secret`` empty on an update keeps the stored secret."""

    issuer: str
    client_id: str
    client_secret: str
    domains: str
    default_role: str
    jit_enabled: bool
    enabled: bool


@dataclass(frozen=True)
class Overview:
    org: Organisation
    providers: list[IdentityProvider]
    # For the vendor organisation: every client organisation with its number of enabled providers.
    clients: list[tuple[Organisation, int]]


def callback_url(settings: Settings, provider: IdentityProvider) -> str:
    return f"{settings.base_url}/sso/callback/{provider.id}"


async def manageable_org(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str) -> Organisation:
    """``org_id`` when ``actor`` may manage its single sign-on (their own organisation or, for vendor staff,
    any); 404 for other tenants, 403 without ``manage_sso``."""
    if actor.trusted:  # the command line and the portal itself
        try:
            org = await session.get(Organisation, uuid.UUID(str(org_id)))
        except ValueError:
            org = None
        if org is None:
            raise NotFound()
        return org
    org = await visible_org(session, actor=actor, org_id=org_id)
    actor.require(Permission.MANAGE_SSO)
    return org


def _client_org(org: Organisation) -> Organisation:
    if org.is_vendor:
        raise NotFound("Single sign-on is configured per client organisation.")
    return org


async def _providers(session: AsyncSession, org: Organisation, *, enabled_only: bool = False
                     ) -> list[IdentityProvider]:
    statement = scoped(select(IdentityProvider), IdentityProvider, org).options(
        selectinload(IdentityProvider.domains)).order_by(IdentityProvider.created_at)
    if enabled_only:
        statement = statement.where(IdentityProvider.enabled.is_(True))
    return list((await session.execute(statement)).scalars())


async def overview(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str) -> Overview:
    """What the single sign-on page shows: the organisation's providers, or for the vendor, its clients."""
    org = await manageable_org(session, actor=actor, org_id=org_id)
    if not org.is_vendor:
        return Overview(org, await _providers(session, org), [])
    rows = (await session.execute(
        select(IdentityProvider.org_id, func.count()).where(IdentityProvider.enabled.is_(True))
        .group_by(IdentityProvider.org_id)
    )).all()
    counts = {org_id: int(n) for org_id, n in rows}
    clients = [(client, int(counts.get(client.id, 0)))
               for client, _members in await client_orgs(session, actor=actor)]
    return Overview(org, [], clients)


async def provider_of(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str,
                      provider_id: str) -> tuple[Organisation, IdentityProvider]:
    """One provider of an organisation ``actor`` may manage, else 404."""
    org = _client_org(await manageable_org(session, actor=actor, org_id=org_id))
    provider = await get_scoped(session, IdentityProvider, provider_id, org,
                                selectinload(IdentityProvider.domains))
    return org, provider


def _checked_issuer(raw: str, settings: Settings) -> str:
    issuer = raw.strip()
    if not issuer:
        raise InvalidInput("Issuer URL is required.", fields={"issuer": "Required."})
    if len(issuer) > 500:
        raise InvalidInput("The issuer URL is too long (at most 500 characters).", fields={"issuer": "Too long."})
    parts = urlsplit(issuer)
    allowed = {"https"} if settings.https else {"https", "http"}
    if parts.scheme not in allowed or not parts.hostname or parts.query or parts.fragment or parts.username:
        raise InvalidInput("Enter the issuer URL exactly as your identity provider publishes it, for example "
                           "https://login.example.com (https, no query or fragment).",
                           fields={"issuer": "Not an issuer URL."})
    return issuer


def _checked_domains(raw: str) -> list[str]:
    if len(raw) > 2000:
        raise InvalidInput("Enter fewer domains (at most 2,000 characters).", fields={"domains": "Too long."})
    domains: list[str] = []
    for item in re.split(r"[\s,;]+", raw.lower()):
        domain = item.strip().removeprefix("@").rstrip(".")
        if not domain:
            continue
        if not _DOMAIN.match(domain):
            raise InvalidInput(f"{domain!r} is not an email domain (write it like example.com).",
                               fields={"domains": "Not a domain."})
        if domain not in domains:
            domains.append(domain)
    if not domains:
        raise InvalidInput("Enter at least one email domain the provider covers.",
                           fields={"domains": "Required."})
    if len(domains) > MAX_DOMAINS:
        raise InvalidInput(f"Enter at most {MAX_DOMAINS} domains.", fields={"domains": "Too many."})
    return domains


def _checked_role(raw: str) -> Role:
    for role in JIT_ROLES:
        if role.value == raw:
            return role
    raise InvalidInput("Choose the role new members receive: member, signatory, privacy contact or security "
                       "contact.", fields={"default_role": "Choose a role."})


def _checked_client_id(raw: str) -> str:
    client_id = raw.strip()
    if not client_id:
        raise InvalidInput("Client ID is required.", fields={"client_id": "Required."})
    if len(client_id) > 300:
        raise InvalidInput("The client ID is too long (at most 300 characters).", fields={"client_id": "Too long."})
    return client_id


def _checked_secret(raw: str, *, required: bool) -> str:
    secret = raw.strip()
    if required and not secret:
        raise InvalidInput("Client secret is required.", fields={"client_secret": "Required."})
    if len(secret) > 500:
        raise InvalidInput("The client secret is too long (at most 500 characters).",
                           fields={"client_secret": "Too long."})
    return secret


async def discover(issuer: str, settings: Settings) -> dict[str, Any]:
    """The issuer's OpenID discovery document, refused unless it is JSON, names exactly ``issuer`` and has the
    endpoints the authorization code flow needs."""
    url = issuer.rstrip("/") + DISCOVERY_PATH
    problem = f"Could not use {issuer} as an identity provider: "
    try:
        async with httpx2.AsyncClient(timeout=DISCOVERY_TIMEOUT, follow_redirects=False) as http:
            response = await http.get(url, headers={"accept": "application/json"})
    except httpx2.TimeoutException:
        raise InvalidInput(problem + f"{url} did not answer within {DISCOVERY_TIMEOUT:.0f} seconds.",
                           fields={"issuer": "No answer."}) from None
    except httpx2.HTTPError:
        raise InvalidInput(problem + f"{url} cannot be reached. Check the issuer URL and that the portal's "
                           "server can connect to it.", fields={"issuer": "Unreachable."}) from None
    if response.status_code != 200:
        raise InvalidInput(problem + f"{url} answered HTTP {response.status_code}, not the discovery "
                           "document.", fields={"issuer": "No discovery document."})
    try:
        if len(response.content) > MAX_DISCOVERY_BYTES:
            raise ValueError("too large")
        document = response.json()
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise InvalidInput(problem + f"{url} did not answer with an OpenID discovery document (JSON).",
                           fields={"issuer": "Not a discovery document."})
    published = document.get("issuer")
    if published != issuer:
        raise InvalidInput(problem + f"its discovery document names the issuer {str(published)[:200]!r}. The "
                           "issuer must match exactly; enter the issuer your provider publishes.",
                           fields={"issuer": "Issuer mismatch."})
    schemes = {"https"} if settings.https else {"https", "http"}
    for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        value = document.get(key)
        if not isinstance(value, str) or urlsplit(value).scheme not in schemes:
            raise InvalidInput(problem + f"its discovery document has no usable {key}.",
                               fields={"issuer": "Incomplete discovery document."})
    methods = document.get("code_challenge_methods_supported")
    if isinstance(methods, list) and "S256" not in methods:
        raise InvalidInput(problem + "it does not support PKCE with S256, which the portal requires.",
                           fields={"issuer": "No PKCE."})
    return document


async def _check_domains(session: AsyncSession, org: Organisation, provider_id: uuid.UUID | None,
                         domains: list[str]) -> None:
    """Refuse domains that another provider (of this or another organisation) already covers."""
    own = {p.id for p in await _providers(session, org)}
    taken = (await session.execute(select(SSODomain).where(SSODomain.domain.in_(domains)))).scalars().all()
    for row in taken:
        if row.provider_id == provider_id:
            continue
        if row.provider_id in own:
            raise InvalidInput(f"{row.domain} is already covered by another identity provider of this "
                               "organisation.", fields={"domains": "Already covered."})
        raise InvalidInput(f"{row.domain} is already claimed by another organisation's single sign-on. If "
                           "the domain is yours, contact the vendor.", fields={"domains": "Claimed elsewhere."})


def _set_domains(provider: IdentityProvider, domains: list[str]) -> None:
    """Give ``provider`` exactly ``domains`` (already checked by ``_check_domains``)."""
    kept = [row for row in provider.domains if row.domain in domains]
    have = {row.domain for row in kept}
    provider.domains = kept + [SSODomain(domain=d, provider_id=provider.id) for d in domains if d not in have]


def _domain_race() -> InvalidInput:
    # Another organisation claimed one of the domains between the check and the write.
    return InvalidInput("One of these domains was just claimed by another organisation's single sign-on.",
                        fields={"domains": "Claimed elsewhere."})


def _described(provider: IdentityProvider) -> dict[str, Any]:
    """What the audit trail keeps of a provider (never the secret)."""
    return {"issuer": provider.issuer, "client_id": provider.client_id,
            "domains": sorted(d.domain for d in provider.domains), "default_role": provider.default_role,
            "jit_enabled": provider.jit_enabled, "enabled": provider.enabled}


async def create_provider(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str, settings: Settings,
                          data: ProviderInput) -> IdentityProvider:
    """Add an identity provider to a client organisation once its discovery document checks out."""
    org = _client_org(await manageable_org(session, actor=actor, org_id=org_id))
    issuer = _checked_issuer(data.issuer, settings)
    client_id = _checked_client_id(data.client_id)
    secret = _checked_secret(data.client_secret, required=True)
    domains = _checked_domains(data.domains)
    role = _checked_role(data.default_role)
    await _check_domains(session, org, None, domains)
    metadata = await discover(issuer, settings)
    provider = IdentityProvider(
        id=uuid.uuid4(), org_id=org.id, issuer=issuer, client_id=client_id,
        client_secret_encrypted=encrypt_field(settings.secret_key, secret), default_role=role,
        jit_enabled=data.jit_enabled, enabled=data.enabled, metadata_json=metadata, domains=[],
    )
    try:
        async with session.begin_nested():  # a refused write leaves nothing behind for the re-rendered page
            session.add(provider)
            _set_domains(provider, domains)
            await session.flush()
    except IntegrityError:
        raise _domain_race() from None
    await audit.record(session, actor=actor, tag="sso_provider:created", subject=provider,
                       data=_described(provider))
    return provider


async def _keeps_enforcement(session: AsyncSession, org: Organisation, provider: IdentityProvider) -> None:
    """An organisation that enforces single sign-on keeps at least one enabled provider."""
    if not org.sso_enforced:
        return
    others = [p for p in await _providers(session, org, enabled_only=True) if p.id != provider.id]
    if not others:
        raise InvalidInput(f"{org.name} enforces single sign-on, and this is its only enabled identity "
                           "provider. Stop enforcing single sign-on first, or its people could not log in at all.")


async def update_provider(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str, provider_id: str,
                          settings: Settings, data: ProviderInput) -> IdentityProvider:
    """Change a provider; discovery runs again, and an empty secret keeps the stored one."""
    org, provider = await provider_of(session, actor=actor, org_id=org_id, provider_id=provider_id)
    issuer = _checked_issuer(data.issuer, settings)
    client_id = _checked_client_id(data.client_id)
    secret = _checked_secret(data.client_secret, required=False)
    domains = _checked_domains(data.domains)
    role = _checked_role(data.default_role)
    if not data.enabled:
        await _keeps_enforcement(session, org, provider)
    await _check_domains(session, org, provider.id, domains)
    metadata = await discover(issuer, settings)
    before = _described(provider)
    try:
        async with session.begin_nested():
            provider.issuer, provider.client_id, provider.default_role = issuer, client_id, role
            provider.jit_enabled, provider.enabled = data.jit_enabled, data.enabled
            provider.metadata_json = metadata
            if secret:
                provider.client_secret_encrypted = encrypt_field(settings.secret_key, secret)
            provider.updated_at = utcnow()
            _set_domains(provider, domains)
            await session.flush()
    except IntegrityError:
        raise _domain_race() from None
    after = _described(provider)
    changed = sorted(k for k in after if after[k] != before[k]) + (["client_secret"] if secret else [])
    await audit.record(session, actor=actor, tag="sso_provider:updated", subject=provider,
                       data={**after, "changed": changed})
    return provider


async def delete_provider(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str,
                          provider_id: str) -> None:
    """Remove a provider with its domains and linked identities (its people keep their accounts)."""
    org, provider = await provider_of(session, actor=actor, org_id=org_id, provider_id=provider_id)
    if provider.enabled:
        await _keeps_enforcement(session, org, provider)
    await audit.record(session, actor=actor, tag="sso_provider:deleted", subject=provider,
                       data=_described(provider))
    await session.delete(provider)
    await session.flush()


async def set_enforced(session: AsyncSession, *, actor: Actor, org_id: uuid.UUID | str,
                       enforced: bool) -> Organisation:
    """Turn password logins off (or back on) for an organisation; enforcing needs an enabled provider covering
    every member's email domain, so nobody is locked out."""
    org = _client_org(await manageable_org(session, actor=actor, org_id=org_id))
    if enforced:
        enabled = await _providers(session, org, enabled_only=True)
        if not enabled:
            raise InvalidInput("Add and enable an identity provider before enforcing single sign-on.")
        covered = {d.domain for p in enabled for d in p.domains}
        outside = sorted(m.user.email for m in await members(session, org=org)
                         if email_domain(m.user.email) not in covered)
        if outside:
            raise InvalidInput(f"{len(outside)} member(s) of {org.name} have addresses outside the single "
                               f"sign-on domains and could not log in any more: {', '.join(outside[:5])}. "
                               "Cover their domains or remove them first.")
    if org.sso_enforced == enforced:
        return org
    org.sso_enforced = enforced
    await audit.record(session, actor=actor, org_id=org.id, subject=org,
                       tag="organisation:sso_enforced" if enforced else "organisation:sso_enforcement_ended",
                       data={"sso_enforced": enforced})
    return org
