"""Evidence bundles: built the same way every time, checked offline by the README's commands and `portal verify`,
and every kind of tampering caught by the check it concerns."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import docx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from portal.cli import main
from portal.signing.bundle import (
    CERTIFICATE_NAME,
    CERTIFICATE_OF_COMPLETION_NAME,
    EVIDENCE_NAME,
    MAX_MEMBER_BYTES,
    PUBLIC_KEY_NAME,
    README_NAME,
    SIGNATURE_NAME,
    SealedEvidence,
    build_bundle,
    seal_evidence,
)
from portal.signing.bundle_check import BundleReport, verify_bundle
from portal.signing.completion import certificate_of_completion
from portal.signing.seal import (
    SealKey,
    canonical_json,
    certificate_fingerprint,
    certificate_pem,
    public_key_pem,
    self_signed_certificate,
    sign,
    verify,
)

VENDOR = "Nordlicht AI GmbH"
CLIENT = "Acme Logistics SE"
REFERENCE = "DPA-2026-0042"
EXECUTED_AT = "2026-12-01T09:14:03.123456+00:00"
SIGNED = f"{REFERENCE}-signed.docx"
EXECUTED = f"{REFERENCE}.docx"
PDF = f"{REFERENCE}.pdf"
DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
CONSENT = ("I agree to sign this agreement electronically. My electronic signature has the same effect as my "
           "handwritten signature.")
AUTHORITY = "I confirm that I am authorised to enter into this agreement on behalf of {org}."
BIN = Path(sys.executable).parent  # the virtualenv's bin: `portal`, and the python3 the README calls


# ---------------------------------------------------------------- a realistic executed agreement

def make_key(subject: str = VENDOR) -> SealKey:
    private_key = ec.generate_private_key(ec.SECP256R1())
    return SealKey(private_key, self_signed_certificate(private_key, subject), Path("unused"), Path("unused"))


def small_docx(*paragraphs: str) -> bytes:
    document = docx.Document()
    document.add_heading("Data Processing Agreement", level=0)
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_documents() -> dict[str, bytes]:
    return {
        SIGNED: small_docx(f"{REFERENCE} between {CLIENT} and {VENDOR}.", "Annex 1: sub-processors."),
        EXECUTED: small_docx(f"{REFERENCE} between {CLIENT} and {VENDOR}.", "Signature page: Sigrid, Viktor."),
        PDF: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
    }


def _document(role: str, name: str, content: bytes, media_type: str, description: str) -> dict[str, Any]:
    return {"role": role, "name": name, "sha256": hashlib.sha256(content).hexdigest(), "bytes": len(content),
            "media_type": media_type, "description": description}


def _signature(party: str, name: str, title: str, org: str, email: str, at: str, signed: bytes,
               ip: str) -> dict[str, Any]:
    return {"party": party, "name": name, "title": title, "organisation": org, "email": email,
            "auth_method": "password+totp", "level": "SES", "signed_at": at,
            "document_sha256": hashlib.sha256(signed).hexdigest(), "ip": ip, "user_agent": BROWSER,
            "consent_text": CONSENT, "authority_statement": AUTHORITY.format(org=org),
            "button_label": "Sign version 3 (a1b2c3d4)"}


def _event(seq: int, kind: str, at: str, actor: str, ip: str, auth: str | None,
           data: dict[str, Any]) -> dict[str, Any]:
    return {"seq": seq, "type": kind, "at": at, "actor": actor, "ip": ip, "user_agent": BROWSER,
            "auth_method": auth, "data": data}


def evidence_record(documents: Mapping[str, bytes], **changes: Any) -> dict[str, Any]:
    """The record the ceremony builds (without ``seal``, which sealing fills in)."""
    signed = documents[SIGNED]
    record: dict[str, Any] = {
        "format": "dpa-portal-evidence/1",
        "agreement": {"id": "0b7f7a59-3c55-4c1e-9d0a-4f6f3f1f2a10", "reference": REFERENCE,
                      "client": {"id": "5d2c8e61-8a1b-4b7e-a3f4-1c9e0b6d7a22", "name": CLIENT},
                      "vendor": {"name": VENDOR}, "executed_at": EXECUTED_AT},
        "template": {"version": 3, "sha256": hashlib.sha256(b"template v3").hexdigest()},
        "subprocessor_list": {"version": 7, "sha256": hashlib.sha256(b"list v7").hexdigest(),
                              "effective_date": "2026-01-12"},
        "ai_commitments": None,
        "terms": {"notice_days": 30, "breach_target_hours": 48, "subprocessor_authorisation": "general"},
        "documents": [
            _document("signed", SIGNED, signed, DOCX_TYPE, "The document as reviewed and signed by both parties"),
            _document("executed", EXECUTED, documents[EXECUTED], DOCX_TYPE,
                      "The executed agreement with its signature page"),
            _document("executed_pdf", PDF, documents[PDF], "application/pdf",
                      "The executed agreement as PDF, sealed by the vendor"),
        ],
        "signatures": [
            _signature("client", "Sigrid Signatory", "Managing Director", CLIENT, "sigrid@acme.example",
                       "2026-11-30T16:02:41.000001+00:00", signed, "203.0.113.7"),
            _signature("vendor", "Viktor Vendor", "Head of Legal", VENDOR, "viktor@nordlicht.example",
                       "2026-12-01T09:14:02.900000+00:00", signed, "198.51.100.20"),
        ],
        "events": [
            _event(1, "created", "2026-11-20T10:00:00+00:00", "user:ada@acme.example", "203.0.113.5", "password",
                   {"template_version": 3}),
            _event(2, "document_generated", "2026-11-20T10:00:05+00:00", "user:ada@acme.example", "203.0.113.5",
                   "password", {"sha256": hashlib.sha256(signed).hexdigest()}),
            _event(3, "sent_for_signature", "2026-11-28T08:30:00+00:00", "user:viktor@nordlicht.example",
                   "198.51.100.20", "password+totp", {"to": "sigrid@acme.example"}),
            _event(4, "viewed", "2026-11-30T15:58:12+00:00", "user:sigrid@acme.example", "203.0.113.7",
                   "password+totp", {}),
            _event(5, "signed", "2026-11-30T16:02:41.000001+00:00", "user:sigrid@acme.example", "203.0.113.7",
                   "password+totp", {"party": "client"}),
            _event(6, "signed", "2026-12-01T09:14:02.900000+00:00", "user:viktor@nordlicht.example",
                   "198.51.100.20", "password+totp", {"party": "vendor"}),
            _event(7, "executed", EXECUTED_AT, "system", "198.51.100.20", None, {}),
        ],
        "sealed_at": "2026-12-01T09:14:03.200000+00:00",
    }
    record.update(changes)
    return record


@pytest.fixture(scope="module")
def key() -> SealKey:
    return make_key()


@pytest.fixture(scope="module")
def other_key() -> SealKey:
    return make_key("Someone Else Ltd")


@pytest.fixture(scope="module")
def documents() -> dict[str, bytes]:
    return make_documents()


@pytest.fixture(scope="module")
def sealed(key: SealKey, documents: dict[str, bytes]) -> SealedEvidence:
    return seal_evidence(evidence_record(documents), key)


@pytest.fixture(scope="module")
def bundle(sealed: SealedEvidence, key: SealKey, documents: dict[str, bytes]) -> bytes:
    return build_bundle(sealed, key, documents, certificate_of_completion=certificate_of_completion(sealed))


def members_of(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def zipped(members: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def failed(report: BundleReport) -> set[str]:
    return {check.name for check in report.checks if not check.ok}


# ---------------------------------------------------------------- sealing and building

def test_sealing_names_the_key_and_signs_the_canonical_bytes(key: SealKey, documents: dict[str, bytes]) -> None:
    record = evidence_record(documents)
    sealed = seal_evidence(record, key)
    assert "seal" not in record  # the caller's record is left alone
    assert sealed.record["seal"] == {"algorithm": "ECDSA-P256-SHA256",
                                     "public_key_pem": public_key_pem(key).decode(),
                                     "certificate_sha256": certificate_fingerprint(key)}
    assert sealed.data == canonical_json(sealed.record)
    assert {k: v for k, v in sealed.record.items() if k != "seal"} == record
    assert verify(public_key_pem(key), sealed.data, sealed.signature)


def test_bundle_holds_the_evidence_its_seal_and_the_documents(bundle: bytes, sealed: SealedEvidence, key: SealKey,
                                                              documents: dict[str, bytes]) -> None:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        infos = archive.infolist()
        assert [info.filename for info in infos] == [
            README_NAME, EVIDENCE_NAME, SIGNATURE_NAME, PUBLIC_KEY_NAME, CERTIFICATE_NAME,
            CERTIFICATE_OF_COMPLETION_NAME, f"documents/{SIGNED}", f"documents/{EXECUTED}", f"documents/{PDF}"]
        assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}
        assert {info.date_time[:5] for info in infos} == {(2026, 12, 1, 9, 14)}  # the execution time
        members = {info.filename: archive.read(info) for info in infos}
    assert members[EVIDENCE_NAME] == sealed.data
    assert members[SIGNATURE_NAME].decode().strip() == sealed.signature
    assert members[PUBLIC_KEY_NAME] == public_key_pem(key)
    assert members[CERTIFICATE_NAME] == certificate_pem(key)
    for name, content in documents.items():
        assert members[f"documents/{name}"] == content
    readme = members[README_NAME].decode()
    assert REFERENCE in readme and "2026-12-01 09:14:03 UTC" in readme and CLIENT in readme
    assert certificate_fingerprint(key) in readme


def test_the_same_inputs_give_the_same_bytes(sealed: SealedEvidence, key: SealKey,
                                             documents: dict[str, bytes], bundle: bytes) -> None:
    again = build_bundle(sealed, key, documents, certificate_of_completion=certificate_of_completion(sealed))
    assert again == bundle
    without = build_bundle(sealed, key, documents)
    assert without == build_bundle(sealed, key, documents)
    assert CERTIFICATE_OF_COMPLETION_NAME not in members_of(without)
    assert verify_bundle(without).ok


def test_a_bundle_that_would_not_verify_is_never_built(sealed: SealedEvidence, key: SealKey, other_key: SealKey,
                                                       documents: dict[str, bytes]) -> None:
    with pytest.raises(ValueError, match=rf"missing \['{PDF}'\]"):
        build_bundle(sealed, key, {n: c for n, c in documents.items() if n != PDF})
    with pytest.raises(ValueError, match=r"not listed \['side-letter.docx'\]"):
        build_bundle(sealed, key, {**documents, "side-letter.docx": b"x"})
    with pytest.raises(ValueError, match=f"the document {PDF} is not the one"):
        build_bundle(sealed, key, {**documents, PDF: documents[PDF] + b"\n"})
    with pytest.raises(ValueError, match="not sealed with this key"):
        build_bundle(sealed, other_key, documents)
    forged = SealedEvidence(sealed.record, sealed.data, sign(key, sealed.data + b" "))
    with pytest.raises(ValueError, match="not sealed with this key"):
        build_bundle(forged, key, documents)


@pytest.mark.parametrize("name", ["../evil.docx", "sub/dir.docx", "back\\slash.docx", "C:evil.docx", "", "..", ".",
                                  "new\nline.docx"])
def test_unsafe_document_names_are_refused(name: str, key: SealKey) -> None:
    content = b"%PDF-1.7 unsafe"
    record = evidence_record({SIGNED: content, EXECUTED: content, PDF: content})
    record["documents"][0]["name"] = name
    sealed = seal_evidence(record, key)
    with pytest.raises(ValueError, match="is not a plain file name"):
        build_bundle(sealed, key, {name: content, EXECUTED: content, PDF: content})


# ---------------------------------------------------------------- verifying

def test_an_untouched_bundle_verifies(bundle: bytes, sealed: SealedEvidence, key: SealKey) -> None:
    report = verify_bundle(bundle)
    assert report.ok, report.text()
    assert report.record == sealed.record
    assert [check.name for check in report.checks] == [
        "archive", "evidence.json", "signature", "public key", "certificate",
        f"document {SIGNED}", f"document {EXECUTED}", f"document {PDF}", "no unlisted documents"]
    text = report.text()
    assert [line.split()[0] for line in text.splitlines()[:len(report.checks)]] == ["OK"] * len(report.checks)
    assert "FAILED" not in text
    for expected in ("VERIFIED", REFERENCE, CLIENT, VENDOR, "2026-12-01 09:14:03 UTC", "Sigrid Signatory",
                     certificate_fingerprint(key), "/verify"):
        assert expected in text


def test_every_readme_command_works_without_the_portal(bundle: bytes, sealed: SealedEvidence, key: SealKey,
                                                       documents: dict[str, bytes], tmp_path: Path) -> None:
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        archive.extractall(tmp_path)
    (tmp_path / "bundle.zip").write_bytes(bundle)
    readme = (tmp_path / README_NAME).read_text()
    commands = re.findall(r"^ +\$ (.+)$", readme, flags=re.MULTILINE)
    assert len(commands) == 7
    env = {name: value for name, value in os.environ.items() if not name.startswith("PORTAL_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"

    def run(command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                              check=False, timeout=120)

    results = {command: run(command) for command in commands}
    for command, result in results.items():
        assert result.returncode == 0, (command, result.stdout, result.stderr)

    def result(fragment: str) -> subprocess.CompletedProcess[str]:
        [found] = [result for command, result in results.items() if fragment in command]
        return found

    hashed = sorted(result("sha256sum").stdout.splitlines())
    assert hashed == sorted(f"{hashlib.sha256(c).hexdigest()}  documents/{n}" for n, c in documents.items())
    assert hashed == sorted(f"{d['sha256']}  documents/{d['name']}" for d in sealed.record["documents"])
    assert result("openssl dgst").stdout.strip() == "Verified OK"
    for same_key in (result("python3"), result("-pubkey")):  # cmp prints nothing when the keys are the same
        assert same_key.stdout == same_key.stderr == ""
    shown = result("-fingerprint").stdout.strip()
    assert shown.split("=", 1)[1].replace(":", "").lower() == certificate_fingerprint(key)
    assert shown.split("=", 1)[1] in readme  # the README shows it as openssl does, to compare by eye
    assert REFERENCE in result("portal verify").stdout

    # The control: one changed byte and openssl says so, as the README promises.
    evidence = tmp_path / EVIDENCE_NAME
    evidence.write_bytes(evidence.read_bytes().replace(b"Sigrid", b"Sigrie", 1))
    tampered = run(next(command for command in commands if command.startswith("openssl dgst")))
    assert tampered.returncode == 1 and tampered.stdout.strip() == "Verification failure"


# Each tampering gives its bundle and the checks that must fail (exactly those: the rest still pass).
Tamper = Callable[[dict[str, bytes], SealKey], bytes]


def _changed(name: str, change: Callable[[bytes], bytes]) -> Tamper:
    return lambda members, _other: zipped({**members, name: change(members[name])})


def _without(name: str) -> Tamper:
    return lambda members, _other: zipped({n: c for n, c in members.items() if n != name})


def _with(name: str, content: bytes) -> Tamper:
    return lambda members, _other: zipped({**members, name: content})


def _flip_last(content: bytes) -> bytes:
    return content[:-2] + bytes([content[-2] ^ 0x01]) + content[-1:]


def _other_signature(members: dict[str, bytes], other: SealKey) -> bytes:
    return zipped({**members, SIGNATURE_NAME: sign(other, members[EVIDENCE_NAME]).encode()})


def _other_signature_and_key(members: dict[str, bytes], other: SealKey) -> bytes:
    return zipped({**members, SIGNATURE_NAME: sign(other, members[EVIDENCE_NAME]).encode(),
                   PUBLIC_KEY_NAME: public_key_pem(other)})


def _other_signature_key_and_certificate(members: dict[str, bytes], other: SealKey) -> bytes:
    return zipped({**members, SIGNATURE_NAME: sign(other, members[EVIDENCE_NAME]).encode(),
                   PUBLIC_KEY_NAME: public_key_pem(other), CERTIFICATE_NAME: certificate_pem(other)})


def _pretty(content: bytes) -> bytes:
    return json.dumps(json.loads(content), indent=2).encode()


TAMPERING: dict[str, tuple[Tamper, set[str]]] = {
    "one byte of evidence.json": (_changed(EVIDENCE_NAME, lambda c: c.replace(b"Logistics SE", b"Logistics SF")),
                                  {"signature"}),
    "evidence.json re-encoded": (_changed(EVIDENCE_NAME, _pretty), {"evidence.json", "signature"}),
    "one byte of a document": (_changed(f"documents/{PDF}", _flip_last), {f"document {PDF}"}),
    "a document removed": (_without(f"documents/{SIGNED}"), {f"document {SIGNED}"}),
    "a document added": (_with("documents/side-letter.docx", b"PK\x03\x04 extra"), {"no unlisted documents"}),
    "a file added": (_with("install.sh", b"#!/bin/sh\n"), {"no unlisted documents"}),
    "the signature removed": (_without(SIGNATURE_NAME), {"signature"}),
    "the signature garbled": (_with(SIGNATURE_NAME, b"not base64 at all!"), {"signature"}),
    "another key's signature": (_other_signature, {"signature"}),
    "another key's signature and public key": (_other_signature_and_key, {"public key", "certificate"}),
    "another key's signature, key and certificate": (_other_signature_key_and_certificate,
                                                     {"public key", "certificate"}),
    "another key's certificate": (lambda m, other: zipped({**m, CERTIFICATE_NAME: certificate_pem(other)}),
                                  {"certificate"}),
    "the certificate removed": (_without(CERTIFICATE_NAME), {"certificate"}),
    "the public key garbled": (_with(PUBLIC_KEY_NAME, b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
                               {"signature", "public key", "certificate"}),
    "evidence.json removed": (_without(EVIDENCE_NAME), {"evidence.json", "signature", "public key", "certificate",
                                                        "documents"}),
    "evidence.json not JSON": (_with(EVIDENCE_NAME, b"{not json"), {"evidence.json", "signature", "public key",
                                                                    "certificate", "documents"}),
    "not a zip": (lambda _m, _o: b"%PDF-1.7 this is not an archive", {"archive"}),
    "a ../evil member": (_with("../evil", b"boom"), {"archive"}),
    "a documents/../../evil member": (_with("documents/../../evil", b"boom"), {"archive"}),
    "an absolute member": (_with("/etc/cron.d/evil", b"boom"), {"archive"}),
    "a backslash member": (_with("documents\\..\\evil", b"boom"), {"archive"}),
    "too many members": (lambda m, _o: zipped({**m, **{f"documents/x{i}.txt": b"x" for i in range(100)}}),
                         {"archive"}),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampering_fails_the_check_it_concerns(case: str, bundle: bytes, other_key: SealKey, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    tamper, expected = TAMPERING[case]
    data = tamper(members_of(bundle), other_key)
    report = verify_bundle(data)
    assert not report.ok
    assert failed(report) == expected, report.text()
    text = report.text()
    assert "NOT VERIFIED" in text
    for name in expected:
        assert f"FAILED {name}: " in text

    path = tmp_path / "tampered.zip"
    path.write_bytes(data)
    with pytest.raises(SystemExit) as exited:
        main(["verify", str(path)])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert out.strip() == text.strip() and "does NOT verify" in err


def test_the_untampered_rezip_verifies(bundle: bytes) -> None:
    # The control for the cases above: rezipping alone (other times, other compression) changes nothing.
    assert verify_bundle(zipped(members_of(bundle))).ok


def test_a_bundle_resealed_with_another_key_verifies_but_shows_that_key(bundle: bytes, documents: dict[str, bytes],
                                                                        key: SealKey, other_key: SealKey) -> None:
    # What the README warns about: a bundle carries its own key, so only the published fingerprint shows who sealed.
    record = json.loads(members_of(bundle)[EVIDENCE_NAME])
    del record["seal"]
    forged = build_bundle(seal_evidence(record, other_key), other_key, documents)
    report = verify_bundle(forged)
    assert report.ok
    assert certificate_fingerprint(other_key) in report.text()
    assert certificate_fingerprint(key) not in report.text()


def test_oversized_members_are_refused_before_they_are_read(bundle: bytes) -> None:
    buffer = io.BytesIO(zipped(members_of(bundle)))
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_DEFLATED) as archive, \
            archive.open("documents/bomb.bin", "w") as bomb:
        chunk = bytes(1024 * 1024)
        for _ in range(101):
            bomb.write(chunk)
    report = verify_bundle(buffer.getvalue())
    assert failed(report) == {"archive"}
    assert f"documents/bomb.bin declares {101 * 1024 * 1024} bytes, over the limit of {MAX_MEMBER_BYTES}" in \
        report.checks[0].detail


def test_members_over_the_total_limit_are_refused(bundle: bytes) -> None:
    buffer = io.BytesIO()
    chunk = bytes(1024 * 1024)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for index in range(4):
            with archive.open(f"documents/part{index}.bin", "w") as part:
                for _ in range(80):
                    part.write(chunk)
    report = verify_bundle(buffer.getvalue())
    assert failed(report) == {"archive"} and "in all, over the limit" in report.checks[0].detail


def test_a_member_larger_than_its_header_says_is_not_read_past_it(bundle: bytes) -> None:
    data = bytearray(zipped({**members_of(bundle), "documents/liar.bin": bytes(10 * 1024 * 1024)}))
    # Patch the central directory's uncompressed size of the last member, which readers trust, to 1000 bytes.
    header = data.rindex(b"PK\x01\x02")
    assert int.from_bytes(data[header + 24:header + 28], "little") == 10 * 1024 * 1024
    data[header + 24:header + 28] = (1000).to_bytes(4, "little")
    report = verify_bundle(bytes(data))
    assert failed(report) == {"archive"}


def test_duplicate_member_names_are_refused(bundle: bytes) -> None:
    buffer = io.BytesIO(bundle)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr(EVIDENCE_NAME, b"{}")
    report = verify_bundle(buffer.getvalue())
    assert failed(report) == {"archive"} and "appears twice" in report.checks[0].detail


def test_broken_input_is_a_failed_report_never_an_exception(bundle: bytes) -> None:
    for cut in range(0, len(bundle), max(1, len(bundle) // 97)):
        assert not verify_bundle(bundle[:cut]).ok
    for position in range(0, len(bundle), max(1, len(bundle) // 211)):
        damaged = bytearray(bundle)
        damaged[position] ^= 0xFF
        assert isinstance(verify_bundle(bytes(damaged)), BundleReport)
    assert not verify_bundle(b"").ok


# ---------------------------------------------------------------- `portal verify`

def test_portal_verify_needs_no_settings_and_creates_nothing(bundle: bytes, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bundle.zip"
    path.write_bytes(bundle)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    for name in list(os.environ):
        if name.startswith("PORTAL_"):
            monkeypatch.delenv(name)
    main(["verify", str(path)])  # returns: exit status 0
    out = capsys.readouterr().out
    assert REFERENCE in out and "VERIFIED" in out
    assert list(workdir.iterdir()) == []  # no ./var data dir

    with pytest.raises(SystemExit) as missing:
        main(["verify", str(tmp_path / "absent.zip")])
    assert missing.value.code == 1
    assert f"portal: cannot read {tmp_path / 'absent.zip'}: No such file or directory" in capsys.readouterr().err


def test_the_installed_portal_command_verifies_a_bundle(bundle: bytes, tmp_path: Path) -> None:
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    good.write_bytes(bundle)
    members = members_of(bundle)
    members[f"documents/{PDF}"] = _flip_last(members[f"documents/{PDF}"])
    bad.write_bytes(zipped(members))
    env = {name: value for name, value in os.environ.items() if not name.startswith("PORTAL_")}

    def portal_verify(path: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "portal"), "verify", str(path)], cwd=tmp_path, env=env,
                              capture_output=True, text=True, check=False, timeout=120)

    ok = portal_verify(good)
    assert ok.returncode == 0, ok.stderr
    assert REFERENCE in ok.stdout and "VERIFIED" in ok.stdout
    broken = portal_verify(bad)
    assert broken.returncode == 2
    assert f"FAILED document {PDF}: " in broken.stdout and "does NOT verify" in broken.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.zip", "good.zip"]


def test_signature_file_is_what_openssl_reads_once_decoded(bundle: bytes, sealed: SealedEvidence) -> None:
    signature = members_of(bundle)[SIGNATURE_NAME]
    assert signature.endswith(b"\n") and base64.b64decode(signature.strip()) == base64.b64decode(sealed.signature)
