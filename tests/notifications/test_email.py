"""The email channel end to end: ``notify`` in a transaction, the worker, a real SMTP server on loopback."""

from __future__ import annotations

import dataclasses
import email
import re
import uuid
from email.policy import default as default_policy
from email.utils import parseaddr, parsedate_to_datetime

import pytest

from portal.accounts.models import User
from portal.accounts.roles import Role
from portal.actors import Actor
from portal.db import utcnow
from portal.notifications import catalog
from portal.notifications.models import DeliveryStatus, PublicSubscriber, SubscriberStatus
from portal.notifications.service import (
    delivery_id_from_ack_token,
    notify,
    notify_subscriber,
    subscriber_id_from_unsubscribe_token,
    unsubscribe_token,
)
from tests.conftest import TEST_SECRET
from tests.notifications.worker_support import (
    Sink,
    all_deliveries,
    attempts_of,
    clients_with_security_contacts,
    queue_breach,
    run_worker_once,
    subprocessor_change,
    with_smtp,
)


async def test_a_notice_reaches_every_intended_recipient_with_headers_and_an_ack_link(world, db, engine, settings,
                                                                                       mail):
    orgs = await clients_with_security_contacts(world, 3)
    await queue_breach(world, orgs)

    stats = await run_worker_once(engine, settings)

    deliveries = await all_deliveries(db)
    assert stats.sent == len(deliveries) == 6 and stats.failed == 0
    assert {d.status for d in deliveries} == {DeliveryStatus.SENT}
    assert sorted(m["To"] for m in mail.messages) == sorted(
        f"sec{k}@client-{n}.example" for n in range(3) for k in range(2))  # each contact once; no signatory
    for delivery in deliveries:
        [message] = mail.to(delivery.email)
        assert message["From"] == settings.mail_from
        assert message["Subject"] == "Personal data breach notice: INC-7"
        assert message["Message-ID"] == delivery.message_id
        assert re.fullmatch(r"<notice\.[0-9a-f]{32}@localhost>", delivery.message_id)
        assert abs((parsedate_to_datetime(message["Date"]) - utcnow()).total_seconds()) < 600
        assert message["Auto-Submitted"] == "auto-generated"
        assert message["List-Unsubscribe"] is None  # client contacts leave through their roles, not a link
        ack = mail.link_in(message, "/ack/")
        assert delivery_id_from_ack_token(TEST_SECRET, ack.removeprefix("/ack/")) == delivery.id
        text = mail.text_of(message)
        name = delivery.email.split("@")[0].title()
        assert text.startswith(f"Hello {name},")
        assert "Approximate numbers: about 120 records" in text
        org_number = delivery.email.split("client-")[1].split(".")[0]
        assert f"at Client {org_number}." in text  # the footer names the recipient's own organisation
        assert "role: security contact" in text
        others = {f"Client {n}" for n in range(3)} - {f"Client {org_number}"}
        assert not any(other in text for other in others)  # nothing of another organisation
        html = message.get_body(preferencelist=("html",))
        assert html is not None and f'href="http://testserver{ack}"' in html.get_content()
        [attempt] = await attempts_of(db, delivery)
        assert attempt.ok and attempt.response.startswith("250 ") and attempt.worker


async def test_one_person_with_two_reasons_gets_one_mail_naming_both(world, db, engine, settings, mail):
    org = await world.client_org("Acme")
    member = await world.person(org, Role.SECURITY_CONTACT, Role.ADMIN, email="both@acme.example")
    from portal.notifications.models import Subscription

    db.add(Subscription(id=uuid.uuid4(), org_id=org.id, user_id=member.user_id, topic="breaches"))
    await world.commit()
    await queue_breach(world, [org])

    await run_worker_once(engine, settings)

    [message] = mail.to("both@acme.example")
    assert "role: security contact; subscribed to breaches" in mail.text_of(message)


async def test_public_subscriber_mail_carries_one_click_unsubscribe_headers(world, db, engine, settings, mail):
    subscriber = PublicSubscriber(id=uuid.uuid4(), email="watcher@example.org", topics=["subprocessors"],
                                  status=SubscriberStatus.CONFIRMED, confirmed_at=utcnow())
    db.add(subscriber)
    await world.commit()
    await notify(db, actor=Actor.system("test"), content=subprocessor_change(), orgs=[], include_public=True)
    await world.commit()

    await run_worker_once(engine, settings)

    [message] = mail.to("watcher@example.org")
    token = unsubscribe_token(TEST_SECRET, subscriber.id)
    assert message["List-Unsubscribe"] == f"<http://testserver/unsubscribe/{token}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert subscriber_id_from_unsubscribe_token(TEST_SECRET, token) == subscriber.id
    assert mail.link_in(message, "/unsubscribe/") == f"/unsubscribe/{token}"
    assert "Kestrel Vector GmbH" in mail.text_of(message)


