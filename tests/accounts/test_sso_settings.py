"""Configuring single sign-on: discovery checks, domains, the secret, enforcement, permissions and tenancy."""

from __future__ import annotations

import html
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from portal.accounts.models import Organisation
from portal.accounts.roles import Role
from portal.accounts.sso.models import IdentityProvider, SSODomain
from portal.audit.models import AuditEvent
from portal.security import decrypt_field
from tests.conftest import TEST_SECRET, World, free_port, make_settings, post_form
from tests.sso_support import TestIdP

pytestmark = pytest.mark.idp

SECRET = "portal-secret"


@pytest.fixture
async def client_a(world: World) -> Organisation:
    return await world.client_org("Client A")


@pytest.fixture
async def admin(world: World, client_a: Organisation, login_as: Any) -> httpx.AsyncClient:
    return await login_as(await world.person(client_a, Role.ADMIN, email="ada@client-a.example"))


def form(idp: TestIdP, **changes: Any) -> dict[str, Any]:
    values = {"issuer": idp.issuer, "client_id": "portal", "client_secret": SECRET, "domains": "client-a.example",
              "default_role": "member", "jit_enabled": "on", "enabled": "on"}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


async def count(db: Any, model: Any) -> int:
    return int(await db.scalar(select(func.count()).select_from(model)))


async def audit_events(db: Any) -> list[AuditEvent]:
    return list((await db.execute(select(AuditEvent).order_by(AuditEvent.seq))).scalars())


def text_of(response: httpx.Response) -> str:
    return html.unescape(response.text)


async def refreshed(db: Any, obj: Any) -> Any:
    await db.refresh(obj)
    return obj


# ---------------------------------------------------------------- saving a provider

async def test_an_admin_adds_a_provider_after_discovery(admin, db, client_a, oidc_idp):
    page = await admin.get("/settings/sso")
    assert page.status_code == 303
    assert page.headers["location"] == f"/orgs/{client_a.id}/sso"
    empty = await admin.get(page.headers["location"])
    assert "No identity provider yet" in empty.text

    response = await post_form(admin, f"/orgs/{client_a.id}/sso/providers",
                               form(oidc_idp, domains="Client-A.example, @client-a.co.uk", default_role="signatory"))

    assert response.status_code == 303, text_of(response)[:3000]
    provider = await db.scalar(select(IdentityProvider))
    assert provider.org_id == client_a.id
    assert provider.issuer == oidc_idp.issuer
    assert provider.metadata_json["issuer"] == oidc_idp.issuer
    assert provider.metadata_json["token_endpoint"] == f"{oidc_idp.issuer}/token"
    assert provider.default_role is Role.SIGNATORY
    assert SECRET not in provider.client_secret_encrypted
    assert decrypt_field(TEST_SECRET, provider.client_secret_encrypted) == SECRET
    assert set((await db.execute(select(SSODomain.domain))).scalars()) == {"client-a.example", "client-a.co.uk"}

    listing = await admin.get(f"/orgs/{client_a.id}/sso")
    assert f"http://testserver/sso/callback/{provider.id}" in listing.text
    assert SECRET not in listing.text
    edit = await admin.get(f"/orgs/{client_a.id}/sso/providers/{provider.id}")
    assert edit.status_code == 200
    assert SECRET not in edit.text
    assert provider.client_secret_encrypted not in edit.text

    [event] = [e for e in await audit_events(db) if e.tag == "sso_provider:created"]
    assert event.org_id == client_a.id
    assert event.data["domains"] == ["client-a.co.uk", "client-a.example"]
    assert SECRET not in str(event.data)
    assert provider.client_secret_encrypted not in str(event.data)


