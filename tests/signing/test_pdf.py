"""PDF copies: LibreOffice conversion, the vendor's PAdES seal, and two independent validators (pyHanko, pdfsig).

One real conversion is shared by the module; how a conversion is run (its environment, limits, killing it) is
checked with a stand-in ``soffice`` script, which is quick and can hang on purpose.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from portal.signing.pdf import (
    PdfError,
    docx_to_pdf,
    pdf_available,
    sign_pdf,
    sign_pdf_async,
    validate_pdf_signature,
    validate_pdf_signature_async,
)
from portal.signing.seal import SealKey, certificate_pem, self_signed_certificate

VENDOR = "Nordlicht Cloud GmbH"
PARAGRAPHS = [
    "Data Processing Agreement",
    "Clause 1. The processor processes personal data only on documented instructions.",
    "Special characters: § € ß ü, and quotes “like these”.",
    "Clause 2. Sub-processors are engaged only with prior written authorisation.",
]


def needs(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt: libreoffice-writer-nogui, poppler-utils, "
                    "libnss3-tools)")


def make_docx() -> bytes:
    document = docx.Document()
    document.add_heading(PARAGRAPHS[0], level=0)
    for text in PARAGRAPHS[1:]:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_key(directory: Path, subject: str = VENDOR) -> SealKey:
    private_key = ec.generate_private_key(ec.SECP256R1())
    return SealKey(private_key, self_signed_certificate(private_key, subject), directory / "seal_key.pem",
                   directory / "seal_cert.pem")


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    (tmp_path / "text.pdf").write_bytes(pdf)
    return subprocess.run(["pdftotext", "-enc", "UTF-8", "text.pdf", "-"], cwd=tmp_path, capture_output=True,
                          text=True, check=True).stdout


def entries(directory: Path) -> list[Path]:
    return list(directory.iterdir())


def live_processes_mentioning(text: str) -> list[str]:
    """Command lines of running (not zombie) processes that contain ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(cmdline)
    return found


@pytest.fixture(scope="module")
def seal(tmp_path_factory: pytest.TempPathFactory) -> SealKey:
    return make_key(tmp_path_factory.mktemp("seal"))


@pytest.fixture(scope="module")
async def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    """The one real LibreOffice conversion of this module, and the scratch directory it ran in."""
    needs("soffice")
    scratch = tmp_path_factory.mktemp("scratch")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(scratch))
        pdf = await docx_to_pdf(make_docx())
    return pdf, scratch


@pytest.fixture(scope="module")
def signed(converted: tuple[bytes, Path], seal: SealKey) -> bytes:
    return sign_pdf(converted[0], seal, reason="Data processing agreement DPA-2025-0001 executed",
                    location="https://portal.example")


# ---------------------------------------------------------------- conversion with LibreOffice

def test_conversion_gives_a_pdf_with_the_documents_text(converted: tuple[bytes, Path], tmp_path: Path) -> None:
    pdf, scratch = converted
    assert pdf.startswith(b"%PDF-")
    text = " ".join(pdf_text(pdf, tmp_path).split())
    for paragraph in PARAGRAPHS:
        assert paragraph in text
    assert entries(scratch) == [], "the conversion's directory and profile are removed"
    assert not live_processes_mentioning(str(scratch)), "no LibreOffice process outlives its conversion"