async def test_a_subscription_confirmation_carries_its_confirm_link_and_nothing_to_acknowledge(world, db, engine,
                                                                                                 settings, mail):
    subscriber = PublicSubscriber(id=uuid.uuid4(), email="new@example.org", topics=["subprocessors"])
    db.add(subscriber)
    await world.commit()
    content = catalog.subscription_confirmation(topics=["subprocessors"],
                                                confirm_link="http://testserver/subscribe/confirm/abc")
    await notify_subscriber(db, actor=Actor.system("test"), content=content, subscriber=subscriber)
    await world.commit()

    await run_worker_once(engine, settings)

    [message] = mail.to("new@example.org")
    assert message["Subject"] == "Confirm your subscription to Lumen AI updates"
    assert mail.link_in(message, "/subscribe/confirm/") == "/subscribe/confirm/abc"
    assert message["List-Unsubscribe"] is None and "/ack/" not in mail.text_of(message)


async def test_unsubscribed_subscribers_and_disabled_accounts_are_withdrawn_not_mailed(world, db, engine, settings,
                                                                                       mail):
    subscriber = PublicSubscriber(id=uuid.uuid4(), email="gone@example.org", topics=["subprocessors"],
                                  status=SubscriberStatus.CONFIRMED, confirmed_at=utcnow())
    db.add(subscriber)
    org = await world.client_org("Acme")
    member = await world.person(org, Role.PRIVACY_CONTACT, email="left@acme.example")
    await world.person(org, Role.PRIVACY_CONTACT, email="stays@acme.example")
    await notify(db, actor=Actor.system("test"), content=subprocessor_change(), orgs=[org], include_public=True)
    await world.commit()
    subscriber.status = SubscriberStatus.UNSUBSCRIBED
    (await db.get_one(User, member.user_id)).disabled_at = utcnow()
    await world.commit()

    stats = await run_worker_once(engine, settings)

    assert [m["To"] for m in mail.messages] == ["stays@acme.example"]
    assert stats.cancelled == 2
    by_email = {d.email: d for d in await all_deliveries(db)}
    assert by_email["gone@example.org"].status is DeliveryStatus.CANCELLED
    assert by_email["gone@example.org"].last_error == "The subscriber unsubscribed."
    assert by_email["left@acme.example"].status is DeliveryStatus.CANCELLED
    assert by_email["left@acme.example"].attempts == 0 and not await attempts_of(db, by_email["left@acme.example"])