@pytest.mark.parametrize(("issuer", "message"), [
    ("unreachable", "cannot be reached"),
    ("/mismatch", "its discovery document names the issuer"),
    ("/not-json", "did not answer with an OpenID discovery document"),
    ("/nothing-here", "answered HTTP 404"),
    ("ftp://idp.example", "Enter the issuer URL exactly"),
])
async def test_a_provider_whose_discovery_fails_is_not_saved(admin, db, client_a, oidc_idp, issuer, message):
    if issuer == "unreachable":
        issuer = f"http://127.0.0.1:{free_port()}"
    elif issuer.startswith("/"):
        issuer = oidc_idp.issuer + issuer
    before = await count(db, AuditEvent)

    response = await post_form(admin, f"/orgs/{client_a.id}/sso/providers",
                               form(oidc_idp, issuer=issuer, client_id="my-client"))

    assert response.status_code == 400
    page = text_of(response)
    assert message in page
    assert f'value="{issuer}"' in page  # the typed input is kept ...
    assert 'value="my-client"' in page
    assert SECRET not in page  # ... except the secret
    assert await count(db, IdentityProvider) == 0
    assert await count(db, SSODomain) == 0
    assert await count(db, AuditEvent) == before


async def test_https_portals_only_accept_https_issuers(db, client_a, oidc_idp, database_url, tmp_path):
    from portal.accounts.sso import service
    from portal.actors import Actor
    from portal.errors import InvalidInput

    https_settings = make_settings(database_url, tmp_path, base_url="https://portal.example")
    with pytest.raises(InvalidInput, match="https"):
        await service.create_provider(db, actor=Actor.system("test"), org_id=client_a.id, settings=https_settings,
                                      data=service.ProviderInput(oidc_idp.issuer, "portal", SECRET,
                                                                 "client-a.example", "member", True, True))


@pytest.mark.parametrize(("changes", "message"), [
    ({"domains": "not a domain!"}, "is not an email domain"),
    ({"domains": " , "}, "Enter at least one email domain"),
    ({"client_id": "   "}, "Client ID is required"),
    ({"client_secret": ""}, "Client secret is required"),
    ({"default_role": "admin"}, "Choose the role new members receive"),
    ({"issuer": ""}, "Issuer URL is required"),
])
async def test_bad_input_is_refused_with_a_message(admin, db, client_a, oidc_idp, changes, message):
    response = await post_form(admin, f"/orgs/{client_a.id}/sso/providers", form(oidc_idp, **changes))
    assert response.status_code == 400
    assert message in text_of(response)
    assert await count(db, IdentityProvider) == 0


async def test_a_domain_claimed_by_another_organisation_is_refused(admin, db, world, settings, client_a, oidc_idp):
    other = await world.client_org("Other Co")
    await oidc_idp.configure(db, other, settings, domains="shared.example")
    before = await count(db, AuditEvent)

    response = await post_form(admin, f"/orgs/{client_a.id}/sso/providers",
                               form(oidc_idp, domains="client-a.example, shared.example"))

    assert response.status_code == 400
    page = text_of(response)
    assert "shared.example is already claimed by another organisation's single sign-on" in page
    assert "Other Co" not in page
    assert await count(db, IdentityProvider) == 1
    assert await count(db, SSODomain) == 1
    assert await count(db, AuditEvent) == before


async def test_updating_keeps_or_replaces_the_secret(admin, db, settings, client_a, oidc_idp):
    provider = await oidc_idp.configure(db, client_a, settings, domains="client-a.example")
    url = f"/orgs/{client_a.id}/sso/providers/{provider.id}"
    stored = provider.client_secret_encrypted

    kept = await post_form(admin, url, form(oidc_idp, client_secret="", domains="client-a.example, a.example",
                                             jit_enabled=None))
    assert kept.status_code == 303, text_of(kept)[:3000]
    provider = await refreshed(db, provider)
    assert provider.client_secret_encrypted == stored
    assert provider.jit_enabled is False
    assert provider.updated_at is not None
    assert set((await db.execute(select(SSODomain.domain))).scalars()) == {"client-a.example", "a.example"}

    replaced = await post_form(admin, url, form(oidc_idp, client_secret="new-secret", domains="a.example"))
    assert replaced.status_code == 303
    provider = await refreshed(db, provider)
    assert decrypt_field(TEST_SECRET, provider.client_secret_encrypted) == "new-secret"
    assert set((await db.execute(select(SSODomain.domain))).scalars()) == {"a.example"}

    updates = [e for e in await audit_events(db) if e.tag == "sso_provider:updated"]
    assert [e.data["changed"] for e in updates] == [["domains", "jit_enabled"],
                                                     ["domains", "jit_enabled", "client_secret"]]
    assert all("new-secret" not in str(e.data) and SECRET not in str(e.data) for e in updates)


