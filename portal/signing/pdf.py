"""PDF copies of executed DPAs: DOCX to PDF with LibreOffice, the vendor's PAdES seal, and checking it offline.

Invariants:

- One ``soffice`` process per conversion, each with its own fresh profile in its own temporary directory, removed
  afterwards whatever happens: processes sharing a profile fail silently (exit 1, no PDF, no message).
- A conversion never blocks the event loop, is killed (its whole process group, since ``soffice`` is a shell
  script whose ``oosplash`` starts ``soffice.bin``) on timeout or cancellation, and counts as done only when the
  output exists and starts with ``%PDF-``: LibreOffice's exit code and messages are unreliable.
- At most one conversion per CPU runs at a time in one portal process (each takes ~1.3 s of one core and ~200 MB).
- LibreOffice gets a minimal environment (PATH, HOME and TMPDIR in its temporary directory, a UTF-8 locale), so no
  portal secret from the environment reaches it.
- The seal is PAdES B-B (``ETSI.CAdES.detached``) with the vendor's ECDSA P-256 key and SHA-256, in an invisible
  signature field; a failure raises ``PdfError`` and never yields a partial file.
- Validation is offline (the given trust root only, no fetching) and judges by pyHanko's ``bottom_line``, not
  ``valid``, which stays true on a tampered file; it never raises for bad input, it answers ``ok=False`` and why.
- ``sign_pdf`` and ``validate_pdf_signature`` run their own event loop (pyHanko's synchronous API does), so inside
  one use ``sign_pdf_async`` and ``validate_pdf_signature_async``.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shutil
import signal
import subprocess
import tempfile
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import keys as asn1_keys  # type: ignore[import-untyped]
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.validation import validate_pdf_signature as pyhanko_validate
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from portal.errors import PortalError
from portal.signing.seal import SealKey

DOCX_MAIN_PART = "word/document.xml"


class PdfError(PortalError):
    status = 503
    code = "pdf_failed"
    default_message = "The PDF copy could not be made. Please try again later."


def pdf_available() -> bool:
    """Whether LibreOffice's ``soffice`` is on PATH, so DOCX files can be converted to PDF."""
    return shutil.which("soffice") is not None


# ---------------------------------------------------------------- DOCX to PDF

# One semaphore per event loop: an asyncio.Semaphore belongs to the loop it is first used on.
_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _conversion_slots() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    slots = _slots.get(loop)
    if slots is None:
        slots = _slots[loop] = asyncio.Semaphore(max(1, os.cpu_count() or 1))
    return slots


async def docx_to_pdf(docx: bytes, *, timeout: float = 90.0) -> bytes:  # noqa: ASYNC109 (bounds the child, not us)
    """The PDF LibreOffice makes of ``docx``; ``timeout`` bounds the conversion itself, not the wait for a slot."""
    _check_docx(docx)
    soffice = shutil.which("soffice")
    if soffice is None:
        raise PdfError("LibreOffice (soffice) is not installed, so no PDF copy can be made.")
    async with _conversion_slots():
        workdir = await asyncio.to_thread(_prepare, docx)
        try:
            return await _convert(soffice, workdir, timeout)
        finally:
            # A thread's work is not cancelled with its awaiter, so the directory goes even if we are cancelled.
            await asyncio.to_thread(shutil.rmtree, workdir, True)


def _check_docx(docx: bytes) -> None:
    """Refuse what is not a DOCX before starting LibreOffice, which would otherwise import it as plain text."""
    try:
        with zipfile.ZipFile(io.BytesIO(docx)) as archive:
            names = set(archive.namelist())
    except zipfile.BadZipFile:
        raise PdfError("The document is not a DOCX file (it is not a ZIP archive).") from None
    if DOCX_MAIN_PART not in names:
        raise PdfError(f"The document is not a DOCX file (it has no {DOCX_MAIN_PART}).")


def _prepare(docx: bytes) -> Path:
    workdir = Path(tempfile.mkdtemp(prefix="portal-pdf-"))
    try:
        for part in ("in", "out", "tmp"):
            (workdir / part).mkdir()
        (workdir / "in" / "document.docx").write_bytes(docx)
    except OSError:
        shutil.rmtree(workdir, ignore_errors=True)
        raise
    return workdir


async def _convert(soffice: str, workdir: Path, limit: float) -> bytes:
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(workdir), "TMPDIR": str(workdir / "tmp"),
           "LC_ALL": "C.UTF-8"}
    # Its output goes to a file, not a pipe: a pipe held open by a stray child would keep wait() from returning.
    log_path = workdir / "soffice.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            soffice, f"-env:UserInstallation={(workdir / 'profile').as_uri()}", "--headless", "--norestore",
            "--convert-to", "pdf", "--outdir", str(workdir / "out"), str(workdir / "in" / "document.docx"),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
            start_new_session=True,  # its own process group, so a kill reaches soffice.bin too
        )
    try:
        await asyncio.wait_for(process.wait(), limit)
    except TimeoutError:
        raise PdfError(f"LibreOffice did not finish converting the document within {limit:g} s.") from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        else:  # whatever it left running in its group goes too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    output = await asyncio.to_thread(log_path.read_bytes)
    pdf = await asyncio.to_thread(_read_pdf, workdir / "out" / "document.pdf")
    if pdf is None:
        said = output.decode("utf-8", "replace").strip().replace("\n", " ")[-300:]
        raise PdfError(f"LibreOffice made no PDF of the document (exit status {process.returncode}"
                       f"{': ' + said if said else ''}).")
    return pdf


def _read_pdf(path: Path) -> bytes | None:
    try:
        pdf = path.read_bytes()
    except FileNotFoundError:
        return None
    return pdf if pdf.startswith(b"%PDF-") else None


