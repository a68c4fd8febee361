"""The ceremony through its services: prepare, send, sign, countersign, and the rules that guard each step."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from sqlalchemy import func, select

from portal.agreements.models import (
    Agreement,
    AgreementDocument,
    AgreementEvent,
    AgreementStatus,
    DocumentKind,
    Signature,
)
from portal.errors import Conflict, Forbidden, InvalidInput, NotFound
from portal.signing import ceremony, preparation
from portal.signing.bundle_check import verify_bundle
from tests.signing.support import ORIGIN, actor, parties, person, published_template, sent_agreement, sign_input

VENDOR = "Lumen AI GmbH"


async def test_an_agreement_goes_from_draft_to_executed_and_sealed(world, settings, db):
    await published_template(world)
    who = await parties(world)
    agreement = await sent_agreement(world, who, settings)
    assert agreement.status is AgreementStatus.AWAITING_SIGNATURE
    assert agreement.document_sha256 == hashlib.sha256(agreement.document_docx).hexdigest()

    await ceremony.sign(db, actor=actor(who.signatory), org=who.org, agreement_id=str(agreement.id),
                        data=sign_input(agreement), origin=ORIGIN, settings=settings, vendor_name=VENDOR)
    await world.commit()
    assert agreement.status is AgreementStatus.AWAITING_COUNTERSIGNATURE  # requirement 25: one signature is not enough

    await ceremony.countersign(db, actor=actor(who.legal), org=who.org, agreement_id=str(agreement.id),
                               data=ceremony.CountersignInput("Lea Legal", "General Counsel",
                                                              agreement.document_sha256, True),
                               origin=ORIGIN, settings=settings, vendor_name=VENDOR)
    await world.commit()
    assert agreement.status is AgreementStatus.EXECUTED
    kinds = set((await db.execute(select(AgreementDocument.kind))).scalars())
    assert kinds == set(DocumentKind)
    bundle = (await db.execute(select(AgreementDocument).where(AgreementDocument.kind == DocumentKind.BUNDLE)
                               )).scalar_one()
    await db.refresh(bundle, ["data"])
    report = verify_bundle(bundle.data)
    assert report.ok, report.text()
    types = [e["type"] for e in report.record["events"]]
    assert types == ["created", "sent_for_signature", "consented", "signed", "countersigned", "executed"]
    assert types.index("consented") < types.index("signed")  # requirement 20
    [client] = [s for s in report.record["signatures"] if s["party"] == "client"]
    assert (client["level"], client["auth_method"], client["ip"]) == ("SES", "password", ORIGIN.ip)
    assert client["document_sha256"] == agreement.document_sha256


async def test_a_double_submit_or_two_signatories_at_once_give_one_signature(world, settings, engine):
    from portal.accounts.roles import Role
    from portal.db import make_sessionmaker, write_intent

    await published_template(world)
    who = await parties(world)
    second = await person(world, who.org, Role.SIGNATORY, "second@acme.example", "Sam Second")
    agreement = await sent_agreement(world, who, settings)

    async def press(member):
        token = write_intent.set(True)
        try:
            async with make_sessionmaker(engine)() as session:
                try:
                    await ceremony.sign(session, actor=actor(member), org=who.org, agreement_id=str(agreement.id),
                                        data=sign_input(agreement), origin=ORIGIN, settings=settings,
                                        vendor_name=VENDOR)
                    await session.commit()
                    return "signed"
                except Conflict as exc:
                    await session.rollback()
                    return exc.message
        finally:
            write_intent.reset(token)

    outcomes = await asyncio.gather(press(who.signatory), press(second), press(who.signatory))
    assert outcomes.count("signed") == 1, outcomes
    assert all("already" in o or "just been signed" in o for o in outcomes if o != "signed")
    async with engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(Signature)) == 1
        assert await connection.scalar(select(func.count()).select_from(AgreementEvent)
                                       .where(AgreementEvent.type == "signed")) == 1


async def test_the_signature_refuses_missing_intent_and_a_changed_document(world, settings, db):
    await published_template(world)
    who = await parties(world)
    agreement = await sent_agreement(world, who, settings)
    for overrides, field in [({"full_name": " "}, "full_name"), ({"title": ""}, "title"),
                             ({"authority": False}, "authority"), ({"consent": False}, "consent")]:
        with pytest.raises(InvalidInput) as refused:
            await ceremony.sign(db, actor=actor(who.signatory), org=who.org, agreement_id=str(agreement.id),
                                data=sign_input(agreement, **overrides), origin=ORIGIN, settings=settings,
                                vendor_name=VENDOR)
        assert field in refused.value.fields
    with pytest.raises(Conflict):
        await ceremony.sign(db, actor=actor(who.signatory), org=who.org, agreement_id=str(agreement.id),
                            data=sign_input(agreement, document_sha256="0" * 64), origin=ORIGIN,
                            settings=settings, vendor_name=VENDOR)
    agreement_id = agreement.id
    await db.rollback()  # refused before writing anything: the state is as it was
    assert await db.scalar(select(Agreement.status).where(Agreement.id == agreement_id)) is \
        AgreementStatus.AWAITING_SIGNATURE


async def test_only_the_clients_signatories_sign(world, settings, db):
    await published_template(world)
    who = await parties(world)
    agreement = await sent_agreement(world, who, settings)
    other = await parties(world, "Globex Corporation")
    for member, error in [(who.admin, Forbidden), (who.legal, Forbidden), (other.signatory, NotFound)]:
        with pytest.raises(error):
            await ceremony.sign(db, actor=actor(member), org=who.org, agreement_id=str(agreement.id),
                                data=sign_input(agreement), origin=ORIGIN, settings=settings, vendor_name=VENDOR)


async def test_a_declined_agreement_keeps_the_reason_and_can_be_prepared_again(world, settings, db):
    await published_template(world)
    who = await parties(world)
    agreement = await sent_agreement(world, who, settings)
    with pytest.raises(InvalidInput):
        await ceremony.decline(db, actor=actor(who.signatory), org=who.org, agreement_id=str(agreement.id),
                               reason="  ", origin=ORIGIN)
    await ceremony.decline(db, actor=actor(who.signatory), org=who.org, agreement_id=str(agreement.id),
                           reason="Clause 9 needs our DPO's review", origin=ORIGIN)
    await world.commit()
    assert (agreement.status, agreement.decline_reason) == (AgreementStatus.DECLINED,
                                                            "Clause 9 needs our DPO's review")
    again = await sent_agreement(world, who, settings)  # the admin starts over; the declined one stays as history
    assert again.id != agreement.id and again.status is AgreementStatus.AWAITING_SIGNATURE


async def test_automatic_countersignature_executes_at_the_clients_signature(world, settings, db):
    from dataclasses import replace

    auto = replace(settings, auto_countersign="Olivia Owner, Chief Executive Officer")
    await published_template(world)
    who = await parties(world)
    agreement = await sent_agreement(world, who, auto)
    await ceremony.sign(db, actor=actor(who.signatory), org=who.org, agreement_id=str(agreement.id),
                        data=sign_input(agreement), origin=ORIGIN, settings=auto, vendor_name=VENDOR)
    await world.commit()
    assert agreement.status is AgreementStatus.EXECUTED
    vendor = (await db.execute(select(Signature).where(Signature.party == "vendor"))).scalar_one()
    assert (vendor.name, vendor.title, vendor.auth_method) == ("Olivia Owner", "Chief Executive Officer", "system")


async def test_negotiated_terms_are_taken_only_where_the_vendor_allows_them(world, settings, db):
    from dataclasses import replace

    from tests.signing.support import client_details

    await published_template(world)
    who = await parties(world)
    terms = {"notice_days": "45", "breach_target_hours": "24", "subprocessor_authorisation": "specific"}
    data = preparation.DraftInput(details=client_details(), signatory_id=str(who.signatory.user_id), terms=terms)
    fixed = await preparation.save_draft(db, actor=actor(who.admin), org=who.org, data=data, origin=ORIGIN,
                                      settings=settings)
    assert (fixed.notice_days, fixed.breach_target_hours, fixed.subprocessor_authorisation.value) == (
        None, None, "general")
    negotiable = replace(settings, negotiable_terms=True)
    agreed = await preparation.save_draft(db, actor=actor(who.admin), org=who.org, data=data, origin=ORIGIN,
                                       settings=negotiable)
    assert (agreed.notice_days, agreed.breach_target_hours, agreed.subprocessor_authorisation.value) == (
        45, 24, "specific")
    assert agreed.document_context["notice_days"] == 45 and agreed.document_context["breach_target_hours"] == 24
    with pytest.raises(InvalidInput) as refused:
        await preparation.save_draft(db, actor=actor(who.admin), org=who.org, origin=ORIGIN, settings=negotiable,
                                  data=preparation.DraftInput(details=client_details(),
                                                           signatory_id=str(who.signatory.user_id),
                                                           terms={**terms, "breach_target_hours": "96"}))
    assert set(refused.value.fields) == {"breach_target_hours"}


async def test_without_the_vendors_details_nothing_is_rendered(world, settings, db):
    from portal.dpa import templates
    from tests.signing.support import SYSTEM, client_details

    draft = await templates.upload_default(db, actor=SYSTEM)
    await templates.publish(db, actor=SYSTEM, version_id=str(draft.id), changelog="First")
    await world.commit()
    who = await parties(world)
    with pytest.raises(InvalidInput, match="The vendor has not completed its own details"):
        await preparation.save_draft(db, actor=actor(who.admin), org=who.org, origin=ORIGIN, settings=settings,
                                  data=preparation.DraftInput(details=client_details(),
                                                           signatory_id=str(who.signatory.user_id), terms={}))


async def test_the_signatory_must_hold_the_role(world, settings, db):
    from tests.signing.support import client_details

    await published_template(world)
    who = await parties(world)
    with pytest.raises(InvalidInput) as refused:
        await preparation.save_draft(db, actor=actor(who.admin), org=who.org, origin=ORIGIN, settings=settings,
                                  data=preparation.DraftInput(details=client_details(),
                                                           signatory_id=str(who.admin.user_id), terms={}))
    assert "signatory_id" in refused.value.fields
