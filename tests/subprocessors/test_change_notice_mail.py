"""The change notice as the client's privacy contact receives it over SMTP: every register field of each change
(legal requirement 35), the effective date, the objection deadline and how to object, in both the text and the
HTML part; removals and the public copy are informational; the objection result reaches the client too."""

from __future__ import annotations

import datetime as dt
import html
import uuid
from email.message import EmailMessage

from portal.accounts.roles import Role
from portal.db import utcnow
from portal.notifications.models import PublicSubscriber, SubscriberStatus
from portal.subprocessors import publishing, responses
from tests.notifications.recipients_support import deliver_due
from tests.subprocessors.support import BASE_URL, entry_data, publish, vendor_legal
from tests.subprocessors.test_client_view import client_with_agreement, rows_of

VECTORLY = entry_data(
    "Vectorly & Söhne Inc.", legal_entity="Vectorly <Europe> Holdings Inc.", address="1 Market St, San Francisco, US",
    contact_name="Sam Privacy", contact_position="Chief Privacy Officer", contact_email="privacy@vectorly.example",
    purpose="Embedding search for the assistant", locations="US, IE", transfer_mechanism="scc_module_3",
    processing="Turns documents into vectors; keeps no copy after 24 hours; not responsible for access control.",
    data_categories="Documents, Prompts", ai_model_provider="on")
REGISTER_VALUES = [
    "Vectorly & Söhne Inc.", "Vectorly <Europe> Holdings Inc.", "1 Market St, San Francisco, US",
    "Sam Privacy, Chief Privacy Officer, privacy@vectorly.example", "Embedding search for the assistant",
    "Turns documents into vectors; keeps no copy after 24 hours; not responsible for access control.",
    "Documents, Prompts", "United States (US), Ireland (IE)",
    "Standard contractual clauses (2021/914), module 3: processor to processor",
]


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


async def test_the_change_notice_carries_the_register_fields_the_deadline_and_how_to_object(
        world, engine, settings, mail, client, login_as):
    legal = await vendor_legal(world)
    acme = await client_with_agreement(world, "Acme Logistics", "pia@acme.example")
    subscriber = PublicSubscriber(id=uuid.uuid4(), email="watcher@example.org", topics=["subprocessors"],
                                  status=SubscriberStatus.CONFIRMED, confirmed_at=utcnow())
    world.session.add(subscriber)
    await world.commit()
    await publish(world, legal, "Hostwerk GmbH")
    await deliver_due(engine, settings)
    mail.messages.clear()
    hostwerk = next(iter(await rows_of(engine, acme.org)))
    await publishing.draft_entry(world.session, actor=legal, raw=entry_data("Hostwerk GmbH", locations="DE, AT"),
                                 entry_id=str(hostwerk.entry_id))
    version = await publish(world, legal, VECTORLY)
    row = next(r for r in await rows_of(engine, acme.org) if r.entry_name == VECTORLY["name"])
    last_day = (row.deadline - dt.timedelta(microseconds=1)).date().isoformat()

    await deliver_due(engine, settings)

    message = mail.last_to("pia@acme.example")
    text, body = mail.text_of(message), html_of(message)
    assert message["Subject"] == (f"Sub-processor list version 2: changes from {version.effective_date.isoformat()} "
                                  f"(objections until {last_day})")
    for value in REGISTER_VALUES:
        assert value in text, value
        assert html.escape(value, quote=False) in body, value
    assert "<Europe>" not in body  # escaped in HTML
    for label in ("1. Change: Hostwerk GmbH", "2. New sub-processor: Vectorly & Söhne Inc.", "AI model provider: yes",
                  "What changes: Locations (ISO 3166 country codes)",
                  f"Effective date: {version.effective_date.isoformat()}",
                  f"Objection deadline: {last_day} (the end of that day, UTC)", "HOW TO OBJECT",
                  "choose Object", "If your agreement gives general written authorisation"):
        assert label in text, label
    link = f"{BASE_URL}/subprocessors/versions/2/respond"
    assert link in text and f'href="{link}"' in body
    assert "Objection deadline</th><td>" + last_day in body and "How to object" in body

    # The link opens the client's own page at this version, after logging in.
    path = mail.link_in(message, "/subprocessors/versions/")
    assert path == "/subprocessors/versions/2/respond"
    assert (await client.get(path)).headers["location"].startswith("/login?next=")
    pia = await login_as(acme.privacy)
    landing = (await pia.get(path)).headers["location"]
    assert landing == f"/orgs/{acme.org.id}/subprocessors#v2"
    page = await pia.get(landing.split("#")[0])
    assert 'id="v2"' in page.text and f"/changes/{row.id}/object" in page.text

    public = mail.last_to("watcher@example.org")
    public_text = mail.text_of(public)
    assert "Vectorly <Europe> Holdings Inc." in public_text and "/respond" not in public_text
    assert "Objection deadline: none, this notice is informational" in public_text
    assert "it opens no objection period for you" in public_text and "HOW TO OBJECT" not in public_text
    assert f"{BASE_URL}/subprocessors/versions/2" in public_text


