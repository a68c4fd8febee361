"""The ceremony in the browser's terms (HTTP): the details form, the review page, signing, countersigning and the
downloads, with refused input kept as typed."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select

from portal.agreements.models import Agreement, AgreementEvent, AgreementStatus, EventType
from tests.conftest import post_form
from tests.signing.support import client_details, parties, published_template


def _sha(page: str) -> str:
    match = re.search(r'id="document-sha256">([0-9a-f]{64})<', page)
    assert match, "no document hash on the page"
    return match.group(1)


async def _only_agreement(db) -> Agreement:
    db.expire_all()
    return (await db.execute(select(Agreement))).scalar_one()


async def test_admin_prepares_signatory_signs_vendor_countersigns(world, login_as, db):
    await published_template(world)
    who = await parties(world)
    admin, signatory, legal = (await login_as(who.admin), await login_as(who.signatory), await login_as(who.legal))
    base = f"/orgs/{who.org.id}/agreements"

    form = await admin.get(base + "/draft")
    assert form.status_code == 200 and "Description of the processing (Annex II)" in form.text
    saved = await post_form(admin, base + "/draft", {**client_details(), "signatory_id": str(who.signatory.user_id)})
    assert saved.status_code == 303, saved.text[:500]
    page = (await admin.get(saved.headers["location"])).text
    sha = _sha(page)
    assert "Annex II" in page and "Analysis of shipping documents" in page  # the rendered text itself
    agreement = await _only_agreement(db)
    download = await admin.get(f"{base}/{agreement.id}/documents/document")
    assert hashlib.sha256(download.content).hexdigest() == sha

    assert (await post_form(admin, f"{base}/{agreement.id}/send")).status_code == 303
    review = await signatory.get(f"{base}/{agreement.id}")
    assert f"Sign version 1 of the data processing agreement (document {sha[:12]})" in review.text
    refused = await post_form(signatory, f"{base}/{agreement.id}/sign",
                              {"full_name": "Sigrid Signatory", "title": "", "document_sha256": sha,
                               "authority": "yes", "consent": "yes"})
    assert refused.status_code == 400 and "Type your title" in refused.text
    assert 'value="Sigrid Signatory"' in refused.text  # what was typed is kept
    signed = await post_form(signatory, f"{base}/{agreement.id}/sign",
                             {"full_name": "Sigrid Signatory", "title": "Managing Director", "document_sha256": sha,
                              "authority": "yes", "consent": "yes"})
    assert signed.status_code == 303
    assert (await _only_agreement(db)).status is AgreementStatus.AWAITING_COUNTERSIGNATURE
    again = await post_form(signatory, f"{base}/{agreement.id}/sign",
                            {"full_name": "Sigrid Signatory", "title": "MD", "document_sha256": sha,
                             "authority": "yes", "consent": "yes"})
    assert again.status_code == 409 and "already been signed" in again.text

    countersigned = await post_form(legal, f"{base}/{agreement.id}/countersign",
                                    {"full_name": "Lea Legal", "title": "General Counsel", "document_sha256": sha,
                                     "authority": "yes"})
    assert countersigned.status_code == 303
    assert (await _only_agreement(db)).status is AgreementStatus.EXECUTED
    for client in (admin, legal):
        done = (await client.get(f"{base}/{agreement.id}")).text
        assert "Executed documents" in done
        pdf = await client.get(f"{base}/{agreement.id}/documents/executed_pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
        bundle = await client.get(f"{base}/{agreement.id}/documents/bundle")
        assert bundle.headers["content-type"] == "application/zip"
    types = list((await db.execute(select(AgreementEvent.type).order_by(AgreementEvent.seq))).scalars())
    assert types == [EventType.CREATED, EventType.SENT_FOR_SIGNATURE, EventType.VIEWED, EventType.CONSENTED,
                     EventType.SIGNED, EventType.COUNTERSIGNED, EventType.EXECUTED]


async def test_missing_annex_ii_fields_are_named_and_nothing_is_saved(world, login_as, db):
    await published_template(world)
    who = await parties(world)
    admin = await login_as(who.admin)
    typed = client_details(**{"processing.purposes": "", "processing.data_subjects": " "})
    refused = await post_form(admin, f"/orgs/{who.org.id}/agreements/draft",
                              {**typed, "processing.has_sensitive": "yes", "signatory_id": str(who.signatory.user_id)})
    assert refused.status_code == 400
    for name in ("processing.purposes", "processing.data_subjects", "processing.sensitive_safeguards"):
        assert f'id="{name}-error"' in refused.text
    assert "Analysis of shipping documents" in refused.text  # the rest as typed
    assert (await db.execute(select(Agreement))).first() is None


async def test_both_parties_keep_their_copies_after_termination(world, login_as, db, settings):
    from portal.agreements import service as agreements
    from tests.signing.support import actor, executed_agreement

    await published_template(world)
    who = await parties(world)
    agreement = await executed_agreement(world, who, settings)
    await agreements.end_agreement(db, actor=actor(who.legal), org=who.org, agreement_id=str(agreement.id),
                                   reason="Service ended")
    await world.commit()
    assert agreement.status is AgreementStatus.TERMINATED
    base = f"/orgs/{who.org.id}/agreements/{agreement.id}"
    for member in (who.admin, who.legal):  # legal requirement 26: copies for both parties, also after the end
        client = await login_as(member)
        page = await client.get(base)
        assert page.status_code == 200 and "Terminated" in page.text and "Executed documents" in page.text
        for kind in ("executed_pdf", "bundle", "certificate", "evidence"):
            assert (await client.get(f"{base}/documents/{kind}")).status_code == 200, kind


@pytest.mark.parametrize(("method", "with_totp", "recorded"), [
    ("password", False, "password"), ("password", True, "password+totp"), ("sso", False, "sso")])
async def test_the_signature_records_how_the_signatory_logged_in(method, with_totp, recorded, world, app, db,
                                                                 settings):
    import httpx

    from portal.accounts.models import User
    from portal.accounts.sessions import SESSION_COOKIE, start_session
    from portal.agreements.models import Signature
    from portal.db import utcnow
    from tests.signing.support import sent_agreement

    await published_template(world)
    who = await parties(world)
    agreement = await sent_agreement(world, who, settings)
    user = await db.get_one(User, who.signatory.user_id)
    if with_totp:
        user.totp_enabled_at = utcnow()
    token, _ = await start_session(db, user=user, org=who.org, method=method, ip="198.51.100.9",
                                   user_agent="pytest-signer", settings=settings, second_factor_done=True)
    await world.commit()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                 cookies={SESSION_COOKIE: token}) as signer:
        signed = await post_form(signer, f"/orgs/{who.org.id}/agreements/{agreement.id}/sign", {
            "full_name": "Sigrid Signatory", "title": "Managing Director",
            "document_sha256": agreement.document_sha256, "authority": "yes", "consent": "yes"})
    assert signed.status_code == 303
    signature = (await db.execute(select(Signature))).scalar_one()
    assert signature.auth_method == recorded  # requirement 21: the evidence names how the signer authenticated
