"""DPA template versions: drafts from an upload or the default, publishing with a number and changelog, immutability
of published versions, discarding drafts, and the redline between versions."""

from __future__ import annotations

import io

import docx
import pytest
from sqlalchemy import func, select

from portal.accounts.roles import Role
from portal.actors import Actor
from portal.audit.models import AuditEvent
from portal.dpa import templates
from portal.dpa.models import ImmutableTemplate, TemplateStatus, TemplateVersion
from portal.errors import Forbidden, InvalidInput, NotFound
from tests.subprocessors.support import client_person, loaded, vendor_legal


def small_template(*paragraphs: str) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


async def _count(db) -> int:
    return int(await db.scalar(select(func.count()).select_from(TemplateVersion)))


async def test_the_default_becomes_a_draft_and_publishing_numbers_it(world, db):
    legal = await vendor_legal(world)
    draft = await templates.upload_default(db, actor=legal)
    await world.commit()
    assert draft.status is TemplateStatus.DRAFT and draft.number is None
    assert "notice_days" in draft.placeholders and len(draft.sha256) == 64

    published = await templates.publish(db, actor=legal, version_id=str(draft.id), changelog="First version")
    await world.commit()

    assert (published.number, published.status, published.changelog) == (1, TemplateStatus.PUBLISHED,
                                                                            "First version")
    assert await templates.latest_published(db) == published
    tags = (await db.execute(select(AuditEvent.tag))).scalars().all()
    assert sorted(t for t in tags if t.startswith("dpa_template:")) == ["dpa_template:published",
                                                                        "dpa_template:uploaded"]


async def test_the_preview_renders_the_demo_data(world, db):
    legal = await vendor_legal(world)
    draft = await templates.upload_default(db, actor=legal)
    text = "\n".join(await templates.preview(draft))
    assert "{{" not in text and "{%" not in text
    assert "Acme Logistics SE" in text


async def test_a_published_version_cannot_change_or_be_deleted(world, db):
    legal = await vendor_legal(world)
    draft = await templates.upload(db, actor=legal, filename="a.docx", data=small_template("Hello {{ client.name }}"))
    version = await templates.publish(db, actor=legal, version_id=str(draft.id), changelog="v1")
    await world.commit()
    version_id = version.id
    with pytest.raises(InvalidInput, match="kept as evidence"):
        await templates.discard(db, actor=legal, version_id=str(version_id))

    version.changelog = "rewritten history"
    with pytest.raises(ImmutableTemplate):
        await db.flush()
    await db.rollback()
    await db.delete(await db.get(TemplateVersion, version_id))
    with pytest.raises(ImmutableTemplate):
        await db.flush()


async def test_publishing_needs_a_changelog_and_happens_once(world, db):
    legal = await vendor_legal(world)
    draft = await templates.upload(db, actor=legal, filename="a.docx", data=small_template("Hello"))
    with pytest.raises(InvalidInput) as missing:
        await templates.publish(db, actor=legal, version_id=str(draft.id), changelog="  ")
    assert missing.value.fields == {"changelog": "Required."}
    await templates.publish(db, actor=legal, version_id=str(draft.id), changelog="v1")
    with pytest.raises(InvalidInput, match="already published"):
        await templates.publish(db, actor=legal, version_id=str(draft.id), changelog="again")


async def test_a_draft_can_be_discarded(world, db):
    legal = await vendor_legal(world)
    draft = await templates.upload(db, actor=legal, filename="a.docx", data=small_template("Hello"))
    await world.commit()
    await templates.discard(db, actor=legal, version_id=str(draft.id))
    await world.commit()
    assert await _count(db) == 0


async def test_a_refused_upload_stores_nothing(world, db):
    legal = await vendor_legal(world)
    for data in (b"not a word document", small_template("Dear {{ client.shoe_size }}")):
        with pytest.raises(InvalidInput) as refused:
            await templates.upload(db, actor=legal, filename="bad.docx", data=data)
        assert "file" in refused.value.fields
    assert await _count(db) == 0


async def test_only_vendor_legal_manages_templates(world, db):
    viewer = Actor.for_member(await loaded(db, await world.person(await world.vendor(), Role.VIEWER)))
    acme = await world.client_org("Acme Logistics")
    _admin, client_admin = await client_person(world, acme, Role.ADMIN, email="ada@acme.example")
    with pytest.raises(Forbidden):
        await templates.upload(db, actor=viewer, filename="a.docx", data=small_template("Hello"))
    with pytest.raises(NotFound):
        await templates.upload(db, actor=client_admin, filename="a.docx", data=small_template("Hello"))
    with pytest.raises(NotFound):
        await templates.versions(db, actor=client_admin)
    assert await _count(db) == 0


async def test_the_redline_marks_removed_and_added_paragraphs(world, db):
    legal = await vendor_legal(world)
    old = await templates.upload(db, actor=legal, filename="a.docx",
                                 data=small_template("Intro", "Notice: {{ notice_days }} days", "Outro"))
    new = await templates.upload(db, actor=legal, filename="b.docx",
                                 data=small_template("Intro", "Notice: {{ notice_days }} calendar days", "Outro"))

    lines = [(line.op, line.text) for line in templates.redline(old, new)]

    assert lines == [("same", "Intro"), ("removed", "Notice: {{ notice_days }} days"),
                     ("added", "Notice: {{ notice_days }} calendar days"), ("same", "Outro")]