async def test_without_smtp_each_message_is_kept_as_an_eml_file_named_in_the_attempt(world, db, engine, settings,
                                                                                      mail, tmp_path):
    orgs = await clients_with_security_contacts(world, 1)
    await queue_breach(world, orgs)
    local = with_smtp(settings, "")

    await run_worker_once(engine, local)

    assert mail.messages == []
    files = sorted((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 2
    for delivery in await all_deliveries(db):
        assert delivery.status is DeliveryStatus.SENT
        [attempt] = await attempts_of(db, delivery)
        kept = tmp_path / "mail" / attempt.response
        assert kept in files and attempt.response.endswith(f"-{delivery.id.hex}.eml")
        message = email.message_from_bytes(kept.read_bytes(), policy=default_policy)
        assert message["To"] == delivery.email and message["Message-ID"] == delivery.message_id
    assert not list((tmp_path / "mail").glob(".*"))  # no half-written file left behind


async def test_a_refused_recipient_is_recorded_with_the_servers_reply_and_retried(world, db, engine, settings):
    orgs = await clients_with_security_contacts(world, 1)
    await queue_breach(world, orgs)
    sink = Sink(refuse={"sec0@client-0.example": "550 5.1.1 <sec0@client-0.example>: mailbox unavailable"}).start()
    try:
        stats = await run_worker_once(engine, with_smtp(settings, sink.url))
    finally:
        sink.stop()

    assert (stats.sent, stats.failed) == (1, 1)
    assert [m["To"] for m in sink.messages] == ["sec1@client-0.example"]
    refused = {d.email: d for d in await all_deliveries(db)}["sec0@client-0.example"]
    # A 5xx is retried on the schedule like any failure: it is often an address or relay a person can fix.
    assert refused.status is DeliveryStatus.QUEUED and refused.available_at > utcnow()
    [attempt] = await attempts_of(db, refused)
    assert not attempt.ok
    assert attempt.response == "550 5.1.1 <sec0@client-0.example>: mailbox unavailable"
    assert "refused the recipient" in attempt.error
    assert refused.message_id  # the message tried is on record even though it was not accepted


# ---------------------------------------------------------------- STARTTLS, TLS and authentication

@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1, and a client context trusting only it."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return folder / "cert.pem", folder / "key.pem"


def _contexts(tls_files):
    import ssl

    cert, key = tls_files
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


class _Logins:
    def __init__(self):
        self.seen = []

    def __call__(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"mailer", b"p@ss")
        self.seen.append((mechanism, ok))
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 235 or 535 itself


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
async def test_smtp_with_tls_and_a_login(world, db, engine, settings, tls_files, mode):
    from portal.notifications.email_sender import EmailSender
    from portal.notifications.models import Channel
    from portal.notifications.senders import Senders

    server_tls, client_tls = _contexts(tls_files)
    logins = _Logins()
    options = {"authenticator": logins}
    if mode == "starttls":
        options |= {"tls_context": server_tls, "require_starttls": True, "auth_require_tls": True,
                    "auth_required": True}
        url_of = "smtp://mailer:p%40ss@127.0.0.1:{port}?starttls=1"
    else:
        # aiosmtpd does not count implicit TLS as TLS for AUTH, so it offers AUTH without requiring it here; the
        # connection is TLS all the same, and the portal logs in because the URL has credentials.
        options |= {"ssl_context": server_tls, "auth_require_tls": False}
        url_of = "smtps://mailer:p%40ss@127.0.0.1:{port}"
    orgs = await clients_with_security_contacts(world, 1, contacts=1)
    await queue_breach(world, orgs)
    sink = Sink(controller_options=options).start()
    try:
        secured = with_smtp(settings, url_of.format(port=sink.port))
        senders = Senders({Channel.EMAIL: EmailSender.from_settings(secured, tls_context=client_tls)})
        stats = await run_worker_once(engine, secured, senders=senders)
    finally:
        sink.stop()

    assert stats.sent == 1
    assert [m["To"] for m in sink.messages] == ["sec0@client-0.example"]
    assert logins.seen and all(ok for _mechanism, ok in logins.seen)


async def test_wrong_smtp_credentials_fail_the_attempt_with_the_servers_reply(world, db, engine, settings, tls_files):
    from portal.notifications.email_sender import EmailSender
    from portal.notifications.models import Channel
    from portal.notifications.senders import Senders

    server_tls, client_tls = _contexts(tls_files)
    orgs = await clients_with_security_contacts(world, 1, contacts=1)
    await queue_breach(world, orgs)
    sink = Sink(controller_options={"authenticator": _Logins(), "auth_require_tls": False,
                                    "ssl_context": server_tls}).start()
    try:
        wrong = with_smtp(settings, f"smtps://mailer:wrong@127.0.0.1:{sink.port}")
        senders = Senders({Channel.EMAIL: EmailSender.from_settings(wrong, tls_context=client_tls)})
        stats = await run_worker_once(engine, wrong, senders=senders)
    finally:
        sink.stop()

    assert stats.failed == 1 and sink.messages == []
    [delivery] = await all_deliveries(db)
    [attempt] = await attempts_of(db, delivery)
    assert attempt.response.startswith("535") and "refused" in attempt.error


def test_the_envelope_sender_is_the_address_of_mail_from(settings):
    from portal.notifications.email_sender import EmailSender

    sender = EmailSender.from_settings(with_smtp(settings, ""))
    assert sender.envelope_from == parseaddr(settings.mail_from)[1] == "portal@localhost"


async def test_non_ascii_names_subjects_and_bodies_arrive_intact(world, db, engine, settings, mail):
    org = await world.client_org("Zürich Logistik AG")
    await world.person(org, Role.SECURITY_CONTACT, email="juergen@zuerich.example", name="Jürgen Groß")
    content = catalog.breach_notice(
        incident="Datenpanne № 7 \u2013 Exportfehler", aware_at=utcnow(), nature="Fehlgeleiteter Export „Kunden“",
        categories="Kontakte", approximate_numbers="≈ 120", likely_consequences="Phishing", measures="Widerrufen",
        contact_point="sicherheit@lumen.example", link="http://testserver/breaches/1")
    await notify(db, actor=Actor.system("test"), content=content, orgs=[org])
    await world.commit()

    await run_worker_once(engine, dataclasses.replace(settings, mail_from="Lümen AI <notices@lumen.example>"))

    [message] = mail.to("juergen@zuerich.example")
    assert message["Subject"] == "Personal data breach notice: Datenpanne № 7 \u2013 Exportfehler"
    assert message["From"] == "Lümen AI <notices@lumen.example>"
    text = mail.text_of(message)
    assert text.startswith("Hello Jürgen Groß,") and "at Zürich Logistik AG." in text
    assert "Fehlgeleiteter Export „Kunden“" in text and "≈ 120" in text
    html = message.get_body(preferencelist=("html",))
    assert html is not None and "Jürgen Groß" in html.get_content()


async def test_a_person_who_left_the_organisation_before_sending_is_not_mailed(world, db, engine, settings, mail):
    from sqlalchemy import delete

    from portal.accounts.models import Membership

    org = await world.client_org("Acme")
    leaving = await world.person(org, Role.SECURITY_CONTACT, email="left@acme.example")
    await world.person(org, Role.SECURITY_CONTACT, email="stays@acme.example")
    await queue_breach(world, [org])
    await db.execute(delete(Membership).where(Membership.id == leaving.id))
    await world.commit()

    stats = await run_worker_once(engine, settings)

    assert [m["To"] for m in mail.messages] == ["stays@acme.example"] and stats.cancelled == 1
    left = {d.email: d for d in await all_deliveries(db)}["left@acme.example"]
    assert left.status is DeliveryStatus.CANCELLED
    assert left.last_error == "The recipient is no longer a member of the organisation."
