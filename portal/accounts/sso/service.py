"""Single sign-on per client organisation through OpenID Connect (Authlib's Starlette client).

Invariants:
- only client organisations have identity providers; their own members with ``manage_sso`` and vendor staff
  with ``manage_sso`` configure them, and everyone else gets 404;
- a provider is saved only after its issuer's discovery document was fetched and names exactly the configured
  issuer (ASVS 10.5.3); an email domain is covered by one provider at most;
- the client secret is stored encrypted and is never shown, logged or written to the audit trail;
- an organisation enforces single sign-on only while it has an enabled provider;
- the authorization code flow uses PKCE (S256), state and nonce; the state is bound to the provider it was
  issued for, and the ``iss`` returned on the callback must be that provider's issuer (RFC 9207, ASVS 10.2.2);
- people are linked by (provider, ``sub``) (ASVS 10.5.2); an email address links an existing account only on
  its first single sign-on, and only when that account already belongs to the provider's organisation;
- every configuration change and every refused or completed single sign-on writes an audit event.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import StarletteIntegration, StarletteOAuth2App
from joserfc.errors import JoseError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from starlette.requests import Request
from starlette.responses import RedirectResponse

from portal import audit
from portal.accounts.models import Organisation, User
from portal.accounts.roles import Permission, Role
from portal.accounts.service import (
    add_membership,
    client_orgs,
    create_user,
    email_domain,
    members,
    membership_of,
    normalise_email,
    user_by_email,
    visible_org,
)
from portal.accounts.sso.models import ExternalIdentity, IdentityProvider, SSODomain
from portal.actors import Actor
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound
from portal.security import decrypt_field, encrypt_field
from portal.settings import Settings
from portal.tenancy import get_scoped, scoped
from portal.web import safe_next

log = logging.getLogger("portal.sso")

DISCOVERY_PATH = "/.well-known/openid-configuration"
DISCOVERY_TIMEOUT = 5.0
MAX_DISCOVERY_BYTES = 256_000
MAX_DOMAINS = 20
SCOPES = "openid email profile"
# Roles a person may receive on their first single sign-on; administrators are promoted by hand.
JIT_ROLES = (Role.MEMBER, Role.SIGNATORY, Role.PRIVACY_CONTACT, Role.SECURITY_CONTACT)
# The only discovery fields handed to Authlib: the document is remote input, and Authlib passes unknown keys
# on to its HTTP client (where e.g. "verify" or "proxy" would change how tokens are fetched).
_CLIENT_METADATA = (
    "issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
    "id_token_signing_alg_values_supported",
)
_DOMAIN = re.compile(r"^(?=.{4,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_FLOWS = "sso_flows"
_FLOW_SECONDS = 900


class SSOFailed(InvalidInput):
    """A single sign-on that cannot complete; the message tells the person what to do."""


# ---------------------------------------------------------------- configuration

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


# ---------------------------------------------------------------- login

async def provider_for_email(session: AsyncSession, email: str) -> IdentityProvider | None:
    """The enabled identity provider covering ``email``'s domain, if any."""
    if "@" not in email:
        return None
    domain = email_domain(email.strip().lower())
    return (await session.execute(
        select(IdentityProvider).join(SSODomain).where(SSODomain.domain == domain)
        .where(IdentityProvider.enabled.is_(True))
    )).scalar_one_or_none()


async def provider_for_login(session: AsyncSession, provider_id: str) -> IdentityProvider:
    """An enabled provider with its organisation and domains, else 404."""
    try:
        key = uuid.UUID(provider_id)
    except ValueError:
        raise NotFound() from None
    provider = (await session.execute(
        select(IdentityProvider).where(IdentityProvider.id == key, IdentityProvider.enabled.is_(True))
        .options(joinedload(IdentityProvider.org), selectinload(IdentityProvider.domains))
    )).scalar_one_or_none()
    if provider is None:
        raise NotFound("This single sign-on is not available. Log in again from the login page.")
    return provider


def _oauth_client(provider: IdentityProvider, settings: Settings) -> Any:
    """An Authlib client for one provider; its name keys the state it keeps, so a state is bound to it."""
    metadata = {k: provider.metadata_json[k] for k in _CLIENT_METADATA if k in provider.metadata_json}
    methods = provider.metadata_json.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    auth_method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
    name = f"sso_{provider.id.hex}"
    try:
        secret = decrypt_field(settings.secret_key, provider.client_secret_encrypted)
    except ValueError:
        log.error("the client secret of identity provider %s cannot be decrypted with this secret key",
                  provider.id)
        raise SSOFailed(f"The single sign-on of {provider.org.name} cannot be used right now. Ask its "
                        "administrator to enter the client secret again.") from None
    return StarletteOAuth2App(
        StarletteIntegration(name), name,
        client_id=provider.client_id,
        client_secret=secret,
        client_kwargs={"scope": SCOPES, "code_challenge_method": "S256", "timeout": DISCOVERY_TIMEOUT,
                       "token_endpoint_auth_method": auth_method},
        **metadata,
    )


