"""Re-signing campaigns: a new template version asks each client to sign it, supersedes what was still being signed,
leaves the agreement in force alone until the new one is executed, and shows the vendor where each client stands."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from portal.agreements import service as agreements
from portal.agreements.models import Agreement, AgreementEvent, AgreementStatus, EventType
from portal.db import make_sessionmaker
from portal.dpa import templates
from portal.dpa.default_template import build_default_docx
from portal.errors import Conflict
from portal.notifications.models import Notice
from portal.signing import campaign, ceremony, preparation
from portal.signing.campaign import CampaignState
from tests.signing.support import (
    ORIGIN,
    SYSTEM,
    actor,
    executed_agreement,
    parties,
    published_template,
    sent_agreement,
    sign_input,
)

VENDOR = "Lumen AI GmbH"


async def _new_version(world, settings, changelog: str = "Clause 9 now names the 24-hour target") -> campaign.Rollout:
    text = build_default_docx()
    draft = await templates.upload(world.session, actor=SYSTEM, filename="v2.docx", data=_changed(text))
    rollout = await campaign.publish_and_roll_out(world.session, actor=SYSTEM, version_id=str(draft.id),
                                                  changelog=changelog, settings=settings)
    await world.commit()
    return rollout


def _changed(docx: bytes) -> bytes:
    """The default DPA with one paragraph added (a real second version with a redline)."""
    import io

    import docx as python_docx

    document = python_docx.Document(io.BytesIO(docx))
    document.add_paragraph("The Processor reviews this Agreement every year.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


async def _agreements(db, org) -> list[Agreement]:
    """``org``'s agreements as stored now, oldest first."""
    return list((await db.execute(select(Agreement).where(Agreement.org_id == org.id)  # tenancy: test inspection
                                  .order_by(Agreement.created_at).execution_options(populate_existing=True)
                                  )).scalars())


async def test_a_new_version_is_prepared_for_each_client_and_the_old_one_stays_in_force(world, settings, db):
    await published_template(world)
    acme = await parties(world)
    globex = await parties(world, "Globex Corporation")
    first = await executed_agreement(world, acme, settings)
    open_one = await sent_agreement(world, globex, settings)

    rollout = await _new_version(world, settings)

    assert (rollout.ready_to_sign, rollout.details_needed, rollout.superseded) == (2, 0, 1)
    old, new = await _agreements(db, acme.org)
    assert (old.id, old.status) == (first.id, AgreementStatus.EXECUTED)  # legal requirement 10
    assert new.status is AgreementStatus.AWAITING_SIGNATURE and new.details == old.details
    assert new.signatory_user_id == old.signatory_user_id and new.document_sha256 != old.document_sha256
    superseded, replacement = await _agreements(db, globex.org)
    assert (superseded.id, superseded.status) == (open_one.id, AgreementStatus.SUPERSEDED)
    assert replacement.status is AgreementStatus.AWAITING_SIGNATURE
    notices = list((await db.execute(select(Notice.type, Notice.org_id))).all())
    assert sorted(str(org) for kind, org in notices if kind == "dpa_version") == sorted([str(acme.org.id),
                                                                                          str(globex.org.id)])


async def test_a_signature_on_a_superseded_version_is_refused(world, settings, db):
    await published_template(world)
    who = await parties(world)
    stale = await sent_agreement(world, who, settings)
    await _new_version(world, settings)
    with pytest.raises(Conflict, match="superseded"):
        await ceremony.sign(db, actor=actor(who.signatory), org=who.org, agreement_id=str(stale.id),
                            data=sign_input(stale), origin=ORIGIN, settings=settings, vendor_name=VENDOR)


