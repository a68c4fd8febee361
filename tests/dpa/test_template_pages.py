"""The vendor's DPA template pages: legal starts from the default, previews, publishes, uploads a second version and
reads the redline; refused uploads (not a DOCX, an unknown placeholder, too large) store nothing; publishing needs a
changelog and a published version stays; viewers read but cannot change; clients see none of it; CSRF."""

from __future__ import annotations

import hashlib
import html
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import docx
import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from portal.accounts.roles import Role
from portal.audit.models import AuditEvent
from portal.db import make_sessionmaker
from portal.dpa.models import TemplateStatus, TemplateVersion
from portal.dpa.routes import DOCX_TYPE
from portal.dpa.upload import UploadLimits
from tests.conftest import csrf, post_form


@pytest.fixture
async def legal(world, login_as) -> httpx.AsyncClient:
    return await login_as(await world.person(await world.vendor(), Role.LEGAL, email="lena@lumen.example"))


def word_document(*paragraphs: str) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


async def upload(client: httpx.AsyncClient, filename: str, data: bytes, **kwargs: Any) -> httpx.Response:
    return await client.post("/templates", data={"csrf_token": await csrf(client)},
                             files={"file": (filename, data, DOCX_TYPE)}, **kwargs)


async def stored(engine: AsyncEngine) -> list[TemplateVersion]:
    async with make_sessionmaker(engine)() as session:
        return list((await session.execute(select(TemplateVersion).order_by(TemplateVersion.uploaded_at))).scalars())


async def audit_tags(engine: AsyncEngine) -> list[str]:
    async with make_sessionmaker(engine)() as session:
        return list((await session.execute(select(AuditEvent.tag).order_by(AuditEvent.id))).scalars())


async def audit_count(engine: AsyncEngine) -> int:
    async with make_sessionmaker(engine)() as session:
        return int(await session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def version_path(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text[:500]
    location = response.headers["location"]
    assert re.fullmatch(r"/templates/versions/[0-9a-f-]{36}", location), location
    return location


def field_message(page: str, name: str) -> str:
    match = re.search(rf'<p class="flash flash-error" id="{name}-error" role="alert">(.*?)</p>', page, re.S)
    assert match, f"no message beside {name}"
    return html.unescape(match.group(1))


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page))


