"""Webhook endpoint pages: create (secret shown once), change, rotate, enable/disable, delete, send a test event,
latest deliveries; bad input; private targets; CSRF; permissions; other tenants."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from portal.accounts.roles import Role
from portal.actors import Actor
from portal.audit.models import AuditEvent
from portal.notifications.models import Channel, Delivery, DeliveryStatus, Notice, WebhookEndpoint
from portal.notifications.service import notify
from portal.security import decrypt_field
from tests.conftest import TEST_SECRET, post_form
from tests.notifications.webhook_support import add_endpoint, breach, deliver_due, fresh
from tests.notifications.webhook_support import allow_private as allow_private  # fixtures, used by name
from tests.notifications.webhook_support import receiver as receiver
from tests.notifications.webhook_support import settings as settings

SECRET_RE = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")
HOOK = "http://127.0.0.1:9/dpa-hook"
ACTIONS = ("rotate", "enable", "disable", "delete", "test")


@pytest.fixture
async def acme(world):
    return await world.client_org("Acme Logistics")


@pytest.fixture
async def acme_admin(world, acme):
    return await world.person(acme, Role.ADMIN, email="ada@acme.example", name="Ada Admin")


@pytest.fixture
async def admin(login_as, acme_admin):
    return await login_as(acme_admin)


def page_of(org) -> str:
    return f"/orgs/{org.id}/webhooks"


async def endpoints(db) -> list[WebhookEndpoint]:
    rows = list((await db.execute(select(WebhookEndpoint).execution_options(populate_existing=True))).scalars())
    await db.commit()
    return rows


async def audit_tags(db) -> list[str]:
    rows = list((await db.execute(select(AuditEvent.tag, AuditEvent.data).order_by(AuditEvent.seq))).all())
    await db.commit()
    return [tag for tag, _data in rows if tag.startswith("webhook_endpoint:")]


async def audit_count(db) -> int:
    total = int(await db.scalar(select(func.count()).select_from(AuditEvent)))
    await db.commit()
    return total


async def test_empty_state_offers_the_form_with_every_topic(admin, acme):
    page = await admin.get(page_of(acme))
    assert page.status_code == 200
    assert "No webhook endpoints yet" in page.text
    for topic in ("subprocessors", "dpa", "breaches", "ai_commitments", "compliance"):
        assert f'name="topics" value="{topic}"' in page.text


async def test_settings_link_leads_to_the_own_organisation(admin, acme):
    response = await admin.get("/settings/webhooks")
    assert response.status_code == 303 and response.headers["location"] == page_of(acme)


async def test_the_secret_is_shown_once_and_stored_encrypted(admin, acme, db):
    created = await post_form(admin, page_of(acme), {"url": HOOK, "description": "GRC tool",
                                                     "topics": ["breaches", "subprocessors"]})
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    secret = SECRET_RE.search(created.text).group(0)

    [endpoint] = await endpoints(db)
    assert endpoint.url == HOOK and endpoint.description == "GRC tool"
    assert endpoint.topics == ["breaches", "subprocessors"] and endpoint.enabled
    assert secret not in endpoint.secret_encrypted
    assert decrypt_field(TEST_SECRET, endpoint.secret_encrypted) == secret

    listing = await admin.get(page_of(acme))
    detail = await admin.get(f"{page_of(acme)}/{endpoint.id}")
    assert HOOK in listing.text and HOOK in detail.text
    for later in (listing, detail):
        assert "whsec_" not in later.text
    events = (await db.execute(select(AuditEvent).where(AuditEvent.tag == "webhook_endpoint:created"))).scalars()
    [event] = list(events)
    await db.commit()
    assert event.data == {"url": HOOK, "description": "GRC tool", "topics": ["breaches", "subprocessors"]}
    assert "whsec_" not in str(event.data)


@pytest.mark.parametrize(("form", "message"), [
    ({"url": HOOK, "description": "no topics"}, "Choose at least one topic"),
    ({"url": "ftp://files.example/x", "topics": ["dpa"]}, "must start with https://"),
    ({"url": "", "topics": ["dpa"]}, "The URL is required"),
    ({"url": HOOK, "topics": ["dpa", "gossip"]}, "Unknown topic"),
    ({"url": HOOK, "topics": ["dpa"], "description": "x" * 201}, "description is too long"),
])
async def test_bad_input_is_refused_with_the_input_kept(form, message, admin, acme, db):
    before = await audit_count(db)
    response = await post_form(admin, page_of(acme), form)
    assert response.status_code == 400
    assert message in response.text
    if form["url"]:
        assert f'value="{form["url"]}"' in response.text
    assert "whsec_" not in response.text
    assert await endpoints(db) == []
    assert await audit_count(db) == before


async def test_the_same_url_twice_is_refused(admin, acme, db):
    await post_form(admin, page_of(acme), {"url": HOOK, "topics": ["dpa"]})
    again = await post_form(admin, page_of(acme), {"url": HOOK, "topics": ["breaches"]})
    assert again.status_code == 400 and "already has this URL" in again.text
    assert len(await endpoints(db)) == 1


@pytest.mark.parametrize("allow_private", [False])
@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/hook", "http://localhost/hook", "http://[::1]/hook",
                                 "http://169.254.169.254/latest/meta-data/", "http://192.168.0.10/hook"])
async def test_a_private_target_is_refused_when_saved(allow_private, url, admin, acme, db):
    response = await post_form(admin, page_of(acme), {"url": url, "topics": ["breaches"]})
    assert response.status_code == 400
    assert "cannot receive webhooks" in response.text and "public addresses" in response.text
    assert await endpoints(db) == []


async def test_rotation_shows_the_new_secret_once_and_keeps_the_old_one_signing(world, settings, admin, acme, db):
    endpoint, old_secret = await add_endpoint(world, settings, acme, HOOK)
    rotated = await post_form(admin, f"{page_of(acme)}/{endpoint.id}/rotate")
    assert rotated.status_code == 200 and rotated.headers["cache-control"] == "no-store"
    new_secret = SECRET_RE.search(rotated.text).group(0)
    assert new_secret != old_secret

    stored = await fresh(db, WebhookEndpoint, endpoint.id)
    assert decrypt_field(TEST_SECRET, stored.secret_encrypted) == new_secret
    assert decrypt_field(TEST_SECRET, stored.previous_secret_encrypted) == old_secret
    hours = (stored.previous_secret_until - stored.created_at).total_seconds() / 3600
    assert 23.9 < hours < 24.1
    detail = await admin.get(f"{page_of(acme)}/{endpoint.id}")
    assert "the previous secret also signs until" in detail.text
    assert "whsec_" not in detail.text
    assert await audit_tags(db) == ["webhook_endpoint:created", "webhook_endpoint:secret_rotated"]


async def test_changing_url_description_and_topics(world, settings, admin, acme, db):
    endpoint, _secret = await add_endpoint(world, settings, acme, HOOK)
    saved = await post_form(admin, f"{page_of(acme)}/{endpoint.id}",
                            {"url": HOOK + "/v2", "description": "New", "topics": ["dpa", "breaches"]})
    assert saved.status_code == 303
    stored = await fresh(db, WebhookEndpoint, endpoint.id)
    assert (stored.url, stored.description, stored.topics) == (HOOK + "/v2", "New", ["breaches", "dpa"])
    assert stored.secret_encrypted == endpoint.secret_encrypted

    refused = await post_form(admin, f"{page_of(acme)}/{endpoint.id}", {"url": "nope", "topics": ["dpa"]})
    assert refused.status_code == 400 and 'value="nope"' in refused.text
    assert (await fresh(db, WebhookEndpoint, endpoint.id)).url == HOOK + "/v2"


async def _queued_breach(world, acme):
    await notify(world.session, actor=Actor.system("test"), content=breach(), orgs=[acme])
    await world.commit()


async def test_disabling_cancels_what_is_queued_and_enabling_takes_new_notices(world, settings, admin, acme, db):
    endpoint, _secret = await add_endpoint(world, settings, acme, HOOK)
    await _queued_breach(world, acme)

    disabled = await post_form(admin, f"{page_of(acme)}/{endpoint.id}/disable")
    assert disabled.status_code == 303
    stored = await fresh(db, WebhookEndpoint, endpoint.id)
    assert not stored.enabled and stored.disabled_reason == "disabled by user:ada@acme.example"
    [delivery] = list((await db.execute(select(Delivery).where(Delivery.channel == Channel.WEBHOOK))).scalars())
    await db.commit()
    assert delivery.status is DeliveryStatus.CANCELLED
    page = await admin.get(f"{page_of(acme)}/{endpoint.id}")
    assert "Disabled" in page.text and "Cancelled" in page.text

    enabled = await post_form(admin, f"{page_of(acme)}/{endpoint.id}/enable")
    assert enabled.status_code == 303
    assert (await fresh(db, WebhookEndpoint, endpoint.id)).enabled
    await _queued_breach(world, acme)
    assert await db.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.channel == Channel.WEBHOOK, Delivery.status == DeliveryStatus.QUEUED)) == 1
    await db.commit()
    assert await audit_tags(db) == ["webhook_endpoint:created", "webhook_endpoint:disabled",
                                    "webhook_endpoint:enabled"]


async def test_deleting_keeps_past_deliveries_as_evidence(world, settings, admin, acme, db):
    endpoint, _secret = await add_endpoint(world, settings, acme, HOOK)
    await _queued_breach(world, acme)

    deleted = await post_form(admin, f"{page_of(acme)}/{endpoint.id}/delete")

    assert deleted.status_code == 303 and deleted.headers["location"] == page_of(acme)
    assert await endpoints(db) == []
    [delivery] = list((await db.execute(select(Delivery).where(Delivery.channel == Channel.WEBHOOK)
                                        .execution_options(populate_existing=True))).scalars())
    await db.commit()
    assert delivery.status is DeliveryStatus.CANCELLED and delivery.endpoint_id is None
    assert (await admin.get(f"{page_of(acme)}/{endpoint.id}")).status_code == 404
    assert await audit_tags(db) == ["webhook_endpoint:created", "webhook_endpoint:deleted"]


async def test_send_test_event_is_delivered_and_shown_with_its_attempt(world, settings, engine, admin, acme, db,
                                                                       receiver):
    endpoint, secret = await add_endpoint(world, settings, acme, receiver.url)
    receiver.secrets = [secret]

    queued = await post_form(admin, f"{page_of(acme)}/{endpoint.id}/test")
    assert queued.status_code == 303
    [notice] = list((await db.execute(select(Notice))).scalars())
    await db.commit()
    assert notice.type == "webhook_test" and notice.org_id == acme.id
    await deliver_due(engine, settings)

    [request] = receiver.requests
    assert request.verified_with == [0]
    page = await admin.get(f"{page_of(acme)}/{endpoint.id}")
    assert "Webhook test event" in page.text and "HTTP 204" in page.text and "Sent" in page.text
    assert request.webhook_id in page.text


async def test_a_disabled_endpoint_gets_no_test_event(world, settings, admin, acme, db):
    endpoint, _secret = await add_endpoint(world, settings, acme, HOOK)
    await post_form(admin, f"{page_of(acme)}/{endpoint.id}/disable")
    refused = await post_form(admin, f"{page_of(acme)}/{endpoint.id}/test")
    assert refused.status_code == 400 and "enable it before sending a test event" in refused.text
    assert await db.scalar(select(func.count()).select_from(Notice)) == 0
    await db.commit()


async def test_every_form_refuses_a_request_without_its_csrf_token(world, settings, admin, acme, db):
    endpoint, _secret = await add_endpoint(world, settings, acme, HOOK)
    before = await audit_count(db)
    urls = [page_of(acme), f"{page_of(acme)}/{endpoint.id}",
            *(f"{page_of(acme)}/{endpoint.id}/{action}" for action in ACTIONS)]
    for url in urls:
        without = await admin.post(url, data={"url": HOOK + "/x", "topics": "dpa"})
        forged = await admin.post(url, data={"csrf_token": "forged", "url": HOOK + "/x", "topics": "dpa"})
        assert without.status_code == forged.status_code == 403, url
    assert await audit_count(db) == before
    assert [e.url for e in await endpoints(db)] == [HOOK]


async def test_another_organisations_admin_gets_404_everywhere(world, settings, login_as, acme, db):
    endpoint, _secret = await add_endpoint(world, settings, acme, "http://127.0.0.1:9/acme-secret-hook")
    globex = await world.client_org("Globex")
    intruder = await login_as(await world.person(globex, Role.ADMIN))
    before = await audit_count(db)
    base = page_of(acme)
    for url in (base, f"{base}/{endpoint.id}"):
        response = await intruder.get(url)
        assert response.status_code == 404, url
        assert "acme-secret-hook" not in response.text and "Acme Logistics" not in response.text
    for url in (base, f"{base}/{endpoint.id}", *(f"{base}/{endpoint.id}/{a}" for a in ACTIONS)):
        response = await post_form(intruder, url, {"url": HOOK, "topics": ["dpa"]})
        assert response.status_code == 404, url
        assert "acme-secret-hook" not in response.text
    # Its own page does not reach the other organisation's endpoint either.
    assert (await intruder.get(f"{page_of(globex)}/{endpoint.id}")).status_code == 404
    assert (await post_form(intruder, f"{page_of(globex)}/{endpoint.id}/delete")).status_code == 404
    assert await audit_count(db) == before
    assert [e.enabled for e in await endpoints(db)] == [True]


async def test_a_member_without_the_permission_gets_403(world, settings, login_as, acme, db):
    endpoint, _secret = await add_endpoint(world, settings, acme, HOOK)
    contact = await login_as(await world.person(acme, Role.PRIVACY_CONTACT, Role.SECURITY_CONTACT))
    base = page_of(acme)
    for url in (base, f"{base}/{endpoint.id}"):
        assert (await contact.get(url)).status_code == 403, url
    for url in (base, f"{base}/{endpoint.id}", *(f"{base}/{endpoint.id}/{a}" for a in ACTIONS)):
        assert (await post_form(contact, url, {"url": HOOK + "/x", "topics": ["dpa"]})).status_code == 403, url
    assert len(await endpoints(db)) == 1


async def test_vendor_staff_see_endpoints_and_deliveries_but_change_nothing(world, settings, login_as, acme, db):
    endpoint, _secret = await add_endpoint(world, settings, acme, HOOK)
    await _queued_breach(world, acme)
    vendor = await world.vendor()
    staff = await login_as(await world.person(vendor, Role.VIEWER))

    overview = await staff.get(page_of(vendor))
    assert overview.status_code == 200
    assert f'href="{page_of(acme)}"' in overview.text
    listing = await staff.get(page_of(acme))
    detail = await staff.get(f"{page_of(acme)}/{endpoint.id}")
    assert listing.status_code == detail.status_code == 200
    assert HOOK in detail.text and "Queued" in detail.text
    for page in (listing, detail):
        assert "whsec_" not in page.text and 'method="post" action="/orgs' not in page.text
    base = page_of(acme)
    for url in (base, f"{base}/{endpoint.id}", *(f"{base}/{endpoint.id}/{a}" for a in ACTIONS)):
        assert (await post_form(staff, url, {"url": HOOK + "/x", "topics": ["dpa"]})).status_code == 403, url
    assert [(e.url, e.enabled) for e in await endpoints(db)] == [(HOOK, True)]


async def test_pages_need_a_login(world, settings, client, acme):
    endpoint, _secret = await add_endpoint(world, settings, acme, HOOK)
    for url in (page_of(acme), f"{page_of(acme)}/{endpoint.id}", "/settings/webhooks"):
        response = await client.get(url)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next="), url
