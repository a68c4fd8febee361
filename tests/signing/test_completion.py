"""The certificate of completion: everything the sealed record says, in order, and nothing it does not."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import docx
import pytest
from docx.table import Table

from portal.signing.bundle import SealedEvidence, seal_evidence
from portal.signing.completion import EVENT_COLUMNS, certificate_of_completion
from portal.signing.seal import SealKey
from tests.signing.test_bundle import AUTHORITY, CONSENT, REFERENCE, evidence_record, make_documents, make_key


@pytest.fixture(scope="module")
def key() -> SealKey:
    return make_key()


@pytest.fixture(scope="module")
def sealed(key: SealKey) -> SealedEvidence:
    return seal_evidence(evidence_record(make_documents()), key)


def rows(table: Table) -> list[list[str]]:
    return [[cell.text for cell in row.cells] for row in table.rows]


def read(data: bytes) -> tuple[str, list[list[list[str]]]]:
    """The whole text, paragraphs and table rows in body order, and each table's rows."""
    document = docx.Document(io.BytesIO(data))
    lines: list[str] = []
    tables: list[list[list[str]]] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            tables.append(rows(block))
            lines += [" | ".join(row) for row in tables[-1]]
        else:
            lines.append(block.text)
    return "\n".join(lines), tables


def test_it_lists_every_event_in_order(sealed: SealedEvidence) -> None:
    _text, tables = read(certificate_of_completion(sealed))
    [events] = [table for table in tables if tuple(table[0]) == EVENT_COLUMNS]
    expected = [[str(e["seq"]), e["at"], e["type"], e["actor"], e["ip"], e["user_agent"], e["auth_method"] or ""]
                for e in sealed.record["events"]]
    assert len(events) - 1 == len(expected) == 7
    for row, event in zip(events[1:], expected, strict=True):
        at = dt.datetime.fromisoformat(event[1]).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        assert row == [event[0], at, *event[2:]]
    assert [row[2] for row in events[1:]] == ["created", "document_generated", "sent_for_signature", "viewed",
                                              "signed", "signed", "executed"]


def test_it_states_the_agreement_documents_signatures_and_seal(sealed: SealedEvidence, key: SealKey) -> None:
    text, _tables = read(certificate_of_completion(sealed))
    record = sealed.record
    assert text.startswith("Certificate of completion\n")
    for expected in (REFERENCE, "Acme Logistics SE", "Nordlicht AI GmbH", "2026-12-01 09:14:03 UTC",
                     f"version 3, SHA-256 {record['template']['sha256']}",
                     f"version 7, effective 2026-01-12, SHA-256 {record['subprocessor_list']['sha256']}",
                     "AI commitments | none published",
                     "Notice of sub-processor changes (days) | 30", "Breach notification target (hours) | 48",
                     "Sub-processor authorisation | general",
                     f"SHA-256 of evidence.json | {hashlib.sha256(sealed.data).hexdigest()}",
                     f"Seal certificate SHA-256 | {record['seal']['certificate_sha256']}",
                     "portal verify", "README.txt"):
        assert expected in text
    for document in record["documents"]:
        assert f"{document['name']} | {document['description']} | {document['bytes']} | {document['sha256']}" in text
    for signature in record["signatures"]:
        for field in ("name", "title", "organisation", "email", "auth_method", "ip", "user_agent", "button_label",
                      "document_sha256"):
            assert signature[field] in text
        assert f"Consent text | {CONSENT}" in text
        assert f"Authority statement | {AUTHORITY.format(org=signature['organisation'])}" in text
    assert text.count("Signature level | Simple electronic signature (SES)") == 2
    assert "qualified" not in text.lower() and "advanced" not in text.lower()


def test_published_ai_commitments_are_named(key: SealKey) -> None:
    commitments = {"version": 4, "sha256": hashlib.sha256(b"ai v4").hexdigest()}
    sealed = seal_evidence(evidence_record(make_documents(), ai_commitments=commitments, subprocessor_list=None),
                           key)
    text, _tables = read(certificate_of_completion(sealed))
    assert f"AI commitments | version 4, SHA-256 {commitments['sha256']}" in text
    assert "Sub-processor list | none" in text


def test_the_same_record_gives_the_same_bytes_dated_at_execution(sealed: SealedEvidence) -> None:
    data = certificate_of_completion(sealed)
    assert certificate_of_completion(sealed) == data
    properties = docx.Document(io.BytesIO(data)).core_properties
    assert properties.created == properties.modified == dt.datetime(2026, 12, 1, 9, 14, 3, tzinfo=dt.UTC)
    assert properties.title == f"Certificate of completion: {REFERENCE}"