@pytest.mark.parametrize(("document", "reason"), [
    (b"%PDF-1.7 not a word document", "not a ZIP archive"),
    (b"", "not a ZIP archive"),
    ("zip", "has no word/document.xml"),
])
async def test_what_is_not_a_docx_is_refused_quickly_without_starting_libreoffice(
        document: bytes | str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if document == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr("content.xml", "<office:document/>")
        document = buffer.getvalue()
    assert isinstance(document, bytes)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(PdfError, match=f"The document is not a DOCX file .*{reason}") as raised:
        await docx_to_pdf(document)
    assert raised.value.status == 503 and raised.value.code == "pdf_failed"
    assert entries(tmp_path) == []


# ---------------------------------------------------------------- how LibreOffice is run (a stand-in soffice)

FAKE_SOFFICE = """#!{python}
import json, os, subprocess, sys, time
args = sys.argv[1:]
outdir = args[args.index("--outdir") + 1]
target = os.path.join(outdir, os.path.splitext(os.path.basename(args[-1]))[0] + ".pdf")
mode = {mode!r}
log = {log!r}
if mode == "report":
    with open(target, "w") as out:
        out.write("%PDF-1.7\\n" + json.dumps({{"args": args, "env": dict(os.environ), "cwd": os.getcwd(),
                                             "profile_existed": os.path.exists(os.path.join(os.getcwd(), "profile"))}}))
elif mode == "hang":  # like oosplash, which starts soffice.bin and waits for it
    child = subprocess.Popen(["sleep", "60"])
    with open(log, "w") as out:
        out.write(f"{{os.getpid()}} {{child.pid}}")
    child.wait()
elif mode == "slow":
    with open(log, "a") as out:
        out.write(f"{{time.monotonic()}} start\\n")
    time.sleep(0.3)
    with open(log, "a") as out:
        out.write(f"{{time.monotonic()}} end\\n")
    with open(target, "w") as out:
        out.write("%PDF-1.7\\n")
elif mode == "html":
    with open(target, "w") as out:
        out.write("<html>an error page</html>")
else:
    print("Error: source file could not be loaded")
"""


@pytest.fixture
def fake_soffice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """``fake_soffice(mode)`` puts a stand-in ``soffice`` first on PATH; conversions run in tmp_path/scratch."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def install(mode: str) -> Path:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir(exist_ok=True)
        log = tmp_path / "soffice.log"
        script = bin_dir / "soffice"
        script.write_text(FAKE_SOFFICE.format(python=sys.executable, mode=mode, log=str(log)))
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
        return log

    yield install
    assert entries(scratch) == [], "every conversion removes its temporary directory"


async def test_libreoffice_gets_a_fresh_profile_and_no_portal_secret(fake_soffice: Any,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    fake_soffice("report")
    monkeypatch.setenv("PORTAL_SECRET_KEY", "must-not-leak")
    report = json.loads((await docx_to_pdf(make_docx())).split(b"\n", 1)[1])
    workdir = Path(report["cwd"])
    assert workdir.parent == Path(tempfile.gettempdir())
    assert f"-env:UserInstallation={(workdir / 'profile').as_uri()}" in report["args"]
    assert not report["profile_existed"], "each conversion starts from an empty profile"
    assert {"--headless", "--convert-to", "pdf"} <= set(report["args"])
    env = report["env"]
    assert set(env) == {"PATH", "HOME", "TMPDIR", "LC_ALL"}
    assert env["HOME"] == str(workdir) and env["LC_ALL"] == "C.UTF-8"
    assert Path(env["TMPDIR"]).is_relative_to(workdir)


@pytest.mark.parametrize(("mode", "message"), [
    ("nothing", r"LibreOffice made no PDF of the document \(exit status 0: Error: source file could not be loaded\)"),
    ("html", r"LibreOffice made no PDF of the document"),
])
async def test_no_pdf_or_not_a_pdf_is_an_error_whatever_the_exit_status(fake_soffice: Any, mode: str,
                                                                        message: str) -> None:
    fake_soffice(mode)
    with pytest.raises(PdfError, match=message):
        await docx_to_pdf(make_docx())


def still_running(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":  # a killed grandchild waits as a zombie for init to reap it
            alive.append(pid)
    return alive


def recorded_pids(path: Path) -> list[int]:
    return [int(pid) for pid in path.read_text().split()] if path.exists() else []


async def wait_for_pids(path: Path) -> list[int]:
    """The stand-in's own pid and its child's, once it has written them."""
    for _ in range(250):
        if pids := recorded_pids(path):
            return pids
        await asyncio.sleep(0.02)
    raise AssertionError(f"{path} was not written")


async def test_a_conversion_that_hangs_is_killed_with_its_children_at_the_timeout(fake_soffice: Any) -> None:
    log = fake_soffice("hang")
    with pytest.raises(PdfError, match=r"LibreOffice did not finish converting the document within 1.5 s"):
        await docx_to_pdf(make_docx(), timeout=1.5)
    pids = await wait_for_pids(log)
    assert still_running(pids) == []


async def test_a_cancelled_conversion_is_killed_with_its_children(fake_soffice: Any) -> None:
    log = fake_soffice("hang")
    task = asyncio.create_task(docx_to_pdf(make_docx()))
    pids = await wait_for_pids(log)
    assert still_running(pids) == pids
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert still_running(pids) == []


async def test_at_most_one_conversion_per_cpu_runs_at_once(fake_soffice: Any) -> None:
    log = fake_soffice("slow")
    limit = max(1, os.cpu_count() or 1)
    pdfs = await asyncio.gather(*(docx_to_pdf(make_docx()) for _ in range(limit + 2)))
    assert all(pdf.startswith(b"%PDF-") for pdf in pdfs)
    running = most = 0
    for line in sorted(log.read_text().splitlines(), key=lambda line: float(line.split()[0])):
        running += 1 if line.endswith("start") else -1
        most = max(most, running)
    assert most == limit


async def test_without_libreoffice_the_error_says_so(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not pdf_available()
    with pytest.raises(PdfError, match=r"LibreOffice \(soffice\) is not installed"):
        await docx_to_pdf(make_docx())


# ---------------------------------------------------------------- the seal, judged by pyHanko and by poppler

def pdfsig(pdf: bytes, cert_pem: bytes, tmp_path: Path) -> str:
    """What poppler's pdfsig says about ``pdf`` when an NSS database trusts ``cert_pem``.

    No ``-no-ocsp``: pdfsig 22.12 then answers "Unknown issue with Certificate or corrupted data." even for a
    trusted anchor (it reads NSS's last error without checking that verification failed). Nothing is fetched:
    the seal certificate names no OCSP responder. pdfsig exits 0 on a digest mismatch, so its words decide.
    """
    needs("pdfsig", "certutil")
    nss = tmp_path / "nss"
    if not nss.exists():
        nss.mkdir()
        (tmp_path / "cert.pem").write_bytes(cert_pem)
        subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
        subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "portal-seal", "-t", "C,C,C", "-a", "-i",
                        str(tmp_path / "cert.pem")], check=True, capture_output=True)
    (tmp_path / "checked.pdf").write_bytes(pdf)
    result = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(tmp_path / "checked.pdf")],
                            capture_output=True, text=True, check=False)
    return result.stdout + result.stderr


def test_sealed_pdf_is_valid_for_pyhanko_and_pdfsig(signed: bytes, seal: SealKey, tmp_path: Path) -> None:
    check = validate_pdf_signature(signed, certificate_pem(seal))
    assert check.ok and check.intact and check.trusted, check.summary
    assert check.coverage == "ENTIRE_FILE"
    assert VENDOR in check.signer
    assert check.summary.startswith(f"Valid: sealed by {check.signer}")

    said = pdfsig(signed, certificate_pem(seal), tmp_path)
    assert "Signature Field Name: VendorSeal" in said
    assert "Signature Type: ETSI.CAdES.detached" in said
    assert "Signing Hash Algorithm: SHA-256" in said
    assert "Total document signed" in said
    assert "Signature is Valid." in said
    assert "Certificate is Trusted." in said, said


def first_signed_range_end(pdf: bytes) -> int:
    found = re.search(rb"/ByteRange\s*\[\s*0\s+(\d+)\s+\d+\s+\d+\s*\]", pdf)
    assert found
    return int(found.group(1))


def test_one_changed_byte_in_the_page_content_fails_both_validators(signed: bytes, seal: SealKey,
                                                                   tmp_path: Path) -> None:
    stream = signed.index(b"stream", signed.index(b"/Filter/FlateDecode")) + len(b"stream\n")
    offset = stream + 20  # inside the first (page content) stream, which the first signed range covers
    assert offset < signed.index(b"endstream", stream) < first_signed_range_end(signed)
    tampered = bytearray(signed)
    tampered[offset] ^= 0x01

    check = validate_pdf_signature(bytes(tampered), certificate_pem(seal))
    assert not check.ok and not check.intact
    assert "the signed content was changed" in check.summary
    said = pdfsig(bytes(tampered), certificate_pem(seal), tmp_path)
    assert "Digest Mismatch" in said
    assert "Signature is Valid." not in said

    # The control: the same validators on the untouched file, so the failure is the changed byte's doing.
    assert validate_pdf_signature(signed, certificate_pem(seal)).ok
    assert "Signature is Valid." in pdfsig(signed, certificate_pem(seal), tmp_path)


def test_content_appended_after_the_seal_is_not_valid(signed: bytes, seal: SealKey) -> None:
    writer = IncrementalPdfFileWriter(io.BytesIO(signed))
    page = writer.find_page_for_modification(0)[0].get_object()
    page["/Contents"] = writer.add_object(generic.StreamObject(stream_data=b"BT /F1 24 Tf 72 72 Td (PAID) Tj ET"))
    writer.update_container(page)
    changed = io.BytesIO()
    writer.write(changed)

    check = validate_pdf_signature(changed.getvalue(), certificate_pem(seal))
    assert not check.ok and check.intact  # the signed revision itself is untouched
    assert check.coverage == "ENTIRE_REVISION"
    assert "modified after signing" in check.summary


def test_another_trust_root_is_intact_but_not_trusted(signed: bytes, tmp_path: Path) -> None:
    check = validate_pdf_signature(signed, certificate_pem(make_key(tmp_path, "Someone Else")))
    assert not check.ok and check.intact and not check.trusted
    assert "not trusted" in check.summary


def test_unsigned_unreadable_and_truncated_files_are_not_ok_and_say_why(converted: tuple[bytes, Path],
                                                                       signed: bytes, seal: SealKey) -> None:
    root = certificate_pem(seal)
    unsigned = validate_pdf_signature(converted[0], root)
    assert not unsigned.ok and unsigned.summary == "The PDF has no signature."
    for junk in (b"", b"<html>not a pdf</html>", signed[: len(signed) // 2]):
        check = validate_pdf_signature(junk, root)
        assert not check.ok and check.summary.startswith("The file is not a readable PDF")
    bad_root = validate_pdf_signature(signed, b"not a certificate")
    assert not bad_root.ok and "trust root" in bad_root.summary


def test_a_second_seal_needs_its_own_field(signed: bytes, seal: SealKey) -> None:
    with pytest.raises(PdfError, match=r"The PDF could not be sealed: .*VendorSeal"):
        sign_pdf(signed, seal, reason="again")
    twice = sign_pdf(signed, seal, field_name="CountersealAudit", reason="audit copy")
    check = validate_pdf_signature(twice, certificate_pem(seal))
    assert check.ok and check.coverage == "ENTIRE_FILE" and "2 signatures" in check.summary


def test_what_is_not_a_pdf_cannot_be_sealed(seal: SealKey) -> None:
    with pytest.raises(PdfError, match="The PDF could not be sealed"):
        sign_pdf(b"<html>not a pdf</html>", seal, reason="x")


async def test_inside_the_event_loop_the_async_variants_are_used(signed: bytes, seal: SealKey,
                                                                converted: tuple[bytes, Path]) -> None:
    with pytest.raises(RuntimeError, match="use sign_pdf_async"):
        sign_pdf(converted[0], seal, reason="x")
    with pytest.raises(RuntimeError, match="use validate_pdf_signature_async"):
        validate_pdf_signature(signed, certificate_pem(seal))
    sealed = await sign_pdf_async(converted[0], seal, reason="x", location="Berlin")
    assert (await validate_pdf_signature_async(sealed, certificate_pem(seal))).ok