async def test_a_failed_update_changes_nothing(admin, db, settings, client_a, oidc_idp):
    provider = await oidc_idp.configure(db, client_a, settings, domains="client-a.example")
    before = await count(db, AuditEvent)

    response = await post_form(admin, f"/orgs/{client_a.id}/sso/providers/{provider.id}",
                               form(oidc_idp, issuer=oidc_idp.issuer + "/mismatch", domains="b.example"))

    assert response.status_code == 400
    assert "its discovery document names the issuer" in text_of(response)
    provider = await refreshed(db, provider)
    assert provider.issuer == oidc_idp.issuer
    assert set((await db.execute(select(SSODomain.domain))).scalars()) == {"client-a.example"}
    assert await count(db, AuditEvent) == before


async def test_deleting_a_provider(admin, db, settings, client_a, oidc_idp):
    provider = await oidc_idp.configure(db, client_a, settings, domains="client-a.example")

    response = await post_form(admin, f"/orgs/{client_a.id}/sso/providers/{provider.id}/delete")

    assert response.status_code == 303
    assert await count(db, IdentityProvider) == 0
    assert await count(db, SSODomain) == 0
    assert (await audit_events(db))[-1].tag == "sso_provider:deleted"


# ---------------------------------------------------------------- enforcement

async def test_enforcing_sso_needs_a_provider_covering_every_member(admin, db, world, settings, client_a,
                                                                   oidc_idp):
    url = f"/orgs/{client_a.id}/sso/enforcement"
    no_provider = await post_form(admin, url, {"enforced": "1"})
    assert no_provider.status_code == 400
    assert "Add and enable an identity provider" in text_of(no_provider)

    provider = await oidc_idp.configure(db, client_a, settings, domains="client-a.example")
    await world.person(client_a, Role.MEMBER, email="contractor@freelance.example")
    outside = await post_form(admin, url, {"enforced": "1"})
    assert outside.status_code == 400
    assert "contractor@freelance.example" in text_of(outside)
    assert (await refreshed(db, client_a)).sso_enforced is False

    await post_form(admin, f"/orgs/{client_a.id}/sso/providers/{provider.id}",
                    form(oidc_idp, client_secret="", domains="client-a.example, freelance.example"))
    enforced = await post_form(admin, url, {"enforced": "1"})
    assert enforced.status_code == 303
    assert (await refreshed(db, client_a)).sso_enforced is True
    assert (await audit_events(db))[-1].tag == "organisation:sso_enforced"

    # The last enabled provider of an enforcing organisation stays.
    disable = await post_form(admin, f"/orgs/{client_a.id}/sso/providers/{provider.id}",
                              form(oidc_idp, client_secret="", enabled=None))
    assert disable.status_code == 400
    assert "Stop enforcing single sign-on first" in text_of(disable)
    delete = await post_form(admin, f"/orgs/{client_a.id}/sso/providers/{provider.id}/delete")
    assert delete.status_code == 400
    assert (await refreshed(db, provider)).enabled is True

    ended = await post_form(admin, url, {"enforced": "0"})
    assert ended.status_code == 303
    assert (await refreshed(db, client_a)).sso_enforced is False
    assert (await audit_events(db))[-1].tag == "organisation:sso_enforcement_ended"


# ---------------------------------------------------------------- who may configure

async def test_vendor_staff_manage_any_client_organisation(world, db, client_a, login_as, oidc_idp):
    legal = await login_as(await world.person(await world.vendor(), Role.LEGAL))
    own = await legal.get("/settings/sso")
    assert own.status_code == 303
    vendor_page = await legal.get(own.headers["location"])
    assert vendor_page.status_code == 200
    assert f'href="/orgs/{client_a.id}/sso"' in vendor_page.text

    response = await post_form(legal, f"/orgs/{client_a.id}/sso/providers", form(oidc_idp))
    assert response.status_code == 303
    event = (await audit_events(db))[-1]
    assert event.tag == "sso_provider:created"
    assert event.org_id == client_a.id
    vendor = await world.vendor()
    assert (await post_form(legal, f"/orgs/{vendor.id}/sso/providers", form(oidc_idp))).status_code == 404


