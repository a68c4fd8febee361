"""Public notice pages: subscribing without an account, confirming, one-click unsubscribe, acknowledging a notice.

No login: the secret in each link is the authority. Confirming and acknowledging are a button on the linked page
(a normal form with its CSRF token), so a mail scanner that merely opens links changes nothing. The unsubscribe
POST is the exception by design (RFC 8058): mail clients send it without cookies or a form token, with the body
``List-Unsubscribe=One-Click``, and it answers 200 with a page rather than a redirect.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from portal.actors import Actor
from portal.errors import InvalidInput, TooManyRequests
from portal.notifications import evidence, subscriptions
from portal.notifications.models import SubscriberStatus
from portal.web import client_ip, db, read_form, redirect, render, settings_of

CHECK_INBOX = ("Thank you. If this address is not subscribed yet, a confirmation email is on its way: open the link "
               "in it to start receiving updates.")


def _public_actor(request: Request, label: str) -> Actor:
    return Actor(label=label, ip=client_ip(request))


def _subscribe_page(request: Request, *, email: str = "", topics: list[str] | None = None,
                    error: str | None = None, status: int = 200) -> Response:
    return render(request, "public/subscribe.html", {
        "public_topics": subscriptions.PUBLIC_TOPICS,
        "email": email,
        "chosen": [t.value for t in subscriptions.PUBLIC_TOPICS] if topics is None else topics,
        "error": error,
    }, status=status)


async def subscribe_page(request: Request) -> Response:
    """The form, prefilled from the query when another page's subscribe box sent the visitor here (that box is a
    plain GET form, so the page holding it stays the same for everyone and can be cached)."""
    email = request.query_params.get("email", "").strip()[:320]
    topics = [t for t in request.query_params.getlist("topics") if t in {p.value for p in subscriptions.PUBLIC_TOPICS}]
    return _subscribe_page(request, email=email, topics=topics or None)


async def subscribe_submit(request: Request) -> Response:
    form = await read_form(request)
    raw_email = form.get("email")
    email = raw_email.strip()[:320] if isinstance(raw_email, str) else ""
    topics = [value for value in form.getlist("topics") if isinstance(value, str)]
    try:
        await subscriptions.request_subscription(db(request), actor=_public_actor(request, "public subscribe form"),
                                                 email=email, topics=topics, base_url=settings_of(request).base_url)
    except (InvalidInput, TooManyRequests) as exc:
        return _subscribe_page(request, email=email, topics=topics, error=exc.message, status=exc.status)
    return redirect(request, "/subscribe", flash=CHECK_INBOX)


async def confirm_page(request: Request) -> Response:
    subscriber = await subscriptions.pending_subscriber(db(request), token=request.path_params["token"])
    return render(request, "public/confirm.html", {"subscriber": subscriber, "topic_names": subscriptions.TOPIC_NAMES,
                                                   "token": request.path_params["token"]})


async def confirm_submit(request: Request) -> Response:
    await read_form(request)
    await subscriptions.confirm_subscription(db(request), actor=_public_actor(request, "public subscriber"),
                                             token=request.path_params["token"])
    return redirect(request, "/subscribe", flash="Your subscription is confirmed. Every update we send has a "
                                                 "link to unsubscribe in one click.")


async def unsubscribe_page(request: Request) -> Response:
    subscriber = await subscriptions.subscriber_for_link(db(request), secret_key=settings_of(request).secret_key,
                                                         token=request.path_params["token"])
    return render(request, "public/unsubscribe.html", {
        "subscriber": subscriber, "token": request.path_params["token"],
        "left": subscriber.status is SubscriberStatus.UNSUBSCRIBED,
    })


async def unsubscribe_submit(request: Request) -> Response:
    """RFC 8058 one-click: no CSRF token and no cookie needed; the signed link names the subscriber."""
    subscriber = await subscriptions.subscriber_for_link(db(request), secret_key=settings_of(request).secret_key,
                                                         token=request.path_params["token"], for_update=True)
    await subscriptions.unsubscribe(db(request), actor=_public_actor(request, "one-click unsubscribe"),
                                    subscriber=subscriber)
    return render(request, "public/unsubscribe.html", {"subscriber": subscriber, "token": "", "left": True})


async def ack_page(request: Request) -> Response:
    delivery = await evidence.delivery_for_ack_link(db(request), secret_key=settings_of(request).secret_key,
                                                    token=request.path_params["token"])
    return render(request, "public/ack.html", {"delivery": delivery, "notice": delivery.notice,
                                               "token": request.path_params["token"]})


async def ack_submit(request: Request) -> Response:
    await read_form(request)
    token = request.path_params["token"]
    delivery = await evidence.delivery_for_ack_link(db(request), secret_key=settings_of(request).secret_key,
                                                    token=token)
    await evidence.acknowledge(db(request), actor=_public_actor(request, "acknowledgement link"),
                               delivery=delivery, by="link")
    return redirect(request, f"/ack/{token}", flash="Thank you: your acknowledgement is recorded.")


routes: list[BaseRoute] = [
    Route("/subscribe", subscribe_page, methods=["GET"]),
    Route("/subscribe", subscribe_submit, methods=["POST"]),
    Route("/subscribe/confirm/{token}", confirm_page, methods=["GET"]),
    Route("/subscribe/confirm/{token}", confirm_submit, methods=["POST"]),
    Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
    Route("/unsubscribe/{token}", unsubscribe_submit, methods=["POST"]),
    Route("/ack/{token}", ack_page, methods=["GET"]),
    Route("/ack/{token}", ack_submit, methods=["POST"]),
]
