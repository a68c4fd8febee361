"""Guards every route must pass, checked by walking the app's routes (so a new route cannot forget them):

- every page needs a login, except the public ones listed here;
- every state-changing form refuses a request without its CSRF token (403) and changes nothing;
- every route that names an object answers 404 to a member (or API token) of another organisation and leaks
  nothing: ``OBJECT_ROUTES`` says how to build each such URL for the victim's objects. A route with path
  parameters that is not listed fails ``test_every_route_with_an_id_is_covered``: add it when you add the route.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docx
import pytest
from sqlalchemy import func, select
from starlette.routing import Mount, Route

from portal.accounts.models import Invitation, Membership, Organisation, User
from portal.accounts.roles import Role
from portal.accounts.sso.models import IdentityProvider, SSODomain
from portal.accounts.tokens.service import create_token
from portal.actors import Actor
from portal.agreements import service as agreements
from portal.ai_commitments.models import CommitmentVersion
from portal.app import all_routes
from portal.audit.models import AuditEvent
from portal.breaches import incidents, notices
from portal.dpa.models import TemplateVersion
from portal.notifications import catalog
from portal.notifications.models import WebhookEndpoint
from portal.notifications.service import notify
from portal.security import hash_token
from portal.subprocessors import publishing
from portal.subprocessors.models import ChangeAuthorisation, Objection
from tests.breaches.support import affect, incident_input, notice_input
from tests.conftest import World, post_form
from tests.subprocessors.support import entry_data

# Pages anyone may open without logging in (GET), and forms anyone may submit.
PUBLIC_PATHS = {
    "/healthz", "/login", "/login/totp", "/password/forgot", "/password/reset/{token}", "/invitations/{token}",
    "/api/v1/openapi.json", "/sso/start/{provider_id}", "/sso/callback/{provider_id}",
    "/subscribe", "/subscribe/confirm/{token}", "/unsubscribe/{token}", "/ack/{token}",
    "/subprocessors", "/subprocessors.json", "/subprocessors.atom", "/subprocessors.csv", "/subprocessors/diff",
    "/subprocessors/versions/{number}", "/verify", "/verify/seal-certificate.pem",
    "/ai-commitments", "/ai-commitments.json", "/ai-commitments/versions/{number}",
}
# Paths whose parameter is a secret link rather than an object id; the secret is the access check.
SECRET_LINK_PATHS = {"/password/reset/{token}", "/invitations/{token}", "/subscribe/confirm/{token}",
                     "/unsubscribe/{token}", "/ack/{token}"}
# One-click unsubscribe (RFC 8058): mail clients POST it without cookies or a form token; the signed link in the
# URL is the authority, so it is a state-changing POST without CSRF by design.
ONE_CLICK_PATHS = {"/unsubscribe/{token}"}
# Routes outside the cookie session (JSON API with Bearer tokens, the SSO handshake): no CSRF form.
NO_CSRF_PREFIXES = ("/api/", "/sso/callback/", "/sso/start/")


def page_routes() -> list[tuple[str, str]]:
    found = []
    for route in all_routes():
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route)
        for method in sorted((route.methods or set()) - {"HEAD"}):
            found.append((method, route.path))
    return found


@dataclass
class Victim:
    org: Organisation
    admin: Membership
    colleague: Membership
    invitation: Invitation
    extra: dict[str, Any]


async def make_victim(world: World, db: Any) -> Victim:
    org = await world.client_org("Victim Bank Secret Name")
    admin = await world.person(org, Role.ADMIN, email="admin@victim.example", name="Victoria Victim")
    colleague = await world.person(org, Role.MEMBER, email="bob@victim.example", name="Bob Victim")
    invitation = Invitation(id=uuid.uuid4(), org_id=org.id, email="new@victim.example", name="", roles=["member"],
                            token_hash=uuid.uuid4().hex, expires_at=admin.created_at.replace(year=2999))
    db.add(invitation)
    await world.commit()
    login_token = await world.login_cookie(await db.get(User, admin.user_id), org)
    token, _plaintext = await create_token(db, actor=Actor.system("test"), org=org, name="Victim GRC sync",
                                           scopes=["org:read"], days=None)
    await world.commit()
    provider = IdentityProvider(id=uuid.uuid4(), org_id=org.id, issuer="https://idp.victim.example",
                                client_id="victim-client", client_secret_encrypted="unused", metadata_json={},
                                domains=[SSODomain(domain="victim.example")])
    db.add(provider)
    endpoint = WebhookEndpoint(id=uuid.uuid4(), org_id=org.id, url="https://hooks.victim.example/dpa",
                               topics=["breaches"], secret_encrypted="unused")
    db.add(endpoint)
    await world.commit()
    [notice] = await notify(db, actor=Actor.system("test"), orgs=[org], content=catalog.dpa_version(
        version="2", document_sha256="0" * 64, summary="Victim terms", link="https://portal.example/dpa"))
    await world.commit()
    extra: dict[str, Any] = {"session_id": hash_token(login_token), "token_id": token.id,
                             "sso_provider_id": provider.id, "webhook_endpoint_id": endpoint.id,
                             "notice_id": notice.id, **await _victim_contract_objects(world, db, org)}
    return Victim(org, admin, colleague, invitation, extra)


def _docx(text: str) -> bytes:
    document = docx.Document()
    document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


async def _victim_contract_objects(world: World, db: Any, org: Organisation) -> dict[str, Any]:
    """An agreement, a published list version with the victim's authorisation of its change, an objection, and a
    draft DPA template version (vendor-wide: its pages do not exist for clients at all)."""
    system = Actor.system("test")
    agreement = await agreements.record_agreement(db, actor=system, org=org, data=agreements.AgreementInput(
        reference="Victim DPA", signed_on="2025-01-01", authorisation="general", notice_days=""))
    draft = await publishing.draft_entry(db, actor=system, raw=entry_data("Victim Hosting GmbH"))
    version = await publishing.publish(db, actor=system, effective_date="2999-01-01", summary="",
                                       default_notice_days=30, base_url="http://testserver")
    [authorisation] = (await db.execute(select(ChangeAuthorisation))).scalars().all()
    objection = Objection(org_id=org.id, authorisation_id=authorisation.id, reason="Victim's secret reason",
                          lodged_by="user:admin@victim.example")
    db.add(objection)
    # Stored directly: the upload path (validation, a test render in a child process) has tests of its own.
    data = _docx("Victim Bank Secret Name terms for {{ client.name }}")
    template = TemplateVersion(filename="victim.docx", docx=data, sha256=hashlib.sha256(data).hexdigest(),
                               placeholders=["client.name"], uploaded_by="user:admin@victim.example")
    db.add(template)
    await world.commit()
    incident = await incidents.open_incident(db, actor=system, data=incident_input())
    await affect(db, incident, org)
    breach_notice = await notices.send_notice(db, actor=system, incident=incident, org=org, phase="initial",
                                              raw=notice_input(), settings=world.settings)
    await world.commit()
    ai_draft = CommitmentVersion(id=uuid.uuid4(), document={}, created_by="test")  # vendor-wide: 404 for clients
    db.add(ai_draft)
    await world.commit()
    return {"incident_id": incident.id, "breach_notice_id": breach_notice.id, "ai_draft_id": ai_draft.id,
            "template_version_id": template.id, "agreement_id": agreement.id, "version_number": version.number,
            "entry_id": draft.entry_id, "authorisation_id": authorisation.id, "objection_id": objection.id}


def _endpoint_url(action: str) -> Callable[[Victim], str]:
    return lambda v: f"/orgs/{v.org.id}/webhooks/{v.extra['webhook_endpoint_id']}{action}"


def _incident_url(action: str) -> Callable[[Victim], str]:
    return lambda v: f"/incidents/{v.extra['incident_id']}{action}"


def _client_incident_url(action: str) -> Callable[[Victim], str]:
    return lambda v: f"/orgs/{v.org.id}/incidents/{v.extra['incident_id']}{action}"


def _agreement_url(action: str) -> Callable[[Victim], str]:
    return lambda v: f"/orgs/{v.org.id}/agreements/{v.extra['agreement_id']}{action}"


def _template_version_url(action: str) -> Callable[[Victim], str]:
    return lambda v: f"/templates/versions/{v.extra['template_version_id']}{action}"


# How to reach each object-naming route for the victim's objects. Later capabilities add theirs here.
OBJECT_ROUTES: dict[str, Callable[[Victim], str]] = {
    "/orgs/{org_id}/members": lambda v: f"/orgs/{v.org.id}/members",
    "/orgs/{org_id}/invitations": lambda v: f"/orgs/{v.org.id}/invitations",
    "/orgs/{org_id}/invitations/{invitation_id}/resend":
        lambda v: f"/orgs/{v.org.id}/invitations/{v.invitation.id}/resend",
    "/orgs/{org_id}/invitations/{invitation_id}/revoke":
        lambda v: f"/orgs/{v.org.id}/invitations/{v.invitation.id}/revoke",
    "/orgs/{org_id}/members/{membership_id}/roles": lambda v: f"/orgs/{v.org.id}/members/{v.colleague.id}/roles",
    "/orgs/{org_id}/members/{membership_id}/remove": lambda v: f"/orgs/{v.org.id}/members/{v.colleague.id}/remove",
    "/account/sessions/{session_id}/end": lambda v: f"/account/sessions/{v.extra['session_id']}/end",
    "/settings/tokens/{token_id}/revoke": lambda v: f"/settings/tokens/{v.extra['token_id']}/revoke",
    "/orgs/{org_id}/sso": lambda v: f"/orgs/{v.org.id}/sso",
    "/orgs/{org_id}/sso/enforcement": lambda v: f"/orgs/{v.org.id}/sso/enforcement",
    "/orgs/{org_id}/sso/providers": lambda v: f"/orgs/{v.org.id}/sso/providers",
    "/orgs/{org_id}/sso/providers/{provider_id}":
        lambda v: f"/orgs/{v.org.id}/sso/providers/{v.extra['sso_provider_id']}",
    "/orgs/{org_id}/sso/providers/{provider_id}/delete":
        lambda v: f"/orgs/{v.org.id}/sso/providers/{v.extra['sso_provider_id']}/delete",
    "/orgs/{org_id}/webhooks": lambda v: f"/orgs/{v.org.id}/webhooks",
    "/orgs/{org_id}/notices/settings": lambda v: f"/orgs/{v.org.id}/notices/settings",
    "/orgs/{org_id}/notices/subscriptions": lambda v: f"/orgs/{v.org.id}/notices/subscriptions",
    "/orgs/{org_id}/notices": lambda v: f"/orgs/{v.org.id}/notices",
    "/orgs/{org_id}/notices/{notice_id}": lambda v: f"/orgs/{v.org.id}/notices/{v.extra['notice_id']}",
    "/notices/{notice_id}": lambda v: f"/notices/{v.extra['notice_id']}",
    "/outgoing-mail/{name}": lambda v: "/outgoing-mail/victim.eml",
    **{f"/orgs/{{org_id}}/webhooks/{{endpoint_id}}{action}": _endpoint_url(action)
       for action in ("", "/rotate", "/enable", "/disable", "/delete", "/test")},
    "/orgs/{org_id}/subprocessors": lambda v: f"/orgs/{v.org.id}/subprocessors",
    "/registry/entries/{entry_id}/edit": lambda v: f"/registry/entries/{v.extra['entry_id']}/edit",
    "/registry/entries/{entry_id}/replace": lambda v: f"/registry/entries/{v.extra['entry_id']}/replace",
    "/registry/entries/{entry_id}/remove": lambda v: f"/registry/entries/{v.extra['entry_id']}/remove",
    "/registry/entries/{entry_id}/discard": lambda v: f"/registry/entries/{v.extra['entry_id']}/discard",
    "/orgs/{org_id}/objections/{objection_id}/resolve":
        lambda v: f"/orgs/{v.org.id}/objections/{v.extra['objection_id']}/resolve",
    "/orgs/{org_id}/agreements": lambda v: f"/orgs/{v.org.id}/agreements",
    "/orgs/{org_id}/agreements/draft": lambda v: f"/orgs/{v.org.id}/agreements/draft",
    **{f"/incidents/{{incident_id}}{action}": _incident_url(action)
       for action in ("", "/clients", "/close", "/notify-all")},
    "/incidents/{incident_id}/clients/{org_id}/notice":
        lambda v: f"/incidents/{v.extra['incident_id']}/clients/{v.org.id}/notice",
    "/orgs/{org_id}/incidents": lambda v: f"/orgs/{v.org.id}/incidents",
    "/orgs/{org_id}/ai-commitments": lambda v: f"/orgs/{v.org.id}/ai-commitments",
    "/ai-commitments/manage/drafts/{version_id}": lambda v: f"/ai-commitments/manage/drafts/{v.extra['ai_draft_id']}",
    "/ai-commitments/manage/drafts/{version_id}/publish":
        lambda v: f"/ai-commitments/manage/drafts/{v.extra['ai_draft_id']}/publish",
    "/orgs/{org_id}/ai-commitments/instructions": lambda v: f"/orgs/{v.org.id}/ai-commitments/instructions",
    "/orgs/{org_id}/ai-commitments/acceptances": lambda v: f"/orgs/{v.org.id}/ai-commitments/acceptances",
    "/orgs/{org_id}/ai-commitments/declines": lambda v: f"/orgs/{v.org.id}/ai-commitments/declines",
    **{f"/orgs/{{org_id}}/incidents/{{incident_id}}{action}": _client_incident_url(action)
       for action in ("", "/export.json", "/export.docx")},
    "/orgs/{org_id}/incidents/{incident_id}/notices/{notice_id}/acknowledge":
        lambda v: f"/orgs/{v.org.id}/incidents/{v.extra['incident_id']}/notices/{v.extra['breach_notice_id']}"
                  "/acknowledge",
    **{f"/orgs/{{org_id}}/agreements/{{agreement_id}}{action}": _agreement_url(action)
       for action in ("", "/end", "/send", "/sign", "/decline", "/countersign", "/redline")},
    "/orgs/{org_id}/agreements/{agreement_id}/documents/{kind}": _agreement_url("/documents/bundle"),
    **{f"/templates/versions/{{version_id}}{action}": _template_version_url(action)
       for action in ("", "/download", "/publish", "/discard")},
    "/orgs/{org_id}/subprocessors/changes/{authorisation_id}/object":
        lambda v: f"/orgs/{v.org.id}/subprocessors/changes/{v.extra['authorisation_id']}/object",
    "/orgs/{org_id}/subprocessors/changes/{authorisation_id}/approve":
        lambda v: f"/orgs/{v.org.id}/subprocessors/changes/{v.extra['authorisation_id']}/approve",
}
# Paths that need a login and whose parameter names what every organisation shares (a published list version),
# not one organisation's object: there is nothing of another tenant behind them. How to build each URL:
SHARED_OBJECT_ROUTES: dict[str, Callable[[Victim], str]] = {
    "/subprocessors/versions/{number}/respond":
        lambda v: f"/subprocessors/versions/{v.extra['version_number']}/respond",
}


def test_every_route_with_an_id_is_covered():
    uncovered = sorted({path for _method, path in page_routes()
                        if "{" in path and path not in OBJECT_ROUTES and path not in SECRET_LINK_PATHS
                        and path not in PUBLIC_PATHS and path not in SHARED_OBJECT_ROUTES
                        # API endpoints: tests/api/test_isolation.py walks the API registry with another
                        # organisation's token.
                        and not path.startswith("/api/")})
    assert uncovered == [], f"add these routes to OBJECT_ROUTES in {__file__}: {uncovered}"


async def _audit_count(db: Any) -> int:
    return int(await db.scalar(select(func.count()).select_from(AuditEvent)))


@pytest.mark.parametrize(("method", "path"), [r for r in page_routes() if r[1] in OBJECT_ROUTES])
async def test_another_organisations_objects_answer_404(method, path, world, login_as, db):
    victim = await make_victim(world, db)
    intruder_org = await world.client_org("Intruder Ltd")
    intruder = await login_as(await world.person(intruder_org, Role.ADMIN))
    url = OBJECT_ROUTES[path](victim)
    before = await _audit_count(db)

    if method == "GET":
        response = await intruder.get(url)
    else:
        response = await post_form(intruder, url, {"roles": "admin", "email": "x@intruder.example"})

    assert response.status_code == 404, response.text[:300]
    for secret in ("Victim Bank Secret Name", "Victoria Victim", "bob@victim.example", str(victim.org.id)):
        assert secret not in response.text
    assert await _audit_count(db) == before


@pytest.mark.parametrize(("method", "path"), [r for r in page_routes()
                                              if r[0] == "POST" and not r[1].startswith(NO_CSRF_PREFIXES)
                                              and r[1] not in ONE_CLICK_PATHS])
async def test_state_changing_forms_refuse_requests_without_the_csrf_token(method, path, world, login_as, db):
    victim = await make_victim(world, db)
    owner = await login_as(await world.person(await world.vendor(), Role.OWNER))
    url = OBJECT_ROUTES[path](victim) if path in OBJECT_ROUTES else path.replace("{token}", "x" * 20)
    before = await _audit_count(db)

    without = await owner.post(url, data={"email": "x@example.com", "roles": "admin", "name": "X"})
    forged = await owner.post(url, data={"csrf_token": "forged", "email": "x@example.com", "roles": "admin"})
    cross_site = await post_form(owner, url, {"email": "x@example.com"}, headers={"origin": "https://evil.example"})

    assert without.status_code == forged.status_code == cross_site.status_code == 403, path
    assert await _audit_count(db) == before


@pytest.mark.parametrize(("method", "path"), [r for r in page_routes()
                                              if r[0] == "GET" and r[1] not in PUBLIC_PATHS
                                              and not r[1].startswith("/api/")])
async def test_pages_need_a_login(method, path, client, world, db):
    victim = await make_victim(world, db)
    routes = {**OBJECT_ROUTES, **SHARED_OBJECT_ROUTES}
    url = routes[path](victim) if path in routes else path
    response = await client.get(url)
    if path.endswith(".json"):  # JSON downloads answer like the API
        assert response.status_code == 401
    else:
        assert response.status_code == 303
        assert response.headers["location"].startswith("/login?next=")