async def authorization_redirect(request: Request, provider: IdentityProvider, *, settings: Settings,
                                 next_url: str | None, login_hint: str | None) -> RedirectResponse:
    """Send the browser to the provider (code flow with PKCE, state and nonce), remembering which provider and
    issuer the state belongs to."""
    client = _oauth_client(provider, settings)
    redirect_uri = callback_url(settings, provider)
    extra = {"login_hint": login_hint} if login_hint and len(login_hint) <= 320 and "@" in login_hint else {}
    auth = await client.create_authorization_url(redirect_uri, **extra)
    await client.save_authorize_data(request, redirect_uri=redirect_uri, **auth)
    now = time.time()
    flows = {state: flow for state, flow in dict(request.session.get(_FLOWS) or {}).items()
             if isinstance(flow, dict) and flow.get("at", 0) > now - _FLOW_SECONDS}
    flows = dict(list(flows.items())[-4:])
    flows[auth["state"]] = {"provider": str(provider.id), "issuer": provider.issuer,
                            "next": safe_next(next_url), "at": now}
    request.session[_FLOWS] = flows
    return RedirectResponse(auth["url"], status_code=302)


def _checked_response(request: Request, provider: IdentityProvider) -> str:
    """Check the callback's state and issuer before anything is exchanged; returns where to go afterwards."""
    params = request.query_params
    flows = dict(request.session.get(_FLOWS) or {})
    flow = flows.pop(params.get("state") or "", None)
    request.session[_FLOWS] = flows
    if (not isinstance(flow, dict) or flow.get("provider") != str(provider.id)
            or flow.get("issuer") != provider.issuer or flow.get("at", 0) < time.time() - _FLOW_SECONDS):
        raise SSOFailed("This sign-in is not valid any more: it expired, was already used, or was started "
                        "for another organisation. Start again from the login page.")
    iss = params.get("iss")
    if iss is None and provider.metadata_json.get("authorization_response_iss_parameter_supported") is True:
        raise SSOFailed("The identity provider's answer did not say who sent it, so it was refused. Start "
                        "again from the login page.")
    if iss is not None and iss != provider.issuer:
        log.warning("single sign-on for provider %s refused: iss %r is not its issuer", provider.id,
                    iss[:200])
        raise SSOFailed("The answer came from a different identity provider than the one this sign-in was "
                        "started with, so it was refused. Start again from the login page.")
    error = params.get("error")
    if error:
        code = error if re.fullmatch(r"[a-z_]{1,64}", error) else "error"
        raise SSOFailed(f"Your identity provider did not sign you in ({code}). Start again from the login "
                        "page, or ask your administrator.")
    return str(flow.get("next") or "/")


async def _claims(request: Request, provider: IdentityProvider, settings: Settings) -> dict[str, Any]:
    """Exchange the code (Authlib checks the ID token's signature, iss, aud and nonce) and read the claims."""
    client = _oauth_client(provider, settings)
    try:
        token = await client.authorize_access_token(request)
        id_claims = token.get("userinfo")
        if not id_claims or not id_claims.get("sub"):
            raise SSOFailed("Your identity provider sent no ID token. Ask your administrator to check the "
                            "single sign-on configuration.")
        claims = dict(id_claims)
        if provider.metadata_json.get("userinfo_endpoint"):
            userinfo = dict(await client.userinfo(token=token))
            if userinfo.get("sub") != claims["sub"]:
                raise SSOFailed("Your identity provider's answers did not agree about who you are, so the "
                                "sign-in was refused.")
            claims.update(userinfo)
        return claims
    except SSOFailed:
        raise
    except (AuthlibBaseError, JoseError, httpx2.HTTPError, ValueError, KeyError, TypeError) as exc:
        log.warning("single sign-on for provider %s failed: %s", provider.id, type(exc).__name__)
        raise SSOFailed("The sign-in with your identity provider could not be completed. Start again from "
                        "the login page; if it keeps failing, ask your administrator.") from None


@dataclass(frozen=True)
class SignedIn:
    user: User
    org: Organisation
    next_url: str


