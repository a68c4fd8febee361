"""Evidence bundles: the zip both parties receive when a DPA is executed, and the verifier that checks one offline.

Invariants:
- ``evidence.json`` is exactly the bytes the seal signs, ``canonical_json`` of the evidence record, and the record's
  ``seal`` names the sealing key and its certificate's SHA-256; ``evidence.sig`` is the base64 DER signature.
- every document the record lists is in ``documents/`` with the listed SHA-256 and size, and nothing else is there;
  a document name is a plain file name (no path separator, drive colon or control character, not ``.``/``..``).
- ``build_bundle`` refuses inputs whose bundle would not verify, so every bundle the portal hands out does; the same
  inputs give the same bytes (fixed member order, times and attributes).
- ``verify_bundle`` needs nothing but the bundle (no settings, database or network) and never raises on bad input.
  It checks what the archive declares before reading anything: more than ``MAX_MEMBERS`` members, a member over
  ``MAX_MEMBER_BYTES`` or more than ``MAX_TOTAL_BYTES`` in all, unsafe or duplicate names, and encryption are refused.
- a bundle proves integrity, not origin: its key travels inside it. Who sealed it is shown by comparing the
  certificate fingerprint with the one the vendor publishes on its portal's /verify page.
- ``README.txt`` and the certificate of completion are readable summaries outside the seal; evidence.json decides.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from portal.signing.seal import (
    SealKey,
    canonical_json,
    certificate_fingerprint,
    certificate_pem,
    public_key_pem,
    sign,
    verify,
)

FORMAT = "dpa-portal-evidence/1"
ALGORITHM = "ECDSA-P256-SHA256"
EVIDENCE_NAME = "evidence.json"
SIGNATURE_NAME = "evidence.sig"
PUBLIC_KEY_NAME = "public_key.pem"
CERTIFICATE_NAME = "certificate.pem"
README_NAME = "README.txt"
CERTIFICATE_OF_COMPLETION_NAME = "certificate-of-completion.docx"
DOCUMENTS_DIR = "documents/"
_FILES = (README_NAME, EVIDENCE_NAME, SIGNATURE_NAME, PUBLIC_KEY_NAME, CERTIFICATE_NAME,
          CERTIFICATE_OF_COMPLETION_NAME)

MAX_MEMBERS = 100
MAX_MEMBER_BYTES = 100 * 1024 * 1024
MAX_TOTAL_BYTES = 300 * 1024 * 1024
_EARLIEST_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the zip format cannot say anything earlier


@dataclass(frozen=True)
class SealedEvidence:
    record: dict[str, Any]
    data: bytes  # canonical_json(record): what the signature covers and evidence.json holds
    signature: str


def seal_evidence(record: Mapping[str, Any], key: SealKey) -> SealedEvidence:
    """Seal a copy of ``record``: its ``seal`` names ``key``, and the signature covers its canonical bytes."""
    sealed = copy.deepcopy(dict(record))
    sealed["seal"] = {"algorithm": ALGORITHM, "public_key_pem": public_key_pem(key).decode("ascii"),
                      "certificate_sha256": certificate_fingerprint(key)}
    data = canonical_json(sealed)
    # The record handed back is the one the bytes say (tuples become lists), so it and evidence.json agree.
    return SealedEvidence(json.loads(data), data, sign(key, data))


# ---------------------------------------------------------------- building

def build_bundle(sealed: SealedEvidence, key: SealKey, documents: Mapping[str, bytes], *,
                 certificate_of_completion: bytes | None = None) -> bytes:
    """The evidence bundle; ``ValueError`` for inputs whose bundle would not verify (it is never handed out)."""
    seal = sealed.record.get("seal") or {}
    if (canonical_json(sealed.record) != sealed.data
            or seal.get("public_key_pem") != public_key_pem(key).decode("ascii")
            or seal.get("certificate_sha256") != certificate_fingerprint(key)
            or not verify(public_key_pem(key), sealed.data, sealed.signature)):
        raise ValueError("the evidence is not sealed with this key")
    listed = _listed_names(sealed.record)
    missing = [name for name in listed if name not in documents]
    extra = sorted(set(documents) - set(listed))
    if missing or extra:
        raise ValueError(f"the documents given do not match the evidence: missing {missing}, not listed {extra}")
    for entry in sealed.record["documents"]:
        content = documents[entry["name"]]
        if hashlib.sha256(content).hexdigest() != entry.get("sha256") or len(content) != entry.get("bytes"):
            raise ValueError(f"the document {entry['name']} is not the one the evidence lists")
    members = [(README_NAME, readme(sealed.record, with_certificate=certificate_of_completion is not None).encode()),
               (EVIDENCE_NAME, sealed.data),
               (SIGNATURE_NAME, f"{sealed.signature}\n".encode("ascii")),
               (PUBLIC_KEY_NAME, public_key_pem(key)),
               (CERTIFICATE_NAME, certificate_pem(key))]
    if certificate_of_completion is not None:
        members.append((CERTIFICATE_OF_COMPLETION_NAME, certificate_of_completion))
    members += [(DOCUMENTS_DIR + name, documents[name]) for name in listed]
    return deterministic_zip(members, executed_at(sealed.record))


def _listed_names(record: Mapping[str, Any]) -> list[str]:
    entries = record.get("documents")
    if not isinstance(entries, list) or not entries:
        raise ValueError("the evidence lists no documents")
    names = [entry.get("name") if isinstance(entry, dict) else None for entry in entries]
    for name in names:
        if not isinstance(name, str) or unsafe_name(name):
            raise ValueError(f"the document name {name!r} is not a plain file name")
    if len(set(names)) != len(names):
        raise ValueError("the evidence lists a document name twice")
    return [name for name in names if isinstance(name, str)]


def unsafe_name(name: str) -> bool:
    """Whether ``name`` could escape ``documents/`` or mean something else on some system when extracted."""
    return (name in {"", ".", ".."} or len(name) > 255
            or any(char in "/\\:" or ord(char) < 0x20 or ord(char) == 0x7F for char in name))


def deterministic_zip(members: Iterable[tuple[str, bytes]], moment: dt.datetime | None) -> bytes:
    """A deflated zip of ``members`` in the order given, every entry stamped ``moment`` (UTC) and mode 0644."""
    when = _EARLIEST_ZIP_TIME
    if moment is not None and 1980 <= moment.year <= 2107:
        utc = moment.astimezone(dt.UTC)
        when = (utc.year, utc.month, utc.day, utc.hour, utc.minute, utc.second)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members:
            entry = zipfile.ZipInfo(name, date_time=when)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3  # Unix, whatever builds it, so the attributes mean the same everywhere
            entry.external_attr = 0o100644 << 16
            archive.writestr(entry, content, compresslevel=9)
    return buffer.getvalue()


def executed_at(record: Mapping[str, Any]) -> dt.datetime | None:
    """When the agreement was executed, in UTC; None when the record does not say so readably."""
    agreement = record.get("agreement")
    value = agreement.get("executed_at") if isinstance(agreement, Mapping) else None
    return _utc(value)


def _utc(value: object) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return moment.astimezone(dt.UTC)


def utc_text(value: object) -> str:
    """An ISO time from the record as people read it, ``2026-12-01 09:14:03 UTC``; other values as they are."""
    moment = _utc(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else _text(value)


def _text(value: object) -> str:
    if value is None or value == "":
        return "(not stated)"
    return value if isinstance(value, str) else str(value)


def _field(record: Mapping[str, Any] | None, *path: str) -> str:
    value: object = record
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    return _text(value)


def readme(record: Mapping[str, Any], *, with_certificate: bool = True) -> str:
    """README.txt: what each file is and the commands that check the bundle without the portal."""
    reference, vendor = _field(record, "agreement", "reference"), _field(record, "agreement", "vendor", "name")
    fingerprint = _field(record, "seal", "certificate_sha256")
    documents = [entry for entry in record.get("documents") or [] if isinstance(entry, Mapping)]
    listing = "\n".join(f"                  {DOCUMENTS_DIR}{entry.get('name')}: {_text(entry.get('description'))}"
                        for entry in documents)
    sums = "\n".join(f"     {entry.get('sha256')}  {DOCUMENTS_DIR}{entry.get('name')}" for entry in documents)
    completion = (f"  {CERTIFICATE_OF_COMPLETION_NAME}\n                  A readable summary of evidence.json. "
                  "It is not sealed: evidence.json decides.\n") if with_certificate else ""
    return f"""Evidence bundle for {reference}
