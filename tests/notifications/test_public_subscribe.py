"""Public subscribers: double opt-in through the outbox, one-click unsubscribe (RFC 8058), caps, bad input, CSRF."""

from __future__ import annotations

import datetime as dt
import re

import httpx
from sqlalchemy import func, select

from portal.audit.models import AuditEvent
from portal.notifications import catalog, subscriptions
from portal.notifications.models import Delivery, DeliveryStatus, Notice, PublicSubscriber, SubscriberStatus
from portal.notifications.service import unsubscribe_token
from portal.security import hash_token
from tests.conftest import post_form
from tests.notifications.recipients_support import deliver_due, deliveries_of, send, subprocessor_change

READER = "reader@example.org"


def ai_change(version: int = 3) -> catalog.NoticeContent:
    return catalog.ai_commitment_change(version=version, effective_date=dt.date(2026, 12, 1), expanding=False,
                                        summary="Shorter retention of prompts",
                                        link="http://testserver/ai-commitments")


async def _subscriber(db, email: str = READER) -> PublicSubscriber | None:
    return (await db.execute(select(PublicSubscriber).where(PublicSubscriber.email == email)
                             .execution_options(populate_existing=True))).scalar_one_or_none()


async def _confirmation_deliveries(db, email: str = READER) -> list[Delivery]:
    return list((await db.execute(
        select(Delivery).join(Notice).where(Notice.type == "subscription_confirmation", Delivery.email == email)
        .order_by(Delivery.created_at).execution_options(populate_existing=True))).scalars())


async def _subscribe(client, email: str = READER, topics=("subprocessors", "ai_commitments")) -> httpx.Response:
    return await post_form(client, "/subscribe", {"email": email, "topics": list(topics)})


def _unsubscribe_path(message) -> str:
    match = re.fullmatch(r"<https?://[^/]+(/unsubscribe/[^>]+)>", message["List-Unsubscribe"])
    assert match, message["List-Unsubscribe"]
    return match.group(1)


async def test_double_opt_in_then_one_click_unsubscribe(client, app, db, engine, settings, mail):
    form = await client.get("/subscribe")
    assert form.status_code == 200
    assert 'value="subprocessors"' in form.text and 'value="ai_commitments"' in form.text
    assert 'value="breaches"' not in form.text

    response = await _subscribe(client, "Reader@Example.org ")

    assert response.status_code == 303 and response.headers["location"] == "/subscribe"
    assert "a confirmation email is on its way" in (await client.get("/subscribe")).text
    subscriber = await _subscriber(db)
    assert subscriber.status is SubscriberStatus.PENDING
    assert subscriber.topics == ["subprocessors", "ai_commitments"]
    [queued] = await _confirmation_deliveries(db)
    assert queued.status is DeliveryStatus.QUEUED  # the confirmation goes through the outbox like any notice

    # Not a recipient before confirming.
    [public] = await send(db, subprocessor_change(6), [], include_public=True)
    assert await deliveries_of(db, public) == []

    await deliver_due(engine, settings)
    link = mail.link_in(mail.last_to(READER), "/subscribe/confirm/")
    token = link.rsplit("/", 1)[1]
    subscriber = await _subscriber(db)
    assert subscriber.confirm_token_hash == hash_token(token) and token not in subscriber.confirm_token_hash

    page = await client.get(link)  # opening the link (as a mail scanner would) confirms nothing
    assert page.status_code == 200 and "Confirm my subscription" in page.text and READER in page.text
    assert (await _subscriber(db)).status is SubscriberStatus.PENDING
    confirmed = await post_form(client, link)
    assert confirmed.status_code == 303
    subscriber = await _subscriber(db)
    assert subscriber.status is SubscriberStatus.CONFIRMED and subscriber.confirmed_at is not None
    assert subscriber.confirm_token_hash is None
    assert (await client.get(link)).status_code == 404  # the link works once

    [public] = await send(db, subprocessor_change(7), [], include_public=True)
    [delivery] = await deliveries_of(db, public)
    assert delivery.email == READER and delivery.subscriber_id == subscriber.id
    await deliver_due(engine, settings)
    notice_mail = mail.last_to(READER)
    assert "version 7" in notice_mail["Subject"]
    assert notice_mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # The mail client's one-click POST: no cookie, no CSRF token, just the RFC 8058 body.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as agent:
        left = await agent.post(_unsubscribe_path(notice_mail), content=b"List-Unsubscribe=One-Click",
                                headers={"content-type": "application/x-www-form-urlencoded"})
    assert left.status_code == 200 and "You are unsubscribed" in left.text
    assert (await _subscriber(db)).status is SubscriberStatus.UNSUBSCRIBED

    before = len(mail.messages)
    [public] = await send(db, subprocessor_change(8), [], include_public=True)
    [ai_public] = await send(db, ai_change(), [], include_public=True)
    assert await deliveries_of(db, public) == [] and await deliveries_of(db, ai_public) == []
    await deliver_due(engine, settings)
    assert len(mail.messages) == before


async def test_a_subscriber_receives_only_the_topics_they_chose(client, db):
    await _subscribe(client, topics=["ai_commitments"])
    subscriber = await _subscriber(db)
    subscriber.status = SubscriberStatus.CONFIRMED
    await db.commit()

    [sub_change] = await send(db, subprocessor_change(), [], include_public=True)
    [ai_public] = await send(db, ai_change(), [], include_public=True)

    assert await deliveries_of(db, sub_change) == []
    assert [d.email for d in await deliveries_of(db, ai_public)] == [READER]


