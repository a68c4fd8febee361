"""Checking an evidence bundle offline: needs nothing but the bundle (no settings, database or network) and never
raises on bad input; what the archive declares is checked before anything is read (see ``bundle`` for the format).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from portal.signing.bundle import (
    CERTIFICATE_NAME,
    DOCUMENTS_DIR,
    EVIDENCE_NAME,
    FORMAT,
    MAX_MEMBER_BYTES,
    MAX_MEMBERS,
    MAX_TOTAL_BYTES,
    PUBLIC_KEY_NAME,
    SIGNATURE_NAME,
    TOP_LEVEL_FILES,
    colon_form,
    field_text,
    unsafe_name,
    utc_text,
)
from portal.signing.seal import canonical_json, verify


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
        lines += [f"Agreement: {field_text(record, 'agreement', 'reference')}",
                  f"Client:    {field_text(record, 'agreement', 'client', 'name')}",
                  f"Vendor:    {field_text(record, 'agreement', 'vendor', 'name')}",
                  f"Executed:  {utc_text(field_text(record, 'agreement', 'executed_at'))}"]
        for signature in record.get("signatures") or []:
            if isinstance(signature, Mapping):
                lines.append(f"Signed:    {field_text(signature, 'name')} ({field_text(signature, 'party')}, "
                             f"{field_text(signature, 'organisation')}) at {utc_text(signature.get('signed_at'))}")
        fingerprint = field_text(record, "seal", "certificate_sha256")
        lines += [f"Seal certificate SHA-256: {fingerprint}",
                  f"  (as openssl shows it: {colon_form(fingerprint)})",
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
    if fingerprint != field_text(record, "seal", "certificate_sha256"):
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
    known = {*TOP_LEVEL_FILES, *(DOCUMENTS_DIR + name for name in listed)}
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
