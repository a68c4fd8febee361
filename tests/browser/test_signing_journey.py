"""The signing ceremony in a real browser: the client's admin prepares the agreement and sends it, the signatory
follows the emailed link and signs, vendor legal countersigns; every party downloads the sealed PDF and the evidence
bundle, and those downloads are checked the ways an outsider would: /verify, `portal verify`, pyHanko and pdfsig."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.async_api import Page, expect

from portal.agreements.models import DocumentKind
from portal.signing.pdf import validate_pdf_signature_async
from portal.signing.seal import certificate_pem, seal_key
from tests.conftest import PASSWORD
from tests.notifications.recipients_support import deliver_due
from tests.signing.support import client_details, parties, published_template

pytestmark = pytest.mark.browser

BIN = Path(sys.executable).parent  # the virtualenv's bin, with the installed `portal` command
PDF_LINK = DocumentKind.EXECUTED_PDF.label
BUNDLE_LINK = DocumentKind.BUNDLE.label
EXECUTION = 60_000  # countersigning converts the document with LibreOffice and seals it, within the request


async def log_in(page: Page, email: str) -> None:
    """Fill in the login form the page shows (the login page itself, or where a protected link led)."""
    await page.get_by_label("Work email address").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()


async def download(page: Page, link: str) -> bytes:
    """The bytes behind the link named ``link``, downloaded as the browser does."""
    async with page.expect_download() as started:
        await page.get_by_role("link", name=link, exact=True).click()
    saved = await (await started.value).path()
    return saved.read_bytes()


async def executed_documents(page: Page) -> tuple[bytes, bytes]:
    """The sealed PDF and the evidence bundle from an executed agreement's page, checked against its hash column."""
    await expect(page.get_by_role("heading", name="Executed documents")).to_be_visible()
    pdf, bundle = await download(page, PDF_LINK), await download(page, BUNDLE_LINK)
    for link, data in ((PDF_LINK, pdf), (BUNDLE_LINK, bundle)):
        row = page.get_by_role("row").filter(has=page.get_by_role("link", name=link, exact=True))
        await expect(row).to_contain_text(hashlib.sha256(data).hexdigest())
    assert pdf.startswith(b"%PDF-")
    return pdf, bundle


def flip_in_page_content(pdf: bytes) -> bytes:
    """``pdf`` with one bit changed inside the first content stream, which the first signed byte range covers."""
    stream = pdf.index(b"stream", pdf.index(b"/Filter/FlateDecode")) + len(b"stream\n")
    offset = stream + 20
    first_range = re.search(rb"/ByteRange\s*\[\s*0\s+(\d+)\s+\d+\s+\d+\s*\]", pdf)
    assert first_range, "the PDF has no signature byte range"
    assert offset < pdf.index(b"endstream", stream) < int(first_range.group(1))
    tampered = bytearray(pdf)
    tampered[offset] ^= 0x01
    return bytes(tampered)


def with_member_changed(bundle: bytes, name: str, old: bytes, new: bytes) -> bytes:
    """The bundle rezipped with ``old`` replaced by ``new`` (once) in its member ``name``."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(bundle)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == name:
                assert old in content, f"{old!r} is not in {name}"
                content = content.replace(old, new, 1)
            target.writestr(info, content)
    return out.getvalue()


def portal_verify(path: Path) -> subprocess.CompletedProcess[str]:
    """The installed ``portal verify`` on ``path``, with no portal settings in its environment."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PORTAL_")}
    return subprocess.run([str(BIN / "portal"), "verify", str(path)], cwd=path.parent, env=env,
                          capture_output=True, text=True, check=False, timeout=120)