async def test_asking_again_answers_the_same_and_creates_no_duplicate(client, db):
    first = await _subscribe(client)
    again = await _subscribe(client, topics=["ai_commitments"])

    assert first.status_code == again.status_code == 303
    assert first.headers["location"] == again.headers["location"]
    assert await db.scalar(select(func.count()).select_from(PublicSubscriber)) == 1
    assert (await _subscriber(db)).topics == ["ai_commitments"]
    old, new = await _confirmation_deliveries(db)
    assert old.notice_id != new.notice_id  # each request queues its own confirmation, with a new link

    # At most CONFIRMATIONS_PER_ADDRESS mails an hour reach one inbox; the answer does not change.
    for _ in range(3):
        assert (await _subscribe(client)).status_code == 303
    assert len(await _confirmation_deliveries(db)) == subscriptions.CONFIRMATIONS_PER_ADDRESS


async def test_a_confirmed_address_gets_no_new_mail_and_stays_confirmed(client, db):
    await _subscribe(client, topics=["ai_commitments"])
    subscriber = await _subscriber(db)
    subscriber.status = SubscriberStatus.CONFIRMED
    subscriber.confirm_token_hash = None
    await db.commit()

    response = await _subscribe(client, topics=["subprocessors"])

    assert response.status_code == 303 and response.headers["location"] == "/subscribe"
    subscriber = await _subscriber(db)
    assert subscriber.status is SubscriberStatus.CONFIRMED and subscriber.topics == ["ai_commitments"]
    assert len(await _confirmation_deliveries(db)) == 1


async def test_after_unsubscribing_a_new_request_needs_a_new_confirmation(client, app, db, engine, settings, mail):
    await _subscribe(client)
    await deliver_due(engine, settings)
    await post_form(client, mail.link_in(mail.last_to(READER), "/subscribe/confirm/"))
    subscriber = await _subscriber(db)
    await client.post(f"/unsubscribe/{unsubscribe_token(settings.secret_key, subscriber.id)}")
    assert (await _subscriber(db)).status is SubscriberStatus.UNSUBSCRIBED

    await _subscribe(client, topics=["subprocessors"])

    subscriber = await _subscriber(db)
    assert subscriber.status is SubscriberStatus.PENDING and subscriber.topics == ["subprocessors"]
    assert len(await _confirmation_deliveries(db)) == 2


async def test_the_portal_caps_confirmation_mail_per_hour(client, db, monkeypatch):
    monkeypatch.setattr(subscriptions, "CONFIRMATIONS_PER_HOUR", 2)
    for n in range(2):
        assert (await _subscribe(client, f"person{n}@example.org")).status_code == 303

    refused = await _subscribe(client, "person9@example.org")

    assert refused.status_code == 429
    assert "too many subscription requests" in refused.text
    assert 'value="person9@example.org"' in refused.text
    assert await _subscriber(db, "person9@example.org") is None


async def test_bad_input_is_explained_and_changes_nothing(client, db):
    cases = [
        ({"email": "not-an-address", "topics": ["subprocessors"]}, "Enter a valid email address."),
        ({"email": READER}, "Choose at least one kind of update."),
        ({"email": READER, "topics": ["breaches"]}, "Unknown topic"),
    ]
    for data, message in cases:
        response = await post_form(client, "/subscribe", data)
        assert response.status_code == 400, data
        assert message in response.text
        assert f'value="{data["email"]}"' in response.text  # what was typed is kept
    assert await db.scalar(select(func.count()).select_from(PublicSubscriber)) == 0
    assert await db.scalar(select(func.count()).select_from(Notice)) == 0


async def test_subscribing_and_confirming_need_the_form_token(client, db, engine, settings, mail):
    refused = await client.post("/subscribe", data={"email": READER, "topics": "subprocessors"})
    assert refused.status_code == 403
    assert await _subscriber(db) is None

    await _subscribe(client)
    await deliver_due(engine, settings)
    link = mail.link_in(mail.last_to(READER), "/subscribe/confirm/")
    forged = await client.post(link, data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert (await _subscriber(db)).status is SubscriberStatus.PENDING


async def test_unsubscribing_cancels_what_is_still_queued(client, db, settings):
    await _subscribe(client)
    subscriber = await _subscriber(db)
    subscriber.status = SubscriberStatus.CONFIRMED
    await db.commit()
    [public] = await send(db, subprocessor_change(), [], include_public=True)
    token = unsubscribe_token(settings.secret_key, subscriber.id)
    page = await client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200 and ">Unsubscribe</button>" in page.text
    assert (await _subscriber(db)).status is SubscriberStatus.CONFIRMED  # showing the page changes nothing

    left = await client.post(f"/unsubscribe/{token}")
    again = await client.post(f"/unsubscribe/{token}")

    assert left.status_code == again.status_code == 200
    [delivery] = await deliveries_of(db, public)
    assert delivery.status is DeliveryStatus.CANCELLED
    events = (await db.execute(select(AuditEvent.tag, AuditEvent.data)
                               .where(AuditEvent.tag.startswith("public_subscriber:")).order_by(AuditEvent.seq))).all()
    assert [tag for tag, _ in events] == ["public_subscriber:requested", "public_subscriber:unsubscribed"]
    assert all(READER not in str(data) for _, data in events)  # the trail keeps no subscriber's address


async def test_forged_or_unknown_links_answer_404(client, db, settings):
    await _subscribe(client)
    subscriber = await _subscriber(db)
    token = unsubscribe_token(settings.secret_key, subscriber.id)
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    for url in (f"/unsubscribe/{tampered}", "/unsubscribe/nonsense", "/subscribe/confirm/nonsense"):
        assert (await client.get(url)).status_code == 404, url
    assert (await client.post(f"/unsubscribe/{tampered}")).status_code == 404
    assert (await _subscriber(db)).status is SubscriberStatus.PENDING