async def test_executing_the_new_version_supersedes_the_old_and_the_board_follows(world, settings, db):
    await published_template(world)
    acme = await parties(world)
    globex = await parties(world, "Globex Corporation")
    initech = await parties(world, "Initech")
    for who in (acme, globex, initech):
        await executed_agreement(world, who, settings)
    await agreements.record_agreement(db, actor=SYSTEM, org=await world.client_org("Paper Only AG"),
                                      data=agreements.AgreementInput("Signed PDF 2024", "2024-05-01", "general", ""))
    await world.commit()
    await _new_version(world, settings)

    [new] = [a for a in await _agreements(db, acme.org) if a.status is AgreementStatus.AWAITING_SIGNATURE]
    await ceremony.sign(db, actor=actor(acme.signatory), org=acme.org, agreement_id=str(new.id),
                        data=sign_input(new), origin=ORIGIN, settings=settings, vendor_name=VENDOR)
    [globex_new] = [a for a in await _agreements(db, globex.org) if a.status is AgreementStatus.AWAITING_SIGNATURE]
    await preparation.record_view(db, actor=actor(globex.signatory), org=globex.org, agreement=globex_new,
                                  origin=ORIGIN)
    [initech_new] = [a for a in await _agreements(db, initech.org) if a.status is AgreementStatus.AWAITING_SIGNATURE]
    await ceremony.decline(db, actor=actor(initech.signatory), org=initech.org, agreement_id=str(initech_new.id),
                           reason="Our DPO reviews the new clause first", origin=ORIGIN)
    await world.commit()

    newest, rows = await campaign.board(db, actor=actor(acme.legal))
    states = {row.org.name: (row.state, row.outdated) for row in rows}
    assert newest is not None and newest.number == 2
    assert states == {"Acme Logistics SE": (CampaignState.SIGNED, True),
                      "Globex Corporation": (CampaignState.VIEWED, True),
                      "Initech": (CampaignState.DECLINED, True), "Paper Only AG": (CampaignState.PENDING, True)}

    await ceremony.countersign(db, actor=actor(acme.legal), org=acme.org, agreement_id=str(new.id),
                               data=ceremony.CountersignInput("Lea Legal", "GC", new.document_sha256, True),
                               origin=ORIGIN, settings=settings, vendor_name=VENDOR)
    await world.commit()
    old, new_row = await _agreements(db, acme.org)
    assert (old.status, new_row.status) == (AgreementStatus.SUPERSEDED, AgreementStatus.EXECUTED)
    _, rows = await campaign.board(db, actor=actor(acme.legal))
    assert [(row.state, row.outdated) for row in rows if row.org.id == acme.org.id] == [(None, False)]


async def test_the_redline_shows_what_changed_between_the_signed_and_the_new_version(world, settings, db):
    await published_template(world)
    who = await parties(world)
    await executed_agreement(world, who, settings)
    await _new_version(world, settings)
    [new] = [a for a in await _agreements(db, who.org) if a.status is AgreementStatus.AWAITING_SIGNATURE]
    found = await campaign.redline_for(db, org=who.org, agreement=new)
    assert (found.old.number, found.new.number) == (1, 2)
    assert [line.text for line in found.lines if line.op == "added"] == ["The Processor reviews this Agreement every "
                                                                         "year."]


async def test_reminders_go_out_once_per_interval(world, settings, engine):
    await published_template(world)
    who = await parties(world)
    agreement = await sent_agreement(world, who, settings)
    sessions = make_sessionmaker(engine)

    async def remind(at: dt.datetime) -> int:
        async with sessions() as session:
            done = await campaign.send_reminders(session, now=at, settings=settings)
            await session.commit()
            return done

    sent = agreement.sent_at
    days = dt.timedelta(days=settings.resign_reminder_days)
    assert await remind(sent + days - dt.timedelta(hours=1)) == 0
    assert await remind(sent + days + dt.timedelta(seconds=1)) == 1
    assert await remind(sent + days + dt.timedelta(seconds=2)) == 0  # reminded already in this interval
    assert await remind(sent + 2 * days + dt.timedelta(seconds=2)) == 1
    async with sessions() as session:
        reminded = (await session.execute(select(AgreementEvent.at).where(
            AgreementEvent.type == EventType.REMINDED.value).order_by(AgreementEvent.seq))).scalars().all()
        notices = (await session.execute(select(Notice.type))).scalars().all()
    assert reminded == [sent + days + dt.timedelta(seconds=1), sent + 2 * days + dt.timedelta(seconds=2)]
    assert notices.count("signature_request") == 3  # sent, then two reminders
