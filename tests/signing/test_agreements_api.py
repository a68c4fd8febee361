"""A client's agreements in the API: the documented schemas, the ``agreements:read`` scope, documents whose bytes
hash to what the listing says, a client token reading only its own organisation, a vendor token reading any client's."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

import httpx

from portal.accounts.models import Organisation
from portal.accounts.tokens.service import create_token
from portal.actors import Actor
from portal.agreements.models import Agreement, AgreementStatus, DocumentKind
from portal.agreements.service import AgreementInput, record_agreement
from portal.dpa.models import TemplateVersion
from portal.settings import Settings
from portal.signing import ceremony
from portal.signing.bundle_check import verify_bundle
from tests.api.conftest import bearer, check_schema
from tests.conftest import World
from tests.signing.support import ORIGIN, Parties, actor, parties, published_template, sent_agreement, sign_input

API = "/api/v1"
LIST = API + "/organisations/{org_id}/agreements"
ONE = LIST + "/{agreement_id}"
DOCUMENT = ONE + "/documents/{kind}"
VENDOR = "Lumen AI GmbH"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@dataclass
class Arranged:
    who: Parties
    template: TemplateVersion
    executed: Agreement
    awaiting: Agreement


async def executed_and_awaiting(world: World, settings: Settings) -> Arranged:
    """Acme's agreement signed, countersigned and executed, then a new one sent and awaiting its signature."""
    template = await published_template(world)
    who = await parties(world)
    executed = await sent_agreement(world, who, settings)
    await ceremony.sign(world.session, actor=actor(who.signatory), org=who.org, agreement_id=str(executed.id),
                        data=sign_input(executed), origin=ORIGIN, settings=settings, vendor_name=VENDOR)
    await world.commit()
    await ceremony.countersign(world.session, actor=actor(who.legal), org=who.org, agreement_id=str(executed.id),
                               data=ceremony.CountersignInput("Lea Legal", "General Counsel",
                                                              executed.document_sha256, True),
                               origin=ORIGIN, settings=settings, vendor_name=VENDOR)
    await world.commit()
    assert executed.status is AgreementStatus.EXECUTED
    awaiting = await sent_agreement(world, who, settings)
    return Arranged(who, template, executed, awaiting)


async def token_for(world: World, org: Organisation, *scopes: str) -> str:
    _token, plaintext = await create_token(world.session, actor=Actor.system("test"), org=org, name="GRC tool",
                                           scopes=list(scopes), days=None)
    await world.commit()
    return plaintext


async def recorded(world: World, org: Organisation, reference: str, notice_days: str = "") -> Agreement:
    agreement = await record_agreement(world.session, actor=Actor.system("test"), org=org, data=AgreementInput(
        reference=reference, signed_on="2025-01-10", authorisation="general", notice_days=notice_days))
    await world.commit()
    return agreement


