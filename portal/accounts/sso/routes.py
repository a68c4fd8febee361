"""Single sign-on pages: provider settings, the redirect to the IdP and its callback."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts.login_flow import complete_login
from portal.accounts.roles import Permission
from portal.accounts.sso import service, signin
from portal.accounts.sso.service import ProviderInput
from portal.accounts.sso.signin import SSOFailed
from portal.actors import Actor
from portal.errors import InvalidInput
from portal.web import (
    client_ip,
    db,
    form_text,
    keep_changes_on_error,
    read_form,
    redirect,
    render,
    require_member,
    settings_of,
)

EMPTY_FORM: dict[str, Any] = {"issuer": "", "client_id": "", "domains": "", "default_role": "member",
                              "jit_enabled": True, "enabled": True}


def _actor(request: Request) -> Actor:
    return Actor.for_member(require_member(request, Permission.MANAGE_SSO), ip=client_ip(request))


def _typed_values(form: FormData) -> dict[str, Any]:
    """What to show again when the form is refused (never the secret)."""
    return {
        "issuer": form_text(form, "issuer").strip()[:500],
        "client_id": form_text(form, "client_id").strip()[:300],
        "domains": form_text(form, "domains").strip()[:2000],
        "default_role": form_text(form, "default_role"),
        "jit_enabled": form.get("jit_enabled") == "on",
        "enabled": form.get("enabled") == "on",
    }


def _provider_input(form: FormData) -> ProviderInput:
    """The form as typed; the service checks it, after it checked who may change what."""
    return ProviderInput(
        issuer=form_text(form, "issuer"), client_id=form_text(form, "client_id"),
        client_secret=form_text(form, "client_secret"), domains=form_text(form, "domains"),
        default_role=form_text(form, "default_role"),
        jit_enabled=form.get("jit_enabled") == "on", enabled=form.get("enabled") == "on",
    )


def _options(request: Request) -> dict[str, Any]:
    return {"roles": service.JIT_ROLES, "base_url": settings_of(request).base_url}


async def settings_redirect(request: Request) -> Response:
    member = require_member(request, Permission.MANAGE_SSO)
    return redirect(request, f"/orgs/{member.org_id}/sso")


async def sso_page(request: Request, *, error: InvalidInput | None = None, values: dict[str, Any] | None = None,
                   status: int = 200) -> Response:
    page = await service.overview(db(request), actor=_actor(request), org_id=request.path_params["org_id"])
    return render(request, "sso/settings.html", {
        "page": page, "values": values or EMPTY_FORM, "error": error.message if error else None,
        "field_errors": error.fields if error else {}, **_options(request),
    }, status=status)


async def create_provider(request: Request) -> Response:
    form = await read_form(request)
    actor = _actor(request)
    try:
        provider = await service.create_provider(db(request), actor=actor, org_id=request.path_params["org_id"],
                                                 settings=settings_of(request), data=_provider_input(form))
    except InvalidInput as exc:
        return await sso_page(request, error=exc, values=_typed_values(form), status=400)
    return redirect(request, f"/orgs/{provider.org_id}/sso",
                    flash=f"Identity provider saved. Register {service.callback_url(settings_of(request), provider)} "
                          "as the redirect URI at your identity provider.")


async def provider_page(request: Request, *, error: InvalidInput | None = None,
                        values: dict[str, Any] | None = None, status: int = 200) -> Response:
    org, provider = await service.provider_of(db(request), actor=_actor(request),
                                              org_id=request.path_params["org_id"],
                                              provider_id=request.path_params["provider_id"])
    current = {"issuer": provider.issuer, "client_id": provider.client_id,
               "domains": ", ".join(sorted(d.domain for d in provider.domains)),
               "default_role": provider.default_role.value, "jit_enabled": provider.jit_enabled,
               "enabled": provider.enabled}
    return render(request, "sso/provider.html", {
        "org": org, "provider": provider, "values": values or current, "error": error.message if error else None,
        "field_errors": error.fields if error else {},
        "redirect_uri": service.callback_url(settings_of(request), provider), **_options(request),
    }, status=status)


async def update_provider(request: Request) -> Response:
    form = await read_form(request)
    actor = _actor(request)
    try:
        provider = await service.update_provider(db(request), actor=actor, org_id=request.path_params["org_id"],
                                                 provider_id=request.path_params["provider_id"],
                                                 settings=settings_of(request), data=_provider_input(form))
    except InvalidInput as exc:
        return await provider_page(request, error=exc, values=_typed_values(form), status=400)
    return redirect(request, f"/orgs/{provider.org_id}/sso", flash="Identity provider updated.")


async def delete_provider(request: Request) -> Response:
    await read_form(request)
    org_id = request.path_params["org_id"]
    try:
        await service.delete_provider(db(request), actor=_actor(request), org_id=org_id,
                                      provider_id=request.path_params["provider_id"])
    except InvalidInput as exc:
        return await sso_page(request, error=exc, status=400)
    return redirect(request, f"/orgs/{org_id}/sso", flash="Identity provider deleted.")


async def set_enforcement(request: Request) -> Response:
    form = await read_form(request)
    enforced = form.get("enforced") == "1"
    try:
        org = await service.set_enforced(db(request), actor=_actor(request), org_id=request.path_params["org_id"],
                                         enforced=enforced)
    except InvalidInput as exc:
        return await sso_page(request, error=exc, status=400)
    message = ("Single sign-on is now required: passwords no longer work for this organisation." if enforced
               else "Single sign-on is no longer required; people may log in with a password again.")
    return redirect(request, f"/orgs/{org.id}/sso", flash=message)


async def start(request: Request) -> Response:
    """Send the browser to the organisation's identity provider."""
    session = db(request)
    provider = await signin.provider_for_login(session, request.path_params["provider_id"])
    try:
        return await signin.authorization_redirect(
            request, provider, settings=settings_of(request), next_url=request.query_params.get("next"),
            login_hint=request.query_params.get("login_hint"),
        )
    except SSOFailed as exc:
        return render(request, "sso/error.html", {"message": exc.message}, status=400)


async def callback(request: Request) -> Response:
    """Where the identity provider sends the browser back; every check runs before a session is made."""
    try:
        result = await signin.complete_sign_in(request, db(request), provider_id=request.path_params["provider_id"],
                                               settings=settings_of(request), ip=client_ip(request))
    except SSOFailed as exc:
        keep_changes_on_error(request)  # the refusal's audit event; a refused sign-in writes nothing else
        return render(request, "sso/error.html", {"message": exc.message}, status=400)
    return await complete_login(request, user=result.user, org=result.org, method="sso", second_factor_done=True,
                                next_url=result.next_url)


routes: list[BaseRoute] = [
    Route("/settings/sso", settings_redirect, methods=["GET"]),
    Route("/orgs/{org_id}/sso", sso_page, methods=["GET"]),
    Route("/orgs/{org_id}/sso/providers", create_provider, methods=["POST"]),
    Route("/orgs/{org_id}/sso/providers/{provider_id}", provider_page, methods=["GET"]),
    Route("/orgs/{org_id}/sso/providers/{provider_id}", update_provider, methods=["POST"]),
    Route("/orgs/{org_id}/sso/providers/{provider_id}/delete", delete_provider, methods=["POST"]),
    Route("/orgs/{org_id}/sso/enforcement", set_enforcement, methods=["POST"]),
    Route("/sso/start/{provider_id}", start, methods=["GET"]),
    Route("/sso/callback/{provider_id}", callback, methods=["GET"]),
]
