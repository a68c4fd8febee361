"""Notice pages for people who log in: a client's notice settings and evidence, the vendor's evidence and mail.

``/orgs/{org_id}/notices...`` serve a client's own members and vendor staff looking after that client; anyone else
gets 404. ``/notices`` and ``/outgoing-mail`` are the vendor's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.accounts import service as accounts_service
from portal.accounts.models import Membership, Organisation
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.errors import InvalidInput, NotFound
from portal.notifications import evidence, subscriptions
from portal.notifications import outgoing_mail as mailbox
from portal.notifications.catalog import NoticeType, Topic
from portal.notifications.models import DeliveryStatus
from portal.web import actor_of, db, read_form, redirect, render, require_member, settings_of


async def _client_org(request: Request, actor: Actor) -> Organisation:
    """The client organisation in the path, if the actor belongs to it or looks after clients (else 404)."""
    org = await accounts_service.visible_org(db(request), actor=actor, org_id=request.path_params["org_id"])
    if org.is_vendor:
        raise NotFound()
    if actor.org is not None and actor.org.id != org.id:
        actor.require(Permission.VIEW_CLIENTS)
    return org


def _own_membership(member: Membership, org: Organisation) -> Membership | None:
    return member if member.org.id == org.id else None


# ---------------------------------------------------------------- a client's notice settings

async def _settings_page(request: Request, org: Organisation, *, error: str | None = None,
                         chosen: list[str] | None = None, status: int = 200) -> Response:
    member = require_member(request)
    session = db(request)
    own = _own_membership(member, org)
    return render(request, "notices/settings.html", {
        "org": org,
        "topics": await subscriptions.recipients_by_topic(session, org=org),
        "missing": await subscriptions.missing_contacts(session, org=org),
        "own": own,
        "my_topics": chosen if chosen is not None else (
            await subscriptions.member_topics(session, membership=own) if own else []),
        "all_topics": list(Topic),
        "label": subscriptions.notice_label,
        "error": error,
    }, status=status)


async def notice_settings(request: Request) -> Response:
    org = await _client_org(request, actor_of(request))
    return await _settings_page(request, org)


async def my_subscriptions_submit(request: Request) -> Response:
    form = await read_form(request)
    actor = actor_of(request)
    org = await _client_org(request, actor)
    chosen = [value for value in form.getlist("topics") if isinstance(value, str)]
    own = _own_membership(require_member(request), org)
    if own is None:
        raise NotFound()
    try:
        topics = await subscriptions.set_member_topics(db(request), actor=actor, membership=own, topics=chosen)
    except InvalidInput as exc:
        return await _settings_page(request, org, error=exc.message, chosen=chosen, status=400)
    message = ("Your subscriptions were saved." if topics else
               "You now receive only the notices your roles bring.")
    return redirect(request, f"/orgs/{org.id}/notices/settings", flash=message)


# ---------------------------------------------------------------- evidence: lists and details

async def _list_page(request: Request, org: Organisation | None) -> Response:
    actor = actor_of(request)
    raw = {name: request.query_params.get(name, "") for name in ("type", "org", "status", "before")}
    session = db(request)
    error = None
    try:
        filters = evidence.parse_notice_filters(raw)
        page = await evidence.notices_page(session, actor=actor, org=org, filters=filters, with_choices=True)
    except InvalidInput as exc:
        filters, error = evidence.NoticeFilters(), exc.message
        page = await evidence.notices_page(session, actor=actor, org=org, filters=filters, with_choices=True)
        page = evidence.NoticesPage([], None, page.organisations)  # the form again, without results
    return render(request, "notices/list.html", {
        "org": org,
        "page": page,
        "filters": filters,
        "values": raw,
        "error": error,
        "types": list(NoticeType),
        "label": subscriptions.notice_label,
        "statuses": list(DeliveryStatus),
        "base": f"/orgs/{org.id}/notices" if org else "/notices",
        "can_read_mail": org is None and mailbox.can_read_mail(actor),
    }, status=400 if error else 200)


async def org_notices(request: Request) -> Response:
    org = await _client_org(request, actor_of(request))
    return await _list_page(request, org)


async def org_notice(request: Request) -> Response:
    actor = actor_of(request)
    org = await _client_org(request, actor)
    detail = await evidence.notice_detail(db(request), actor=actor, org=org,
                                          notice_id=request.path_params["notice_id"])
    return render(request, "notices/detail.html", {"detail": detail, "org": org, "label": subscriptions.notice_label,
                                                   "back": f"/orgs/{org.id}/notices"})


async def all_notices(request: Request) -> Response:
    member = require_member(request)
    if not member.org.is_vendor:
        return redirect(request, f"/orgs/{member.org.id}/notices")
    return await _list_page(request, None)


async def any_notice(request: Request) -> Response:
    detail = await evidence.notice_detail(db(request), actor=actor_of(request), org=None,
                                          notice_id=request.path_params["notice_id"])
    return render(request, "notices/detail.html", {"detail": detail, "org": None, "back": "/notices",
                                                   "label": subscriptions.notice_label})


# ---------------------------------------------------------------- outgoing mail

async def outgoing_mail(request: Request) -> Response:
    files, total = await mailbox.outgoing_mail(actor=actor_of(request), directory=settings_of(request).mail_dir)
    return render(request, "notices/outgoing_mail.html", {"files": files, "total": total,
                                                           "smtp": bool(settings_of(request).smtp_url)})


async def outgoing_message(request: Request) -> Response:
    message = await mailbox.outgoing_message(actor=actor_of(request), directory=settings_of(request).mail_dir,
                                              name=request.path_params["name"])
    return render(request, "notices/outgoing_message.html", {"message": message})


routes: list[BaseRoute] = [
    Route("/orgs/{org_id}/notices/settings", notice_settings, methods=["GET"]),
    Route("/orgs/{org_id}/notices/subscriptions", my_subscriptions_submit, methods=["POST"]),
    Route("/orgs/{org_id}/notices", org_notices, methods=["GET"]),
    Route("/orgs/{org_id}/notices/{notice_id}", org_notice, methods=["GET"]),
    Route("/notices", all_notices, methods=["GET"]),
    Route("/notices/{notice_id}", any_notice, methods=["GET"]),
    Route("/outgoing-mail", outgoing_mail, methods=["GET"]),
    Route("/outgoing-mail/{name}", outgoing_message, methods=["GET"]),
]