async def schema_of(client: httpx.AsyncClient, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    document = (await client.get(f"{API}/openapi.json")).json()
    return document, document["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]


async def test_a_client_reads_its_agreements_and_downloads_documents_that_hash_as_listed(world, settings, client):
    arranged = await executed_and_awaiting(world, settings)
    org, executed, awaiting = arranged.who.org, arranged.executed, arranged.awaiting
    plaintext = await token_for(world, org, "agreements:read")

    listed = await client.get(LIST.format(org_id=org.id), headers=bearer(plaintext))

    assert listed.status_code == 200, listed.text
    assert listed.headers["cache-control"] == "no-store"
    check_schema(*await schema_of(client, LIST), listed.json())
    newest, first = listed.json()["items"]  # newest first
    assert (newest["id"], newest["status"], newest["in_force"]) == (str(awaiting.id), "awaiting_signature", False)
    assert (first["id"], first["status"], first["in_force"]) == (str(executed.id), "executed", True)
    assert first["reference"] == executed.reference and first["source"] == "signed"
    assert first["template"] == {"number": 1, "sha256": arranged.template.sha256}
    assert first["document_sha256"] == executed.document_sha256
    assert first["terms"] == {"notice_days": None, "effective_notice_days": settings.subprocessor_notice_days,
                              "breach_target_hours": None,
                              "effective_breach_target_hours": settings.breach_target_hours,
                              "subprocessor_authorisation": "general"}
    assert first["executed_at"] is not None and first["ended_at"] is None and first["decline_reason"] == ""
    assert [(s["party"], s["name"], s["title"], s["level"], s["auth_method"]) for s in first["signatures"]] == [
        ("client", "Sigrid Signatory", "Managing Director", "SES", "password"),
        ("vendor", "Lea Legal", "General Counsel", "SES", "password")]
    assert [d["kind"] for d in first["documents"]] == ["document", *(k.value for k in DocumentKind)]
    assert newest["signatures"] == [] and newest["executed_at"] is None and newest["sent_at"] is not None
    [text] = newest["documents"]
    assert (text["kind"], text["sha256"], text["media_type"]) == ("document", awaiting.document_sha256, DOCX)

    for listed_document in [*first["documents"], text]:
        assert listed_document["url"].startswith("http://testserver/api/v1/")
        download = await client.get(listed_document["url"], headers=bearer(plaintext))
        assert download.status_code == 200, listed_document
        assert hashlib.sha256(download.content).hexdigest() == listed_document["sha256"]
        assert len(download.content) == listed_document["size"]
        assert download.headers["content-type"] == listed_document["media_type"]
        assert download.headers["content-disposition"] == f'attachment; filename="{listed_document["filename"]}"'
        assert download.headers["cache-control"] == "no-store"
    documents = {d["kind"]: d for d in first["documents"]}
    assert documents["document"]["sha256"] == documents["signed_docx"]["sha256"] == executed.document_sha256
    bundle = await client.get(DOCUMENT.format(org_id=org.id, agreement_id=executed.id, kind="bundle"),
                              headers=bearer(plaintext))
    assert hashlib.sha256(bundle.content).hexdigest() == documents["bundle"]["sha256"]
    assert verify_bundle(bundle.content).ok
    pdf = await client.get(DOCUMENT.format(org_id=org.id, agreement_id=executed.id, kind="executed_pdf"),
                           headers=bearer(plaintext))
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert hashlib.sha256(pdf.content).hexdigest() == documents["executed_pdf"]["sha256"]

    one = await client.get(ONE.format(org_id=org.id, agreement_id=executed.id), headers=bearer(plaintext))
    assert one.status_code == 200, one.text
    check_schema(*await schema_of(client, ONE), one.json())
    body = one.json()
    assert {k: v for k, v in body.items() if k != "events"} == first
    assert [e["type"] for e in body["events"]] == ["created", "sent_for_signature", "consented", "signed",
                                                   "countersigned", "executed"]
    assert [e["seq"] for e in body["events"]] == [1, 2, 3, 4, 5, 6]
    signed = body["events"][3]
    assert (signed["ip"], signed["user_agent"], signed["auth_method"]) == (ORIGIN.ip, ORIGIN.user_agent, "password")
    assert signed["actor"] == f"user:{arranged.who.signatory.user.email}"

    for kind in ("bundle", "executed_pdf", "nonsense"):  # nothing stored yet, or no such kind
        missing = await client.get(DOCUMENT.format(org_id=org.id, agreement_id=awaiting.id, kind=kind),
                                   headers=bearer(plaintext))
        assert missing.status_code == 404, kind
        assert missing.json()["error"]["code"] == "not_found"


async def test_the_scope_is_required(world, client):
    acme = await world.client_org("Acme Logistics")
    agreement = await recorded(world, acme, "DPA 2025")
    plaintext = await token_for(world, acme, "org:read", "subprocessors:read")

    for path in (LIST.format(org_id=acme.id), ONE.format(org_id=acme.id, agreement_id=agreement.id),
                 DOCUMENT.format(org_id=acme.id, agreement_id=agreement.id, kind="bundle")):
        response = await client.get(path, headers=bearer(plaintext))
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "insufficient_scope"
        assert "agreements:read" in response.json()["error"]["message"]
        assert "DPA 2025" not in response.text
        assert (await client.get(path)).status_code == 401


async def test_a_vendor_token_reads_the_client_and_another_client_gets_404(world, settings, client):
    arranged = await executed_and_awaiting(world, settings)
    acme, executed = arranged.who.org, arranged.executed
    globex = await world.client_org("Globex Secretive Corp")
    own = await recorded(world, globex, "Globex paper DPA", notice_days="45")
    vendor = await world.vendor()

    vendor_token = await token_for(world, vendor, "agreements:read")
    listed = await client.get(LIST.format(org_id=acme.id), headers=bearer(vendor_token))
    assert listed.status_code == 200, listed.text
    assert [a["id"] for a in listed.json()["items"]] == [str(arranged.awaiting.id), str(executed.id)]
    documents = {d["kind"]: d for d in listed.json()["items"][1]["documents"]}
    bundle = await client.get(documents["bundle"]["url"], headers=bearer(vendor_token))
    assert hashlib.sha256(bundle.content).hexdigest() == documents["bundle"]["sha256"]
    one = await client.get(ONE.format(org_id=acme.id, agreement_id=executed.id), headers=bearer(vendor_token))
    assert one.status_code == 200 and one.json()["status"] == "executed"
    assert (await client.get(LIST.format(org_id=vendor.id), headers=bearer(vendor_token))).status_code == 404

    thief = await token_for(world, globex, "agreements:read")
    secrets = ("Acme", str(acme.id), acme.slug, str(executed.id), executed.reference, executed.document_sha256,
               str(arranged.awaiting.id), "Sigrid", "Lea Legal", documents["bundle"]["sha256"])
    for org_id in (acme.id, globex.id):
        for path in (LIST.format(org_id=acme.id), ONE.format(org_id=org_id, agreement_id=executed.id),
                     *(DOCUMENT.format(org_id=org_id, agreement_id=executed.id, kind=kind)
                       for kind in ("bundle", "executed_pdf", "document"))):
            response = await client.get(path, headers=bearer(thief))
            assert response.status_code == 404, path
            assert response.json()["error"]["code"] == "not_found"
            for secret in secrets:
                assert secret not in response.text, (path, secret)
    assert (await client.get(LIST.format(org_id=vendor.id), headers=bearer(thief))).status_code == 404

    mine = await client.get(LIST.format(org_id=globex.id), headers=bearer(thief))
    assert mine.status_code == 200
    check_schema(*await schema_of(client, LIST), mine.json())
    [paper] = mine.json()["items"]
    assert paper == {**paper, "id": str(own.id), "reference": "Globex paper DPA", "source": "recorded",
                     "status": "executed", "in_force": True, "template": None, "document_sha256": None,
                     "signatures": [], "documents": [], "sent_at": None}
    assert (paper["terms"]["notice_days"], paper["terms"]["effective_notice_days"]) == (45, 45)
    assert dt.datetime.fromisoformat(paper["created_at"]).tzinfo is not None
    for secret in secrets:
        assert secret not in mine.text