async def complete_sign_in(request: Request, session: AsyncSession, *, provider_id: str, settings: Settings,
                           ip: str) -> SignedIn:
    """The person a provider's callback vouches for, after every check; SSOFailed says why not."""
    try:
        provider = await provider_for_login(session, provider_id)
    except NotFound:
        raise SSOFailed("This single sign-on is not available any more. Log in again from the login "
                        "page.") from None
    next_url = _checked_response(request, provider)
    claims = await _claims(request, provider, settings)
    user = await sign_in(session, provider=provider, claims=claims, ip=ip)
    return SignedIn(user, provider.org, next_url)


async def _refuse(session: AsyncSession, provider: IdentityProvider, user: User | None, reason: str, ip: str,
                  message: str) -> SSOFailed:
    if user is not None:
        actor = Actor(label=f"user:{user.email}", user=user, org=provider.org, ip=ip)
        await audit.record(session, actor=actor, tag="user:sso_failed", subject=user, org_id=provider.org_id,
                           data={"provider_id": provider.id, "reason": reason})
    return SSOFailed(message)


async def sign_in(session: AsyncSession, *, provider: IdentityProvider, claims: dict[str, Any],
                  ip: str) -> User:
    """Link or create the person ``claims`` describe and make sure they are a member of the provider's
    organisation. Every check runs before anything is written."""
    org = provider.org
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise SSOFailed("Your identity provider sent no usable subject identifier.")
    identity = (await session.execute(
        select(ExternalIdentity).where(ExternalIdentity.provider_id == provider.id,
                                       ExternalIdentity.subject == subject)
        .options(joinedload(ExternalIdentity.user))
    )).scalar_one_or_none()
    try:
        email = normalise_email(str(claims.get("email") or ""))
    except InvalidInput:
        raise await _refuse(session, provider, identity.user if identity else None, "no_email", ip,
                            "Your identity provider did not send an email address.") from None
    user = identity.user if identity else await user_by_email(session, email)
    if claims.get("email_verified") not in (True, "true"):
        raise await _refuse(session, provider, user, "email_not_verified", ip,
                            f"Your identity provider has not verified your email address ({email}). Verify "
                            "it there, then try again.")
    if email_domain(email) not in {d.domain for d in provider.domains}:
        raise await _refuse(session, provider, user, "domain_not_covered", ip,
                            f"{email} is not in a domain that {org.name}'s single sign-on covers.")
    if user is not None and user.disabled_at is not None:
        raise await _refuse(session, provider, user, "user_disabled", ip, "This account is disabled.")
    membership = await membership_of(session, org=org, user_id=user.id) if user else None
    if identity is None and user is not None:
        linked = (await session.execute(
            select(ExternalIdentity.id).where(ExternalIdentity.provider_id == provider.id,
                                              ExternalIdentity.user_id == user.id)
        )).first()
        if linked is not None:
            raise await _refuse(session, provider, user, "linked_to_other_subject", ip,
                                f"The portal account {email} is linked to a different account at your "
                                f"identity provider. Ask an administrator of {org.name} for help.")
        if membership is None:
            raise await _refuse(session, provider, user, "not_a_member", ip,
                                f"An account with the address {email} already exists but is not a member "
                                f"of {org.name}. Ask an administrator of {org.name} to invite you, then sign "
                                "in with single sign-on again.")
    if membership is None and not provider.jit_enabled:
        raise await _refuse(session, provider, user, "not_a_member", ip,
                            f"You are not a member of {org.name}. Ask one of its administrators to invite "
                            "you.")
    # Every check passed; from here on the sign-in writes.
    if user is None:
        name = claims.get("name") if isinstance(claims.get("name"), str) else ""
        user = await create_user(session, email=email, name=(name or email.split("@")[0])[:200],
                                 password=None)
        await audit.record(session, actor=Actor(label=f"user:{email}", user=user, org=org, ip=ip),
                           tag="user:created", subject=user, org_id=org.id,
                           data={"email": email, "via": "sso", "provider_id": provider.id})
    actor = Actor(label=f"user:{user.email}", user=user, org=org, ip=ip)
    if identity is None:
        identity = ExternalIdentity(id=uuid.uuid4(), provider_id=provider.id, subject=subject,
                                    user_id=user.id)
        session.add(identity)
        await audit.record(session, actor=actor, tag="user:sso_linked", subject=user, org_id=org.id,
                           data={"provider_id": provider.id, "issuer": provider.issuer, "subject": subject})
    if membership is None:
        await add_membership(session, actor=actor, org=org, user=user, roles=[provider.default_role])
    identity.last_login_at = utcnow()
    await session.flush()
    return user
