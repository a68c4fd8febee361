"""The webhook sender against a real receiver that verifies with the reference ``standardwebhooks`` library:
signatures (and the cross-language test vector), rotation, retries with the same ``webhook-id``, 410, 3xx,
Retry-After, and the refusal of private targets when they are not allowed."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from portal.accounts.roles import Role
from portal.actors import Actor
from portal.db import utcnow
from portal.notifications import webhooks
from portal.notifications.models import Delivery, DeliveryAttempt, DeliveryStatus, WebhookEndpoint
from portal.notifications.service import ack_token, notify
from portal.notifications.webhook_service import rotate_secret, send_test_event
from portal.notifications.webhooks import parse_retry_after, sign
from tests.conftest import free_port
from tests.notifications.webhook_support import Reply, add_endpoint, breach, deliver_due, fresh, make_due
from tests.notifications.webhook_support import allow_private as allow_private  # fixtures, used by name
from tests.notifications.webhook_support import receiver as receiver
from tests.notifications.webhook_support import settings as settings


async def _hooked(world, settings, receiver, *, topics=("breaches",)):
    org = await world.client_org("Acme Logistics")
    endpoint, secret = await add_endpoint(world, settings, org, receiver.url, topics)
    receiver.secrets = [secret]
    return org, endpoint, secret


async def _notify(world, org):
    [notice] = await notify(world.session, actor=Actor.system("test"), content=breach(), orgs=[org])
    await world.commit()
    return notice


async def _deliveries(db) -> list[Delivery]:
    rows = list((await db.execute(select(Delivery).execution_options(populate_existing=True))).scalars())
    await db.commit()
    return rows


async def _attempts(db) -> list[DeliveryAttempt]:
    rows = list((await db.execute(select(DeliveryAttempt).order_by(DeliveryAttempt.number))).scalars())
    await db.commit()
    return rows


def test_the_signer_reproduces_the_cross_language_test_vector():
    signature = sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                     b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


async def test_a_notice_reaches_the_endpoint_signed_as_the_spec_says(world, db, engine, settings, receiver):
    org, endpoint, _secret = await _hooked(world, settings, receiver)
    notice = await _notify(world, org)

    [result] = await deliver_due(engine, settings)

    assert result.ok and result.response == "HTTP 204"
    [request] = receiver.requests
    [delivery] = await _deliveries(db)
    assert request.verified_with == [0]
    assert request.webhook_id == delivery.webhook_id == f"msg_{delivery.id.hex}"
    assert len(request.signatures) == 1 and request.signatures[0].startswith("v1,")
    assert abs(int(request.timestamp) - utcnow().timestamp()) < 300
    body = json.loads(request.body)
    assert body["type"] == "breach.notified"
    assert dt.datetime.fromisoformat(body["timestamp"]) == notice.created_at
    assert body["data"] == {**notice.payload,
                            "acknowledge_url": f"http://testserver/ack/{ack_token(settings.secret_key, delivery.id)}"}
    assert body["data"]["organisation_id"] == str(org.id)
    assert delivery.status is DeliveryStatus.SENT and delivery.endpoint_id == endpoint.id
    [attempt] = await _attempts(db)
    assert attempt.ok and attempt.response == "HTTP 204"


async def test_only_endpoints_subscribed_to_the_topic_receive_it(world, db, engine, settings, receiver):
    org, _endpoint, _secret = await _hooked(world, settings, receiver, topics=("subprocessors",))
    await _notify(world, org)
    assert await _deliveries(db) == []
    assert await deliver_due(engine, settings) == []
    assert receiver.requests == []


async def test_during_a_rotation_both_secrets_sign_and_either_verifies(world, db, engine, settings, receiver):
    org, endpoint, old_secret = await _hooked(world, settings, receiver)
    _endpoint, new_secret = await _rotate(world, settings, org, endpoint)
    receiver.secrets = [old_secret, new_secret]
    await _notify(world, org)

    [result] = await deliver_due(engine, settings)

    assert result.ok
    [request] = receiver.requests
    assert len(request.signatures) == 2
    assert request.verified_with == [0, 1]  # a receiver still on the old secret and one on the new both accept
    headers = {"webhook-id": request.webhook_id, "webhook-timestamp": request.timestamp,
               "webhook-signature": " ".join(request.signatures)}
    Webhook(old_secret).verify(request.body, headers)
    Webhook(new_secret).verify(request.body, headers)


async def test_after_the_overlap_only_the_new_secret_signs(world, db, engine, settings, receiver):
    org, endpoint, old_secret = await _hooked(world, settings, receiver)
    _endpoint, new_secret = await _rotate(world, settings, org, endpoint)
    stored = await fresh(db, WebhookEndpoint, endpoint.id)
    stored.previous_secret_until = utcnow() - dt.timedelta(seconds=1)
    await db.commit()
    receiver.secrets = [old_secret, new_secret]
    await _notify(world, org)

    await deliver_due(engine, settings)

    [request] = receiver.requests
    assert len(request.signatures) == 1
    assert request.verified_with == [1]


async def _rotate(world, settings, org, endpoint):
    rotated = await rotate_secret(world.session, actor=Actor.system("test"), org_id=org.id, endpoint_id=endpoint.id,
                                  settings=settings)
    await world.commit()
    return rotated


async def test_a_500_is_retried_with_the_same_webhook_id_until_a_200(world, db, engine, settings, receiver):
    org, _endpoint, _secret = await _hooked(world, settings, receiver)
    await _notify(world, org)
    receiver.answer(Reply(500, body="database   unavailable\n"), 200)

    [first] = await deliver_due(engine, settings)
    [delivery] = await _deliveries(db)
    assert not first.ok and first.response == "HTTP 500" and first.error == "database unavailable"
    assert delivery.status is DeliveryStatus.QUEUED and delivery.available_at > utcnow()
    assert await deliver_due(engine, settings) == []  # not due yet: the retry waits its turn

    await make_due(db)
    [second] = await deliver_due(engine, settings)

    assert second.ok and second.response == "HTTP 200"
    first_request, second_request = receiver.requests
    assert first_request.webhook_id == second_request.webhook_id
    assert [r.webhook_id for r in receiver.unique] == [first_request.webhook_id]
    [delivery] = await _deliveries(db)
    assert delivery.status is DeliveryStatus.SENT and delivery.attempts == 2
    assert [(a.number, a.ok, a.response) for a in await _attempts(db)] == [(1, False, "HTTP 500"),
                                                                           (2, True, "HTTP 200")]


async def test_a_duplicate_delivery_is_recognised_by_its_webhook_id(world, db, engine, settings, receiver):
    org, _endpoint, _secret = await _hooked(world, settings, receiver)
    await _notify(world, org)
    await deliver_due(engine, settings)
    [delivery] = await _deliveries(db)
    # A worker that died after sending but before recording sends again: the receiver sees the same id.
    delivery.status = DeliveryStatus.QUEUED
    await db.commit()
    await make_due(db)

    await deliver_due(engine, settings)

    assert [r.duplicate for r in receiver.requests] == [False, True]
    assert len(receiver.unique) == 1


async def test_410_disables_the_endpoint_and_the_delivery_is_dead(world, db, engine, settings, receiver):
    org, endpoint, _secret = await _hooked(world, settings, receiver)
    await _notify(world, org)
    receiver.answer(Reply(410, body="gone"))

    [result] = await deliver_due(engine, settings)

    assert result.gone and not result.ok
    [delivery] = await _deliveries(db)
    assert delivery.status is DeliveryStatus.DEAD and delivery.dead_at is not None
    stored = await fresh(db, WebhookEndpoint, endpoint.id)
    assert not stored.enabled and stored.disabled_at is not None and "410" in stored.disabled_reason

    await _notify(world, org)  # a disabled endpoint receives nothing more
    assert len(await _deliveries(db)) == 1


async def test_a_redirect_is_a_failure_and_is_not_followed(world, db, engine, settings, receiver):
    org, _endpoint, _secret = await _hooked(world, settings, receiver)
    await _notify(world, org)
    receiver.answer(Reply(302, headers={"location": f"{receiver.base_url}/elsewhere"}))

    [result] = await deliver_due(engine, settings)

    assert not result.ok and not result.gone and result.response == "HTTP 302"
    assert "not followed" in result.error and "/elsewhere" in result.error
    assert receiver.elsewhere_hits == 0
    [delivery] = await _deliveries(db)
    assert delivery.status is DeliveryStatus.QUEUED


async def test_retry_after_on_429_pushes_the_next_attempt_back(world, db, engine, settings, receiver):
    org, _endpoint, _secret = await _hooked(world, settings, receiver)
    await _notify(world, org)
    receiver.answer(Reply(429, headers={"retry-after": "3600"}))

    before = utcnow()
    [result] = await deliver_due(engine, settings)

    assert result.retry_after == dt.timedelta(hours=1)
    [delivery] = await _deliveries(db)
    # The schedule alone would retry after about 5 s; the receiver asked for an hour.
    assert delivery.available_at >= before + dt.timedelta(hours=1)


def test_retry_after_accepts_seconds_and_http_dates_and_is_capped():
    now = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120", now) == dt.timedelta(seconds=120)
    assert parse_retry_after("Sun, 22 Nov 2026 12:10:00 GMT", now) == dt.timedelta(minutes=10)
    assert parse_retry_after("999999999", now) == dt.timedelta(hours=24)
    assert parse_retry_after("Sun, 22 Nov 2026 11:00:00 GMT", now) is None  # in the past
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


@pytest.mark.parametrize("status", [400, 404, 500, 503])
async def test_other_errors_are_retried(status, world, db, engine, settings, receiver):
    org, _endpoint, _secret = await _hooked(world, settings, receiver)
    await _notify(world, org)
    receiver.answer(Reply(status, headers={"retry-after": "60"}))

    [result] = await deliver_due(engine, settings)

    assert not result.ok and not result.gone and result.response == f"HTTP {status}"
    assert result.retry_after == (dt.timedelta(seconds=60) if status == 503 else None)
    [delivery] = await _deliveries(db)
    assert delivery.status is DeliveryStatus.QUEUED


async def test_an_unreachable_endpoint_is_a_failed_attempt(world, db, engine, settings, receiver):
    org, endpoint, _secret = await _hooked(world, settings, receiver)
    stored = await fresh(db, WebhookEndpoint, endpoint.id)
    stored.url = f"http://127.0.0.1:{free_port()}/hook"
    await db.commit()
    await _notify(world, org)

    [result] = await deliver_due(engine, settings)

    assert not result.ok and result.response == "" and "ConnectError" in result.error
    [attempt] = await _attempts(db)
    assert not attempt.ok and attempt.error == result.error


async def test_a_receiver_that_does_not_answer_in_time_is_a_failed_attempt(world, db, engine, settings, receiver,
                                                                            monkeypatch):
    monkeypatch.setattr(webhooks, "TIMEOUT", 0.2)  # 15 s in production
    org, _endpoint, _secret = await _hooked(world, settings, receiver)
    await _notify(world, org)
    receiver.answer(Reply(200, delay=1))

    [result] = await deliver_due(engine, settings)

    assert not result.ok and result.response == "" and result.error == "No answer within 0.2 s."
    [delivery] = await _deliveries(db)
    assert delivery.status is DeliveryStatus.QUEUED


async def test_the_test_event_goes_to_that_endpoint_only(world, db, engine, settings, receiver):
    org, endpoint, _secret = await _hooked(world, settings, receiver, topics=("subprocessors",))
    other, _other_secret = await add_endpoint(world, settings, org, receiver.url + "?other=1", ("subprocessors",))
    await send_test_event(world.session, actor=Actor.system("test"), org_id=org.id, endpoint_id=endpoint.id,
                          settings=settings)
    await world.commit()

    [result] = await deliver_due(engine, settings)

    assert result.ok
    [request] = receiver.requests
    body = json.loads(request.body)
    assert body["type"] == "webhook.test"
    assert body["data"]["endpoint_id"] == str(endpoint.id) and body["data"]["notice_type"] == "webhook_test"
    [delivery] = await _deliveries(db)
    assert delivery.endpoint_id == endpoint.id != other.id


@pytest.mark.parametrize("allow_private", [False])
async def test_a_private_target_is_refused_at_send_time(allow_private, world, db, engine, settings, receiver):
    # Saved while private targets were allowed (or before its DNS changed); now they are not.
    permissive = dataclasses.replace(settings, webhook_allow_private=True)
    org = await world.client_org("Acme Logistics")
    for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
        _endpoint, secret = await add_endpoint(world, permissive, org, url)
        receiver.secrets.append(secret)
    await world.person(org, Role.MEMBER)
    await _notify(world, org)

    results = await deliver_due(engine, settings)

    assert len(results) == 2
    for result in results:
        assert not result.ok and result.response == ""
        assert "Not sent" in result.error and "loopback address" in result.error
    assert receiver.requests == []
    assert {d.status for d in await _deliveries(db)} == {DeliveryStatus.QUEUED}  # retried later, DNS may change