async def test_people_without_manage_sso_are_refused(world, db, client_a, login_as, oidc_idp):
    member = await login_as(await world.person(client_a, Role.SIGNATORY))
    viewer = await login_as(await world.person(await world.vendor(), Role.VIEWER))
    for person in (member, viewer):
        assert (await person.get(f"/orgs/{client_a.id}/sso")).status_code == 403
        assert (await person.get("/settings/sso")).status_code == 403
        response = await post_form(person, f"/orgs/{client_a.id}/sso/providers", form(oidc_idp))
        assert response.status_code == 403
    assert await count(db, IdentityProvider) == 0


async def test_another_organisations_admin_gets_404_and_changes_nothing(world, db, settings, client_a, login_as,
                                                                       oidc_idp):
    provider = await oidc_idp.configure(db, client_a, settings, domains="client-a.example")
    intruder = await login_as(await world.person(await world.client_org("Intruder Ltd"), Role.ADMIN))
    base = f"/orgs/{client_a.id}/sso"
    before = await count(db, AuditEvent)

    responses = [
        await intruder.get(base),
        await intruder.get(f"{base}/providers/{provider.id}"),
        await post_form(intruder, f"{base}/providers", form(oidc_idp, domains="intruder.example")),
        await post_form(intruder, f"{base}/providers/{provider.id}", form(oidc_idp, domains="intruder.example")),
        await post_form(intruder, f"{base}/providers/{provider.id}/delete"),
        await post_form(intruder, f"{base}/enforcement", {"enforced": "1"}),
    ]

    for response in responses:
        assert response.status_code == 404
        assert "Client A" not in response.text
        assert oidc_idp.issuer not in response.text
        assert "client-a.example" not in response.text
    assert await count(db, AuditEvent) == before
    provider = await refreshed(db, provider)
    assert provider.enabled is True
    assert set((await db.execute(select(SSODomain.domain))).scalars()) == {"client-a.example"}
    assert (await refreshed(db, client_a)).sso_enforced is False


async def test_a_provider_of_another_organisation_answers_404_under_ones_own(world, db, settings, login_as,
                                                                            oidc_idp):
    victim = await world.client_org("Victim Co")
    provider = await oidc_idp.configure(db, victim, settings, domains="victim.example")
    own_org = await world.client_org("Intruder Ltd")
    intruder = await login_as(await world.person(own_org, Role.ADMIN))
    assert (await intruder.get(f"/orgs/{own_org.id}/sso/providers/{provider.id}")).status_code == 404
    response = await post_form(intruder, f"/orgs/{own_org.id}/sso/providers/{provider.id}/delete")
    assert response.status_code == 404
    assert await count(db, IdentityProvider) == 1


# ---------------------------------------------------------------- CSRF

async def test_every_sso_form_refuses_a_request_without_its_token(admin, db, settings, client_a, oidc_idp):
    provider = await oidc_idp.configure(db, client_a, settings, domains="client-a.example")
    base = f"/orgs/{client_a.id}/sso"
    assert (await admin.get(base)).status_code == 200  # the browser has its CSRF cookie, just not the token
    assert "portal_csrf" in admin.cookies
    before = await count(db, AuditEvent)

    for url, data in [
        (f"{base}/providers", form(oidc_idp, domains="new.example")),
        (f"{base}/providers/{provider.id}", form(oidc_idp, domains="new.example", client_secret="x")),
        (f"{base}/providers/{provider.id}/delete", {}),
        (f"{base}/enforcement", {"enforced": "1"}),
    ]:
        assert (await admin.post(url, data=data)).status_code == 403, url
        assert (await admin.post(url, data={**data, "csrf_token": "forged"})).status_code == 403, url

    assert await count(db, AuditEvent) == before
    assert await count(db, IdentityProvider) == 1
    assert set((await db.execute(select(SSODomain.domain))).scalars()) == {"client-a.example"}
    assert (await refreshed(db, client_a)).sso_enforced is False
