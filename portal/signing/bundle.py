"""Evidence bundles: the zip both parties receive when a DPA is executed (``bundle_check`` verifies one offline).

Invariants:
- ``evidence.json`` is exactly the bytes the seal signs, ``canonical_json`` of the evidence record, and the record's
  ``seal`` names the sealing key and its certificate's SHA-256; ``evidence.sig`` is the base64 DER signature.
- every document the record lists is in ``documents/`` with the listed SHA-256 and size, and nothing else is there;
  a document name is a plain file name (no path separator, drive colon or control character, not ``.``/``..``).
- ``build_bundle`` refuses inputs whose bundle would not verify, so every bundle the portal hands out does; the same
  inputs give the same bytes (fixed member order, times and attributes).
- ``bundle_check.verify_bundle`` needs nothing but the bundle (no settings, database or network) and never raises on
  bad input. It checks what the archive declares before reading anything: more than ``MAX_MEMBERS`` members, a
  member over ``MAX_MEMBER_BYTES`` or more than ``MAX_TOTAL_BYTES`` in all, unsafe or duplicate names, and
  encryption are refused.
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
TOP_LEVEL_FILES = (README_NAME, EVIDENCE_NAME, SIGNATURE_NAME, PUBLIC_KEY_NAME, CERTIFICATE_NAME,
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


def field_text(record: Mapping[str, Any] | None, *path: str) -> str:
    value: object = record
    for name in path:
        value = value.get(name) if isinstance(value, Mapping) else None
    return _text(value)


def readme(record: Mapping[str, Any], *, with_certificate: bool = True) -> str:
    """README.txt: what each file is and the commands that check the bundle without the portal."""
    reference, vendor = field_text(record, "agreement", "reference"), field_text(record, "agreement", "vendor", "name")
    fingerprint = field_text(record, "seal", "certificate_sha256")
    documents = [entry for entry in record.get("documents") or [] if isinstance(entry, Mapping)]
    listing = "\n".join(f"                  {DOCUMENTS_DIR}{entry.get('name')}: {_text(entry.get('description'))}"
                        for entry in documents)
    sums = "\n".join(f"     {entry.get('sha256')}  {DOCUMENTS_DIR}{entry.get('name')}" for entry in documents)
    completion = (f"  {CERTIFICATE_OF_COMPLETION_NAME}\n                  A readable summary of evidence.json. "
                  "It is not sealed: evidence.json decides.\n") if with_certificate else ""
    return f"""Evidence bundle for {reference}
Agreement between {field_text(record, "agreement", "client", "name")} and {vendor}, executed \
{utc_text(field_text(record, "agreement", "executed_at"))}.

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
   which openssl shows as {colon_form(fingerprint)}

4. Or let the DPA portal's verifier run all of these checks:

     $ portal verify bundle.zip

   (bundle.zip being this archive). It prints each check and exits with 0 only when every one passes.
"""


def colon_form(fingerprint: str) -> str:
    upper = fingerprint.upper()
    return ":".join(upper[index:index + 2] for index in range(0, len(upper), 2))