Agreement between {_field(record, "agreement", "client", "name")} and {vendor}, executed \
{utc_text(_field(record, "agreement", "executed_at"))}.

This archive is the evidence that the data processing agreement above was executed, sealed by {vendor}.
Everything in it can be checked offline, without the portal.

Files
  {EVIDENCE_NAME}   The evidence record: the agreement, the versions of the template, sub-processor list and
                  AI commitments it incorporates, its terms, the SHA-256 of every document, each signature and
                  every event that led to it. The seal signs exactly these bytes.
  {SIGNATURE_NAME}    The seal: an ECDSA P-256 signature with SHA-256 over evidence.json (base64 of its DER).
  {PUBLIC_KEY_NAME}  The public key the seal verifies with (evidence.json names the same key).
  {CERTIFICATE_NAME} The vendor's seal certificate for that key.
{completion}  {DOCUMENTS_DIR}      The documents evidence.json lists:
{listing}
  {README_NAME}      This file. It is not sealed.

How to verify (run the commands in the directory this archive was extracted into)

1. The documents are the ones that were sealed. Compute their SHA-256:

     $ sha256sum {DOCUMENTS_DIR}*

   (on macOS: shasum -a 256 {DOCUMENTS_DIR}*) and compare each with the "sha256" listed for it under "documents"
   in evidence.json. Copied from there, they are:

{sums}

2. The evidence is intact and sealed with public_key.pem:

     $ base64 -d {SIGNATURE_NAME} > {SIGNATURE_NAME}.der
     $ openssl dgst -sha256 -verify {PUBLIC_KEY_NAME} -signature {SIGNATURE_NAME}.der {EVIDENCE_NAME}

   It prints "Verified OK". A change of a single byte in evidence.json makes it print "Verification failure".

3. The key is the vendor's. A key that travels inside the bundle proves the bundle is intact, not who made it.
   These two commands print nothing when public_key.pem is the key in evidence.json's "seal" and in the
   certificate:

     $ python3 -c 'import json; print(json.load(open("{EVIDENCE_NAME}"))["seal"]["public_key_pem"], end="")' \
| cmp - {PUBLIC_KEY_NAME}
     $ openssl x509 -in {CERTIFICATE_NAME} -noout -pubkey | cmp - {PUBLIC_KEY_NAME}

   Then show the certificate's fingerprint:

     $ openssl x509 -in {CERTIFICATE_NAME} -noout -fingerprint -sha256

   It must be the fingerprint {vendor} publishes on the /verify page of its portal. evidence.json records
   it as "certificate_sha256" in "seal": {fingerprint}
   which openssl shows as {_colons(fingerprint)}

4. Or let the DPA portal's verifier run all of these checks:

     $ portal verify bundle.zip

   (bundle.zip being this archive). It prints each check and exits with 0 only when every one passes.