def pdfsig(pdf: Path, cert_pem: bytes) -> str:
    """What poppler's pdfsig says about ``pdf`` with an NSS database that trusts ``cert_pem`` (see test_pdf.py)."""
    nss = pdf.parent / "nss"
    if not nss.exists():
        nss.mkdir()
        (pdf.parent / "trusted.pem").write_bytes(cert_pem)
        subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
        subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "portal-seal", "-t", "C,C,C", "-a", "-i",
                        str(pdf.parent / "trusted.pem")], check=True, capture_output=True)
    said = subprocess.run(["pdfsig", "-nssdir", f"sql:{nss}", str(pdf)], capture_output=True, text=True,
                          check=False, timeout=120)
    return said.stdout + said.stderr  # it exits 0 on a digest mismatch: its words decide


async def test_prepare_sign_countersign_download_and_verify(live_server, page, new_page, world, engine, mail,
                                                            tmp_path):
    base = live_server.url
    await published_template(world)
    who = await parties(world)
    org = who.org.name
    details = client_details(org)

    # The client's admin fills in the details, reviews the rendered document and sends it to the signatory.
    await page.goto(f"{base}/login")
    await log_in(page, who.admin.user.email)
    await page.get_by_role("link", name="Our agreement").click()
    await expect(page.get_by_role("heading", name=f"Data processing agreements of {org}")).to_be_visible()
    await page.get_by_role("link", name="Prepare agreement").click()
    await expect(page.get_by_role("heading", name="Details of the data processing agreement")).to_be_visible()
    for name, value in details.items():
        await page.locator("#" + name.replace(".", "-")).fill(value)
    await page.locator("#signatory_id").select_option(str(who.signatory.user_id))
    await page.get_by_role("button", name="Save and render the document").click()
    await expect(page.get_by_text("The details are saved and the document is rendered.")).to_be_visible()
    await expect(page.locator("#agreement-status")).to_have_text("Draft")
    sha = await page.locator("#document-sha256").inner_text()
    assert re.fullmatch(r"[0-9a-f]{64}", sha), sha
    document_text = page.locator("#document-text")
    for typed in ("Analysis of shipping documents", "Am Sandtorkai 50, 20457 Hamburg", "Sven Security, CISO"):
        await expect(document_text).to_contain_text(typed)
    # The text shown is the text signed: the DOCX behind it has the hash on the page.
    assert hashlib.sha256(await download(page, "download this DOCX")).hexdigest() == sha
    reference = (await page.get_by_role("heading", level=1).inner_text()).removeprefix("Data processing agreement ")
    await page.get_by_role("button", name="Send to the signatory").click()
    await expect(page.get_by_text("Sent for signature: the signatory you chose is asked to sign")).to_be_visible()
    await expect(page.locator("#agreement-status")).to_have_text("Awaiting the client's signature")
    assert await page.locator("#document-sha256").inner_text() == sha

    # The signatory follows the link in the email, logs in, and signs exactly that document.
    await deliver_due(engine, live_server.settings)
    link = mail.link_in(mail.last_to(who.signatory.user.email), f"/orgs/{who.org.id}/agreements/")
    signatory = await new_page()
    await signatory.goto(base + link)
    await log_in(signatory, who.signatory.user.email)
    await expect(signatory.get_by_role("heading", name=f"Data processing agreement {reference}")).to_be_visible()
    sign = signatory.get_by_role("button",
                                 name=f"Sign version 1 of the data processing agreement (document {sha[:12]})")
    await expect(sign).to_be_visible()
    await signatory.get_by_label("Your full name").fill("Sigrid Signatory")
    await signatory.get_by_label("Your title or position").fill("Managing Director")
    await signatory.get_by_label(f"I am authorised to sign this agreement on behalf of {org}").check()
    await signatory.get_by_label(f"I agree that {org} and").check()
    await sign.click()
    await expect(signatory.get_by_text("Signed. The vendor countersigns next")).to_be_visible()
    await expect(signatory.locator("#agreement-status")).to_have_text("Awaiting the vendor's countersignature")

    # Vendor legal finds it on the agreements board and countersigns; that executes and seals it.
    legal = await new_page()
    await legal.goto(f"{base}/login")
    await log_in(legal, who.legal.user.email)
    await legal.get_by_role("link", name="Agreements", exact=True).click()
    await legal.locator(f'tr[data-client="{org}"]').get_by_role("link", name=reference).click()
    await expect(legal.locator("#agreement-status")).to_have_text("Awaiting the vendor's countersignature")
    await legal.get_by_label("Your full name").fill("Lea Legal")
    await legal.get_by_label("Your title or position").fill("General Counsel")
    await legal.get_by_label("I am authorised to sign this agreement on behalf of").check()
    await legal.get_by_role("button", name=f"Countersign version 1 (document {sha[:12]})").click()
    await expect(legal.locator("#agreement-status")).to_have_text("Executed", timeout=EXECUTION)
    await expect(legal.get_by_text("Countersigned: the agreement is executed and sealed.")).to_be_visible()

    # Both parties, and the admin who prepared it, download the same sealed PDF and bundle from the page.
    pdf, bundle = await executed_documents(legal)
    await signatory.reload()
    await expect(signatory.locator("#agreement-status")).to_have_text("Executed")
    assert await executed_documents(signatory) == (pdf, bundle)
    await page.reload()
    await expect(page.locator("#agreement-status")).to_have_text("Executed")
    assert await executed_documents(page) == (pdf, bundle)
    tampered_pdf = flip_in_page_content(pdf)

    # Anyone can check a copy on /verify, and fetch the seal certificate to check the PDF's seal against.
    outsider = await new_page()
    await outsider.goto(base + "/")
    await outsider.get_by_role("link", name="Verify a document").click()
    for upload, verdict in ((pdf, "Valid."), (tampered_pdf, "Not valid.")):
        await outsider.locator("#file").set_input_files(
            files=[{"name": f"{reference}.pdf", "mimeType": "application/pdf", "buffer": upload}])
        await outsider.get_by_role("button", name="Verify").click()
        await expect(outsider.locator("#verdict strong")).to_have_text(verdict)
        await expect(outsider.locator("#verdict")).to_contain_text(hashlib.sha256(upload).hexdigest())
    cert_pem = await download(outsider, "download the seal certificate")
    certificate = x509.load_pem_x509_certificate(cert_pem)
    fingerprint = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    await expect(outsider.locator("#seal-fingerprint")).to_have_text(fingerprint)
    assert cert_pem == certificate_pem(seal_key(live_server.settings))  # the key the live portal sealed with

    # `portal verify` accepts the downloaded bundle and refuses it with one byte of evidence.json changed.
    (tmp_path / "bundle.zip").write_bytes(bundle)
    (tmp_path / "tampered.zip").write_bytes(with_member_changed(bundle, "evidence.json", b"Sigrid", b"Sigrie"))
    verified = await asyncio.to_thread(portal_verify, tmp_path / "bundle.zip")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "VERIFIED" in verified.stdout and reference in verified.stdout
    refused = await asyncio.to_thread(portal_verify, tmp_path / "tampered.zip")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "FAILED signature" in refused.stdout and "does NOT verify" in refused.stderr

    # The PAdES seal holds for pyHanko and for poppler's pdfsig; one changed byte of page content fails both.
    check = await validate_pdf_signature_async(pdf, cert_pem)
    assert check.ok is True, check.summary
    assert (await validate_pdf_signature_async(tampered_pdf, cert_pem)).ok is False
    (tmp_path / "executed.pdf").write_bytes(pdf)
    (tmp_path / "tampered.pdf").write_bytes(tampered_pdf)
    said = await asyncio.to_thread(pdfsig, tmp_path / "executed.pdf", cert_pem)
    assert "Signature is Valid." in said and "Certificate is Trusted." in said, said
    said = await asyncio.to_thread(pdfsig, tmp_path / "tampered.pdf", cert_pem)
    assert "Digest Mismatch" in said and "Signature is Valid." not in said, said