async def test_a_removal_only_notice_says_it_is_informational(world, engine, settings, mail):
    legal = await vendor_legal(world)
    acme = await client_with_agreement(world, "Acme Logistics", "pia@acme.example")
    await publish(world, legal, "Hostwerk GmbH", "Oldbox AG")
    await deliver_due(engine, settings)
    mail.messages.clear()
    oldbox = next(r for r in await rows_of(engine, acme.org) if r.entry_name == "Oldbox AG")
    await publishing.draft_removal(world.session, actor=legal, entry_id=str(oldbox.entry_id))
    await world.commit()
    await publish(world, legal)

    await deliver_due(engine, settings)

    message = mail.last_to("pia@acme.example")
    text, body = mail.text_of(message), html_of(message)
    assert "(objections until" not in message["Subject"]
    assert "1. Removal: Oldbox AG" in text and "Legal entity: Oldbox AG (legal entity)" in text
    assert "Objection deadline: none, this notice is informational" in text
    assert "removing a sub-processor needs no authorisation, so there is nothing to object to" in text
    assert "HOW TO OBJECT" not in text and "How to object" not in body
    assert "nothing to object to" in body
    assert len(await rows_of(engine, acme.org)) == 2  # no authorisation is asked for a removal


async def test_the_objection_result_reaches_the_client(world, engine, settings, mail):
    legal = await vendor_legal(world)
    acme = await client_with_agreement(world, "Acme Logistics", "pia@acme.example")
    await world.person(acme.org, Role.ADMIN, email="ada@acme.example")
    await publish(world, legal, "Vectorly Inc.")
    [row] = await rows_of(engine, acme.org)
    objection = await responses.object_to(world.session, actor=acme.privacy_actor, org=acme.org,
                                          authorisation_id=str(row.id), reason="No.")
    await world.commit()
    await deliver_due(engine, settings)
    mail.messages.clear()
    note = "We keep your data away from Vectorly.\nYour tenant stays on <Hostwerk> only."
    await responses.resolve(world.session, actor=legal, org=acme.org, objection_id=str(objection.id),
                            resolution="accommodated", note=note, base_url=BASE_URL)
    await world.commit()

    await deliver_due(engine, settings)

    for address in ("pia@acme.example", "ada@acme.example"):
        message = mail.last_to(address)
        text, body = mail.text_of(message), html_of(message)
        assert message["Subject"] == "Your objection to Vectorly Inc.: Accommodated"
        assert note.replace("\n", "\r\n") in text and f"{BASE_URL}/orgs/{acme.org.id}/subprocessors" in text
        assert "Your tenant stays on &lt;Hostwerk&gt; only." in body and "<Hostwerk>" not in body
        assert "We keep your data away from Vectorly.<br>" in body
