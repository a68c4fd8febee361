"""The start page, people of an organisation (members and invitations) and the vendor's client organisations.

``/orgs/{org_id}/...`` pages serve both a client's own admins and vendor staff looking after that client;
``portal.accounts.service.visible_org`` answers 404 for anyone else.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from portal.accounts import invitations, service
from portal.accounts.models import Organisation
from portal.accounts.roles import Permission, Role, roles_for_kind
from portal.actors import Actor
from portal.breaches import escalation
from portal.db import utcnow
from portal.errors import InvalidInput, NotFound, PortalError
from portal.notifications import evidence
from portal.web import actor_of, db, field, read_form, redirect, render, require_member, settings_of


def _roles(form: FormData) -> list[str]:
    return [value for value in form.getlist("roles") if isinstance(value, str)]


async def home_page(request: Request) -> Response:
    member = require_member(request)
    actor = Actor.for_member(member)
    context: dict[str, Any] = {"clients": None, "people": None, "delivery_flags": None, "breach_flags": None}
    if member.org.is_vendor and member.can(Permission.VIEW_CLIENTS):
        context["clients"] = await service.client_orgs(db(request), actor=actor)
        context["delivery_flags"] = await evidence.dashboard_flags(db(request), actor=actor)
        context["breach_flags"] = await escalation.flags(db(request), now=utcnow(), settings=settings_of(request))
    if member.can(Permission.MANAGE_MEMBERS):
        context["people"] = await service.members(db(request), org=member.org)
    return render(request, "accounts/home.html", context)


async def my_members(request: Request) -> Response:
    member = require_member(request)
    return redirect(request, f"/orgs/{member.org_id}/members")


async def _org_for(request: Request, actor: Actor) -> Organisation:
    """The organisation in the path if this actor may see its people (its own, or a client for vendor staff)."""
    org = await service.visible_org(db(request), actor=actor, org_id=request.path_params["org_id"])
    if actor.org is not None and actor.org.id != org.id:
        actor.require(Permission.VIEW_CLIENTS)
    return org


def _can_manage(actor: Actor, org: Organisation) -> bool:
    try:
        service.require_manage_people(actor, org)
    except PortalError:
        return False
    return True


async def _members_page(request: Request, org: Organisation, actor: Actor, *, error: str | None = None,
                        invite: dict[str, Any] | None = None, status: int = 200) -> Response:
    session = db(request)
    return render(request, "accounts/members.html", {
        "org": org,
        "members": await service.members(session, org=org),
        "invitations": await invitations.open_invitations(session, org=org),
        "all_roles": roles_for_kind(org.kind),
        "can_manage": _can_manage(actor, org),
        "error": error,
        "invite": invite or {"email": "", "name": "", "roles": []},
    }, status=status)


async def org_members(request: Request) -> Response:
    actor = actor_of(request)
    org = await _org_for(request, actor)
    return await _members_page(request, org, actor)


async def invite_submit(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await _org_for(request, actor)
    submitted = {"email": form.get("email", ""), "name": form.get("name", ""), "roles": _roles(form)}
    try:
        invitation = await invitations.invite(
            db(request), actor=actor, org=org, email=field(form, "email", label="Email address", max_length=320),
            name=field(form, "name", required=False, max_length=200), roles=_roles(form),
            mailer=request.app.state.mailer,
        )
    except InvalidInput as exc:
        return await _members_page(request, org, actor, error=exc.message, invite=submitted, status=400)
    return redirect(request, f"/orgs/{org.id}/members", flash=f"Invitation sent to {invitation.email}.")


async def invitation_resend(request: Request) -> Response:
    await read_form(request)
    actor = actor_of(request)
    org = await _org_for(request, actor)
    invitation = await invitations.resend(db(request), actor=actor, org=org,
                                          invitation_id=request.path_params["invitation_id"],
                                          mailer=request.app.state.mailer)
    return redirect(request, f"/orgs/{org.id}/members", flash=f"A new link was sent to {invitation.email}; "
                                                                 "the old one no longer works.")


async def invitation_revoke(request: Request) -> Response:
    await read_form(request)
    actor = actor_of(request)
    org = await _org_for(request, actor)
    await invitations.revoke(db(request), actor=actor, org=org, invitation_id=request.path_params["invitation_id"])
    return redirect(request, f"/orgs/{org.id}/members", flash="The invitation was withdrawn.")


async def roles_submit(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await _org_for(request, actor)
    try:
        membership = await service.set_roles(db(request), actor=actor, org=org,
                                             membership_id=request.path_params["membership_id"],
                                             roles=_roles(form))
    except InvalidInput as exc:
        return await _members_page(request, org, actor, error=exc.message, status=400)
    return redirect(request, f"/orgs/{org.id}/members", flash=f"Roles of {membership.user.name} updated.")


async def remove_submit(request: Request) -> Response:
    await read_form(request)
    actor = actor_of(request)
    org = await _org_for(request, actor)
    try:
        await service.remove_member(db(request), actor=actor, org=org,
                                    membership_id=request.path_params["membership_id"])
    except InvalidInput as exc:
        return await _members_page(request, org, actor, error=exc.message, status=400)
    return redirect(request, f"/orgs/{org.id}/members", flash="The member was removed and their sessions ended.")


async def _clients_page(request: Request, *, error: str | None = None, submitted: dict[str, str] | None = None,
                        status: int = 200) -> Response:
    member = require_member(request, Permission.VIEW_CLIENTS)
    if not member.org.is_vendor:
        raise NotFound()
    return render(request, "accounts/clients.html", {
        "clients": await service.client_orgs(db(request), actor=Actor.for_member(member)),
        "can_create": member.can(Permission.MANAGE_CLIENTS),
        "error": error,
        "form": submitted or {"name": "", "admin_email": "", "admin_name": ""},
    }, status=status)


async def clients(request: Request) -> Response:
    return await _clients_page(request)


async def client_create(request: Request) -> Response:
    """Create a client organisation and invite its first admin in one step."""
    form = await read_form(request)
    actor = actor_of(request)
    actor.require(Permission.MANAGE_CLIENTS)
    submitted = {key: str(form.get(key, "")) for key in ("name", "admin_email", "admin_name")}
    session = db(request)
    try:
        admin_email = field(form, "admin_email", label="Admin's email address", max_length=320)
        org = await service.create_client_org(session, actor=actor, name=field(form, "name", label="Name"))
        await invitations.invite(session, actor=actor, org=org, email=admin_email,
                                 name=field(form, "admin_name", required=False), roles=[Role.ADMIN],
                                 mailer=request.app.state.mailer)
    except InvalidInput as exc:
        return await _clients_page(request, error=exc.message, submitted=submitted, status=400)
    return redirect(request, f"/orgs/{org.id}/members",
                    flash=f"{org.name} created; an invitation was sent to {admin_email.lower()}.")


routes = [
    Route("/members", my_members, methods=["GET"]),
    Route("/orgs/{org_id}/members", org_members, methods=["GET"]),
    Route("/orgs/{org_id}/invitations", invite_submit, methods=["POST"]),
    Route("/orgs/{org_id}/invitations/{invitation_id}/resend", invitation_resend, methods=["POST"]),
    Route("/orgs/{org_id}/invitations/{invitation_id}/revoke", invitation_revoke, methods=["POST"]),
    Route("/orgs/{org_id}/members/{membership_id}/roles", roles_submit, methods=["POST"]),
    Route("/orgs/{org_id}/members/{membership_id}/remove", remove_submit, methods=["POST"]),
    Route("/clients", clients, methods=["GET"]),
    Route("/clients", client_create, methods=["POST"]),
]