# ---------------------------------------------------------------- the seal

def sign_pdf(pdf: bytes, key: SealKey, *, field_name: str = "VendorSeal", reason: str, location: str = "") -> bytes:
    """``pdf`` with the vendor's PAdES B-B seal added as an incremental update in an invisible field."""
    _refuse_inside_event_loop("sign_pdf")
    certificate = _asn1_certificate(key.certificate)
    private_key = asn1_keys.PrivateKeyInfo.load(key.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    registry = SimpleCertificateStore()  # type: ignore[no-untyped-call]  # its __init__ is unannotated
    registry.register(certificate)
    signer = signers.SimpleSigner(signing_cert=certificate, signing_key=private_key, cert_registry=registry)
    meta = signers.PdfSignatureMetadata(field_name=field_name, md_algorithm="sha256",
                                        subfilter=fields.SigSeedSubFilter.PADES, reason=reason,
                                        location=location or None)
    pdf_signer = signers.PdfSigner(meta, signer, new_field_spec=fields.SigFieldSpec(field_name, on_page=-1))
    output = io.BytesIO()
    try:
        pdf_signer.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), output=output)
    except Exception as exc:  # pyHanko's parser raises anything from PdfReadError to AttributeError on bad input
        raise PdfError(f"The PDF could not be sealed: {exc}") from exc
    return output.getvalue()


async def sign_pdf_async(pdf: bytes, key: SealKey, *, field_name: str = "VendorSeal", reason: str,
                         location: str = "") -> bytes:
    """``sign_pdf`` in a worker thread, for use inside the event loop."""
    return await asyncio.to_thread(sign_pdf, pdf, key, field_name=field_name, reason=reason, location=location)


def _asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _refuse_inside_event_loop(name: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(f"{name} runs its own event loop and cannot be called inside one; use {name}_async")


# ---------------------------------------------------------------- checking a seal

@dataclass(frozen=True)
class PdfSignatureCheck:
    ok: bool  # pyHanko's bottom line: intact, cryptographically valid, trusted, no disallowed later changes
    intact: bool  # the signed bytes hash to the digest in the signature
    trusted: bool  # the signer's certificate chains to the given trust root
    coverage: str  # e.g. "ENTIRE_FILE", "ENTIRE_REVISION" (something was appended), "" without a signature
    signer: str  # the signer certificate's subject, "" without a signature
    summary: str  # one sentence for people


def validate_pdf_signature(pdf: bytes, trust_root_pem: bytes) -> PdfSignatureCheck:
    """Whether every signature in ``pdf`` is sound and made by ``trust_root_pem`` (or a certificate it issued)."""
    _refuse_inside_event_loop("validate_pdf_signature")
    try:
        root = _asn1_certificate(x509.load_pem_x509_certificate(trust_root_pem))
    except ValueError:
        return _failed("The trust root is not a readable PEM certificate.")
    try:
        signatures = PdfFileReader(io.BytesIO(pdf), strict=False).embedded_signatures
    except Exception as exc:  # malformed files make pyHanko raise anything from PdfReadError to AttributeError
        return _failed(f"The file is not a readable PDF ({exc}).")
    if not signatures:
        return _failed("The PDF has no signature.")
    statuses: list[PdfSignatureStatus] = []
    for signature in signatures:
        context = ValidationContext(trust_roots=[root], allow_fetching=False)
        try:
            statuses.append(pyhanko_validate(signature, context))
        except Exception as exc:  # as above: a damaged signature dictionary or CMS blob is bad input, not a bug
            return _failed(f"The signature in field {signature.field_name!r} could not be checked ({exc}).")
    return _judged(statuses)


async def validate_pdf_signature_async(pdf: bytes, trust_root_pem: bytes) -> PdfSignatureCheck:
    """``validate_pdf_signature`` in a worker thread, for use inside the event loop."""
    return await asyncio.to_thread(validate_pdf_signature, pdf, trust_root_pem)


def _failed(summary: str) -> PdfSignatureCheck:
    return PdfSignatureCheck(ok=False, intact=False, trusted=False, coverage="", signer="", summary=summary)


def _judged(statuses: list[PdfSignatureStatus]) -> PdfSignatureCheck:
    last = statuses[-1]  # the newest signature covers the most of the file
    ok = all(s.bottom_line for s in statuses)
    coverage = last.coverage.name if last.coverage is not None else ""
    signer = str(last.signing_cert.subject.human_friendly)
    if ok:
        covers = ("it covers the entire file" if coverage == "ENTIRE_FILE"
                  else "what was added after it is of an allowed kind")
        summary = f"Valid: sealed by {signer}, intact and trusted; {covers}."
    else:
        problems = sorted({problem for s in statuses for problem in _problems(s)})
        summary = f"Not valid: {', '.join(problems) or 'rejected by the validator'}."
    if len(statuses) > 1:
        summary += f" ({len(statuses)} signatures checked.)"
    return PdfSignatureCheck(ok=ok, intact=all(s.intact for s in statuses), trusted=all(s.trusted for s in statuses),
                             coverage=coverage, signer=signer, summary=summary)


def _problems(status: PdfSignatureStatus) -> list[str]:
    found = []
    if not status.intact:
        found.append("the signed content was changed")
    if not status.valid:
        found.append("the signature does not match the signer's key")
    if status.intact and not status.trusted:  # pyHanko does not check the trust of a changed file
        found.append("the signer is not trusted by the given root")
    if not (status.docmdp_ok or status.modification_level is None):
        found.append("the file was modified after signing in a way that is not allowed")
    if not status.seed_value_ok:
        found.append("the signature breaks its field's constraints")
    return found