async def test_legal_starts_from_the_default_publishes_uploads_a_second_and_reads_the_redline(legal, engine):
    index = await legal.get("/templates")
    assert index.status_code == 200
    assert 'enctype="multipart/form-data"' in index.text and 'accept=".docx' in index.text
    assert "at most 5 MiB" in index.text
    assert 'action="/templates/default"' in index.text and 'href="/templates/fields"' in index.text

    first = version_path(await post_form(legal, "/templates/default"))
    page = await legal.get(first)
    assert page.status_code == 200
    assert "Acme Logistics SE" in page.text  # the demo client, rendered into the preview
    assert "{{" not in text_of(page.text.split('id="preview-heading"')[1])
    assert 'action="' + first + '/publish"' in page.text and 'action="' + first + '/discard"' in page.text

    published = await post_form(legal, first + "/publish", {"changelog": "First version for all clients."})
    assert published.headers["location"] == first
    [version] = await stored(engine)
    assert (version.status, version.number, version.changelog) == (TemplateStatus.PUBLISHED, 1,
                                                                     "First version for all clients.")
    assert "dpa_template:published" in await audit_tags(engine)
    page = await legal.get(first)
    assert "DPA template version 1" in page.text and version.sha256 in page.text
    assert "/publish" not in page.text and "/discard" not in page.text

    download = await legal.get(first + "/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == DOCX_TYPE
    assert download.headers["content-disposition"] == 'attachment; filename="default_dpa.docx"'
    assert hashlib.sha256(download.content).hexdigest() == version.sha256

    second_doc = word_document("Agreement between {{ vendor.name }} and {{ client.name }}.",
                               "Notice of new sub-processors: {{ notice_days }} days.")
    second = version_path(await upload(legal, "Short DPA (v2).docx", second_doc))
    page = await legal.get(second)
    assert "Agreement between Nordlicht AI GmbH and Acme Logistics SE." in text_of(page.text)
    assert "client.name" in page.text and "notice_days" in page.text  # placeholders used

    index = await legal.get("/templates")
    assert index.text.index(second.rsplit("/", 1)[1]) < index.text.index(first.rsplit("/", 1)[1])  # drafts first
    assert version.sha256[:12] in index.text and "First version for all clients." in index.text

    old_id, new_id = first.rsplit("/", 1)[1], second.rsplit("/", 1)[1]
    redline = await legal.get("/templates/diff", params={"from": old_id, "to": new_id})
    assert redline.status_code == 200
    added = [html.unescape(t) for t in re.findall(r"<ins>(.*?)</ins>", redline.text, re.S)]
    removed = [html.unescape(t) for t in re.findall(r"<del>(.*?)</del>", redline.text, re.S)]
    assert added == ["Agreement between {{ vendor.name }} and {{ client.name }}.",
                     "Notice of new sub-processors: {{ notice_days }} days."]
    assert any("{{ client.name }}" in text for text in removed) and len(removed) > 20

    download = await legal.get(second + "/download")
    assert download.headers["content-disposition"] == 'attachment; filename="Short_DPA_v2.docx"'
    assert download.content == second_doc


@pytest.mark.parametrize(("data", "expected"), [
    (b"%PDF-1.7 this is not a Word document", "This is not a Word document"),
    (word_document("Dear {{ client.shoe_size }},"), "Unknown placeholders: {{ client.shoe_size }}"),
])
async def test_a_refused_upload_shows_why_beside_the_file_and_stores_nothing(legal, engine, data, expected):
    before = await audit_count(engine)
    response = await upload(legal, "template.docx", data)
    assert response.status_code == 400
    assert expected in field_message(response.text, "file")
    assert 'aria-invalid="true"' in response.text
    assert await stored(engine) == []
    assert await audit_count(engine) == before


async def test_an_upload_without_a_file_is_refused(legal, engine):
    response = await post_form(legal, "/templates", {"note": "no file"})
    assert response.status_code == 400
    assert field_message(response.text, "file") == "Choose a .docx file."
    assert await stored(engine) == []


async def test_an_oversize_upload_is_refused_with_413_before_it_is_read(legal, engine):
    too_big = b"PK\x03\x04" + b"\0" * (UploadLimits().max_bytes + 200_000)
    declared = await upload(legal, "huge.docx", too_big)
    assert declared.status_code == 413
    assert "larger than the 5 MiB a template may have" in field_message(declared.text, "file")

    # Without a Content-Length (chunked), the body is counted as it arrives and stopped at the same limit.
    boundary = "portal-test-boundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{await csrf(legal)}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"huge.docx\"\r\n"
            f"Content-Type: {DOCX_TYPE}\r\n\r\n").encode()

    async def body() -> AsyncIterator[bytes]:
        yield head
        for _ in range(UploadLimits().max_bytes // 65536 + 10):
            yield b"\0" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    chunked = await legal.post("/templates", content=body(),
                               headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert chunked.status_code == 413
    assert "larger than the 5 MiB" in field_message(chunked.text, "file")
    assert await stored(engine) == []


async def test_publishing_needs_a_changelog_and_a_published_version_cannot_be_discarded(legal, engine):
    draft = version_path(await post_form(legal, "/templates/default"))

    refused = await post_form(legal, draft + "/publish", {"changelog": "   "})
    assert refused.status_code == 400
    assert field_message(refused.text, "changelog") == "Required."
    assert "Say what changed in this version" in refused.text
    [version] = await stored(engine)
    assert (version.status, version.number) == (TemplateStatus.DRAFT, None)

    await post_form(legal, draft + "/publish", {"changelog": "First version."})
    kept = await post_form(legal, draft + "/discard")
    assert kept.status_code == 400
    assert "published versions are kept as evidence" in kept.text
    again = await post_form(legal, draft + "/publish", {"changelog": "Again."})
    assert again.status_code == 400 and "already published as version 1" in again.text
    [version] = await stored(engine)
    assert (version.status, version.number, version.changelog) == (TemplateStatus.PUBLISHED, 1, "First version.")


async def test_legal_discards_a_draft(legal, engine):
    draft = version_path(await upload(legal, "a.docx", word_document("Hello {{ client.name }}")))
    response = await post_form(legal, draft + "/discard")
    assert response.status_code == 303 and response.headers["location"] == "/templates"
    assert await stored(engine) == []
    assert "dpa_template:discarded" in await audit_tags(engine)


async def test_a_vendor_viewer_reads_but_every_form_answers_403(world, login_as, legal, engine):
    draft = version_path(await upload(legal, "a.docx", word_document("Hello {{ client.name }}")))
    viewer = await login_as(await world.person(await world.vendor(), Role.VIEWER, email="vic@lumen.example"))
    before = await audit_count(engine)

    for url in ("/templates", "/templates/fields", draft, draft + "/download"):
        assert (await viewer.get(url)).status_code == 200, url
    page = await viewer.get("/templates")
    assert 'action="/templates"' not in page.text and "Read-only" in page.text
    assert "/publish" not in (await viewer.get(draft)).text

    assert (await upload(viewer, "b.docx", word_document("Hi"))).status_code == 403
    for url in ("/templates/default", draft + "/publish", draft + "/discard"):
        assert (await post_form(viewer, url, {"changelog": "mine"})).status_code == 403, url
    [version] = await stored(engine)
    assert version.status is TemplateStatus.DRAFT
    assert await audit_count(engine) == before


async def test_a_client_admin_gets_404_on_every_template_route(world, login_as, legal, engine):
    draft = version_path(await upload(legal, "secret-terms.docx", word_document("Hello {{ client.name }}")))
    draft_id = draft.rsplit("/", 1)[1]
    admin = await login_as(await world.person(await world.client_org("Acme Logistics"), Role.ADMIN))
    before = await audit_count(engine)

    for url in ("/templates", "/templates/fields", draft, draft + "/download",
                f"/templates/diff?from={draft_id}&to={draft_id}"):
        response = await admin.get(url)
        assert response.status_code == 404, url
        assert "secret-terms" not in response.text
    assert (await upload(admin, "b.docx", word_document("Hi"))).status_code == 404
    for url in ("/templates/default", draft + "/publish", draft + "/discard"):
        assert (await post_form(admin, url, {"changelog": "mine"})).status_code == 404, url
    assert len(await stored(engine)) == 1
    assert await audit_count(engine) == before


async def test_every_form_refuses_a_request_without_its_csrf_token(legal, engine):
    draft = version_path(await upload(legal, "a.docx", word_document("Hello {{ client.name }}")))
    before = await audit_count(engine)

    without = await legal.post("/templates", files={"file": ("b.docx", word_document("Hi"), DOCX_TYPE)})
    assert without.status_code == 403
    forged = await legal.post("/templates", data={"csrf_token": "forged"},
                              files={"file": ("b.docx", word_document("Hi"), DOCX_TYPE)})
    assert forged.status_code == 403
    for url in ("/templates/default", draft + "/publish", draft + "/discard"):
        assert (await legal.post(url, data={"changelog": "no token"})).status_code == 403, url
    [version] = await stored(engine)
    assert version.status is TemplateStatus.DRAFT
    assert await audit_count(engine) == before


async def test_the_field_catalog_lists_every_group_and_the_row_loop_convention(legal):
    page = await legal.get("/templates/fields")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "{{ client.name }}" in text and "Registered legal name." in text and "Acme Logistics SE" in text
    assert "{% for sp in subprocessors %}" in text and "{% for commitment in ai_commitments.rows %}" in text
    assert "first cell" in text and "{% endfor %}" in text
    assert "Sub-processors (Annex IV)" in text and "Signatures (Annex I)" in text


async def test_the_redline_needs_two_versions(legal):
    draft = version_path(await upload(legal, "a.docx", word_document("Hello")))
    draft_id = draft.rsplit("/", 1)[1]
    same = await legal.get("/templates/diff", params={"from": draft_id, "to": draft_id})
    assert same.status_code == 400 and "Choose two different versions" in same.text
    unknown = await legal.get("/templates/diff", params={"from": draft_id, "to": "not-an-id"})
    assert unknown.status_code == 404
