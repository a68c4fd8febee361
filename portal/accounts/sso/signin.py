"""Single sign-on through a client organisation's identity provider: the OpenID Connect authorization code
flow (Authlib's Starlette client) and linking the person it vouches for. Providers are configured in
``service.py``.

Invariants:
- only enabled providers start or complete a sign-in;
- the authorization code flow uses PKCE (S256), state and nonce; the state is bound to the provider it was
  issued for, and the ``iss`` returned on the callback must be that provider's issuer (RFC 9207, ASVS 10.2.2);
- only the expected discovery fields reach Authlib, and the client secret is decrypted only to build its
  client and is never logged;
- people are linked by (provider, ``sub``) (ASVS 10.5.2); an email address links an existing account only on
  its first single sign-on, and only when that account already belongs to the provider's organisation;
- every check runs before the sign-in writes anything; a refusal that concerns an existing account writes only
  a ``user:sso_failed`` audit event, and a completed sign-in audits the account, identity and membership it
  created (the login itself is audited by ``complete_login``).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx2
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.starlette_client import StarletteIntegration, StarletteOAuth2App
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload, selectinload
from starlette.requests import Request
from starlette.responses import RedirectResponse

from portal import audit
from portal.accounts.models import Organisation, User
from portal.accounts.service import (
    add_membership,
    create_user,
    email_domain,
    membership_of,
    normalise_email,
    user_by_email,
)
from portal.accounts.sso.models import ExternalIdentity, IdentityProvider, SSODomain
from portal.accounts.sso.service import DISCOVERY_TIMEOUT, callback_url
from portal.actors import Actor
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound
from portal.security import decrypt_field
from portal.settings import Settings
from portal.web import safe_next

log = logging.getLogger("portal.sso")

SCOPES = "openid email profile"
# The only discovery fields handed to Authlib: the document is remote input, and Authlib passes unknown keys
# on to its HTTP client (where e.g. "verify" or "proxy" would change how tokens are fetched).
_CLIENT_METADATA = (
    "issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
    "id_token_signing_alg_values_supported",
)
_FLOWS = "sso_flows"
_FLOW_SECONDS = 900


class SSOFailed(InvalidInput):
    """A single sign-on that cannot complete; the message tells the person what to do."""


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
