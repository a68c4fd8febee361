"""``/verify``: a file the portal issued is valid, one changed byte is not; strangers learn only validity and the
execution date, the parties the agreement too; the seal certificate is public."""

from __future__ import annotations

import io
import zipfile

import pytest
from sqlalchemy import select
from sqlalchemy.orm import undefer

from portal.agreements.models import AgreementDocument, DocumentKind
from portal.signing.seal import certificate_pem, seal_key
from tests.conftest import post_form
from tests.signing.support import executed_agreement, parties, published_template


@pytest.fixture
async def executed(world, settings, db):
    await published_template(world)
    who = await parties(world)
    agreement = await executed_agreement(world, who, settings)
    rows = (await db.execute(select(AgreementDocument).options(undefer(AgreementDocument.data)))).scalars()
    return who, agreement, {row.kind: row.data for row in rows}


async def _check(client, data: bytes, name: str = "file.pdf"):
    await client.get("/verify")
    return await post_form(client, "/verify", files={"file": (name, data)})


async def test_anyone_learns_validity_and_date_only(client, executed):
    who, agreement, documents = executed
    for kind in (DocumentKind.EXECUTED_PDF, DocumentKind.EXECUTED_DOCX, DocumentKind.BUNDLE, DocumentKind.EVIDENCE):
        page = await _check(client, documents[kind])
        assert page.status_code == 200 and "<strong>Valid.</strong>" in page.text, kind
        assert agreement.executed_at.strftime("%Y-%m-%d %H:%M UTC") in page.text
        assert who.org.name not in page.text and agreement.reference not in page.text


async def test_one_changed_byte_is_not_valid_and_a_bundle_says_what_changed(client, executed):
    _, _, documents = executed
    pdf = bytearray(documents[DocumentKind.EXECUTED_PDF])
    pdf[1000] ^= 1
    assert "<strong>Not valid.</strong>" in (await _check(client, bytes(pdf))).text
    source = zipfile.ZipFile(io.BytesIO(documents[DocumentKind.BUNDLE]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data.replace(b"Sigrid Signatory", b"Sigrid Signatorx") if info.filename ==
                            "evidence.json" else data)
    page = (await _check(client, out.getvalue(), "bundle.zip")).text
    assert "<strong>Not valid.</strong>" in page and "FAILED" in page and "signature" in page


async def test_the_parties_see_the_agreement(login_as, executed):
    who, agreement, documents = executed
    for member in (who.admin, who.legal):
        page = await _check(await login_as(member), documents[DocumentKind.EXECUTED_PDF])
        assert agreement.reference in page.text and f"/orgs/{who.org.id}/agreements/{agreement.id}" in page.text


async def test_another_client_sees_validity_only(world, login_as, executed):
    who, agreement, documents = executed
    stranger = await login_as(await world.person(await world.client_org("Globex Corporation")))
    page = await _check(stranger, documents[DocumentKind.EXECUTED_PDF])
    assert "<strong>Valid.</strong>" in page.text and agreement.reference not in page.text
    assert who.org.name not in page.text


async def test_the_seal_certificate_is_public(client, settings, db):
    page = await client.get("/verify")
    key = seal_key(settings)
    assert page.status_code == 200
    assert (await client.get("/verify/seal-certificate.pem")).content == certificate_pem(key)


async def test_no_file_is_a_clear_message(client):
    await client.get("/verify")
    refused = await post_form(client, "/verify", files={"file": ("", b"")})
    assert refused.status_code == 400 and "Choose the file to check." in refused.text