"""


def _colons(fingerprint: str) -> str:
    upper = fingerprint.upper()
    return ":".join(upper[index:index + 2] for index in range(0, len(upper), 2))


# ---------------------------------------------------------------- verifying

@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class BundleReport:
    ok: bool
    checks: list[Check]
    record: dict[str, Any] | None  # as evidence.json says, verified only when ``ok``

    def text(self) -> str:
        """One line per check, then what the bundle is evidence of."""
        lines = [f"{'OK' if check.ok else 'FAILED':<6} {check.name}: {check.detail}" for check in self.checks]
        failed = sum(not check.ok for check in self.checks)
        lines.append("")
        lines.append("VERIFIED: the evidence is intact and sealed with the certificate below." if self.ok else
                     f"NOT VERIFIED: {failed} of {len(self.checks)} checks failed. Do not rely on this bundle.")
        if self.record is None:
            return "\n".join(lines)
        if not self.ok:
            lines.append("What evidence.json claims, unverified:")
        record = self.record
        lines += [f"Agreement: {_field(record, 'agreement', 'reference')}",
                  f"Client:    {_field(record, 'agreement', 'client', 'name')}",
                  f"Vendor:    {_field(record, 'agreement', 'vendor', 'name')}",
                  f"Executed:  {utc_text(_field(record, 'agreement', 'executed_at'))}"]
        for signature in record.get("signatures") or []:
            if isinstance(signature, Mapping):
                lines.append(f"Signed:    {_field(signature, 'name')} ({_field(signature, 'party')}, "
                             f"{_field(signature, 'organisation')}) at {utc_text(signature.get('signed_at'))}")
        fingerprint = _field(record, "seal", "certificate_sha256")
        lines += [f"Seal certificate SHA-256: {fingerprint}",
                  f"  (as openssl shows it: {_colons(fingerprint)})",
                  "Compare it with the fingerprint the vendor publishes on its portal's /verify page: the bundle "
                  "carries its own key,", "so it proves integrity, not who sealed it."]
        return "\n".join(lines)


class _Refused(Exception):
    pass


def verify_bundle(data: bytes) -> BundleReport:
    """Every check an offline verifier can make; a problem of any kind is a failed check, never an exception."""
    try:
        members = _read_archive(data)
    except _Refused as exc:
        return BundleReport(False, [Check("archive", False, str(exc))], None)
    checks = [Check("archive", True, f"{len(members)} files, readable and within the size limits")]
    evidence = members.get(EVIDENCE_NAME)
    evidence_check, record = _parse_evidence(evidence)
    checks += [evidence_check, _check_signature(members, evidence)]
    if record is None:
        unchecked = "not checked: evidence.json is unusable"
        checks += [Check(name, False, unchecked) for name in ("public key", "certificate", "documents")]
    else:
        checks += [_check_public_key(members, record), _check_certificate(members, record),
                   *_check_documents(members, record)]
    return BundleReport(all(check.ok for check in checks), checks, record)


def _read_archive(data: bytes) -> dict[str, bytes]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            _refuse_declared(infos)
            return {info.filename: _read_member(archive, info) for info in infos if not info.is_dir()}
    except _Refused:
        raise
    except Exception as exc:  # malformed archives raise many kinds: BadZipFile, EOFError, zlib.error, ...
        raise _Refused(f"not a readable zip archive ({type(exc).__name__}: {exc})") from None


def _refuse_declared(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_MEMBERS:
        raise _Refused(f"{len(infos)} members, more than the {MAX_MEMBERS} a bundle may have")
    names = [info.filename for info in infos]
    if len(set(names)) != len(names):
        raise _Refused("a member name appears twice")
    for info in infos:
        if info.filename.startswith("/") or any(unsafe_name(part) for part in info.filename.rstrip("/").split("/")):
            raise _Refused(f"unsafe member name {info.filename!r} (a path outside the bundle, or not a plain name)")
        if info.flag_bits & 0x1:
            raise _Refused(f"{info.filename} is encrypted")
        if info.file_size > MAX_MEMBER_BYTES:
            raise _Refused(f"{info.filename} declares {info.file_size} bytes, over the limit of {MAX_MEMBER_BYTES}")
    total = sum(info.file_size for info in infos)
    if total > MAX_TOTAL_BYTES:
        raise _Refused(f"the members declare {total} bytes in all, over the limit of {MAX_TOTAL_BYTES}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with archive.open(info) as handle:
        content = handle.read(info.file_size + 1)  # never more than declared (+1 to notice a lie)
    if len(content) != info.file_size:
        raise _Refused(f"{info.filename} is not the size its header declares")
    return content


def _parse_evidence(raw: bytes | None) -> tuple[Check, dict[str, Any] | None]:
    name = "evidence.json"
    if raw is None:
        return Check(name, False, "evidence.json is missing"), None
    try:
        record = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        return Check(name, False, f"not valid JSON ({exc})"), None
    if not isinstance(record, dict):
        return Check(name, False, "not a JSON object"), None
    try:
        canonical = canonical_json(record) == raw
    except (ValueError, RecursionError):
        canonical = False
    if not canonical:
        return Check(name, False, "not in canonical form: it was re-encoded or edited after sealing"), record
    if record.get("format") != FORMAT:
        return Check(name, False, f"format {record.get('format')!r}, not {FORMAT}"), record
    return Check(name, True, f"canonical JSON in the {FORMAT} format"), record


def _refuse_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _check_signature(members: Mapping[str, bytes], evidence: bytes | None) -> Check:
    name = "signature"
    signature, public_key = members.get(SIGNATURE_NAME), members.get(PUBLIC_KEY_NAME)
    if evidence is None or signature is None or public_key is None:
        absent = [n for n, c in ((EVIDENCE_NAME, evidence), (SIGNATURE_NAME, signature), (PUBLIC_KEY_NAME, public_key))
                  if c is None]
        return Check(name, False, f"cannot be checked: {', '.join(absent)} missing")
    try:
        good = verify(public_key, evidence, signature.decode("ascii").strip())
    except (ValueError, UnsupportedAlgorithm) as exc:  # UnicodeDecodeError is a ValueError
        return Check(name, False, f"public_key.pem or evidence.sig is unusable ({exc})")
    if not good:
        return Check(name, False, "evidence.sig is not a signature over evidence.json with public_key.pem")
    return Check(name, True, "evidence.sig is a valid ECDSA P-256 signature over evidence.json with public_key.pem")


def _spki(pem: bytes) -> bytes | None:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm):
        return None
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _check_public_key(members: Mapping[str, bytes], record: Mapping[str, Any]) -> Check:
    name = "public key"
    bundled = members.get(PUBLIC_KEY_NAME)
    if bundled is None:
        return Check(name, False, "public_key.pem is missing")
    seal = record.get("seal")
    sealed_with = seal.get("public_key_pem") if isinstance(seal, dict) else None
    if not isinstance(sealed_with, str):
        return Check(name, False, "evidence.json names no seal public key")
    ours, theirs = _spki(bundled), _spki(sealed_with.encode("utf-8"))
    if ours is None or theirs is None or ours != theirs:
        return Check(name, False, "public_key.pem is not the key evidence.json's seal names")
    return Check(name, True, "public_key.pem is the key evidence.json's seal names")


def _check_certificate(members: Mapping[str, bytes], record: Mapping[str, Any]) -> Check:
    name = "certificate"
    pem, public_key = members.get(CERTIFICATE_NAME), members.get(PUBLIC_KEY_NAME)
    if pem is None:
        return Check(name, False, "certificate.pem is missing")
    try:
        certificate = x509.load_pem_x509_certificate(pem)
        certified = certificate.public_key().public_bytes(serialization.Encoding.DER,
                                                          serialization.PublicFormat.SubjectPublicKeyInfo)
        der = certificate.public_bytes(serialization.Encoding.DER)
    except (ValueError, UnsupportedAlgorithm) as exc:
        return Check(name, False, f"certificate.pem is not a usable certificate ({exc})")
    if public_key is None or certified != _spki(public_key):
        return Check(name, False, "certificate.pem is not for the key in public_key.pem")
    fingerprint = hashlib.sha256(der).hexdigest()
    if fingerprint != _field(record, "seal", "certificate_sha256"):
        return Check(name, False, f"certificate.pem's SHA-256 {fingerprint} is not the one evidence.json's seal names")
    return Check(name, True, f"certificate.pem is for public_key.pem, SHA-256 {fingerprint} as the seal names")


def _check_documents(members: Mapping[str, bytes], record: Mapping[str, Any]) -> list[Check]:
    entries = record.get("documents")
    if not isinstance(entries, list) or not entries:
        return [Check("documents", False, "evidence.json lists no documents")]
    checks: list[Check] = []
    listed: set[str] = set()
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str) or unsafe_name(name) or name in listed:
            checks.append(Check("documents", False, f"evidence.json lists a document as {name!r}"))
            continue
        listed.add(name)
        checks.append(_check_document(name, members.get(DOCUMENTS_DIR + name), entry))
    known = {*_FILES, *(DOCUMENTS_DIR + name for name in listed)}
    unlisted = sorted(member for member in members if member not in known)
    checks.append(Check("no unlisted documents", not unlisted,
                        f"not in evidence.json: {', '.join(unlisted)}" if unlisted else
                        "every file is a listed document or part of the bundle"))
    return checks


def _check_document(name: str, content: bytes | None, entry: Mapping[str, Any]) -> Check:
    check = f"document {name}"
    if content is None:
        return Check(check, False, f"evidence.json lists it, but {DOCUMENTS_DIR}{name} is not in the bundle")
    digest = hashlib.sha256(content).hexdigest()
    if digest != entry.get("sha256"):
        return Check(check, False, f"SHA-256 {digest}, but evidence.json lists {entry.get('sha256')}")
    if len(content) != entry.get("bytes"):
        return Check(check, False, f"{len(content)} bytes, but evidence.json lists {entry.get('bytes')}")
    return Check(check, True, f"SHA-256 {digest}, {len(content)} bytes, as evidence.json lists")
