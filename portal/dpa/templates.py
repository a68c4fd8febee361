"""Managing DPA template versions: upload (validated, then test-rendered in the sandbox), publish, discard, preview,
and the paragraph-level redline between two versions.

Nothing is stored unless the upload passes every check in ``upload.validate_docx`` and renders with the demo data
in the resource-limited renderer: a template that cannot be rendered never becomes a draft.
"""

from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.roles import Permission
from portal.actors import Actor
from portal.db import utcnow
from portal.dpa import fields
from portal.dpa.default_template import build_default_docx
from portal.dpa.models import TemplateStatus, TemplateVersion
from portal.dpa.render import docx_text, render_docx_async
from portal.dpa.upload import validate_docx
from portal.errors import InvalidInput, NotFound

MAX_CHANGELOG = 4000
DEFAULT_FILENAME = "default_dpa.docx"


def _filename(raw: str) -> str:
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()[:255]
    return name or "template.docx"


async def upload(session: AsyncSession, *, actor: Actor, filename: str, data: bytes) -> TemplateVersion:
    """Store ``data`` as a draft version once it is a safe DOCX using only catalog placeholders and it renders."""
    actor.require_vendor(Permission.MANAGE_TEMPLATES)
    checked = validate_docx(data, allowed=fields.allowed_names(), loops=fields.loop_bindings())
    # An untrusted upload renders in a process of its own; published templates use the shared workers.
    await render_docx_async(checked.data, fields.demo_context(), fresh=True)  # raises RenderError with the reason
    version = TemplateVersion(status=TemplateStatus.DRAFT, filename=_filename(filename), docx=checked.data,
                              sha256=checked.sha256, placeholders=list(checked.placeholders),
                              uploaded_by=actor.label)
    session.add(version)
    await session.flush()
    await audit.record(session, actor=actor, tag="dpa_template:uploaded", subject=version,
                       data={"filename": version.filename, "sha256": version.sha256,
                             "placeholders": len(version.placeholders)})
    return version


async def upload_default(session: AsyncSession, *, actor: Actor) -> TemplateVersion:
    """A draft of the default DPA shipped with the portal (``dpa_templates/default_dpa.txt``)."""
    return await upload(session, actor=actor, filename=DEFAULT_FILENAME, data=build_default_docx())


async def version_of(session: AsyncSession, *, actor: Actor, version_id: uuid.UUID | str) -> TemplateVersion:
    actor.require_vendor(Permission.VIEW_CLIENTS)
    try:
        key = version_id if isinstance(version_id, uuid.UUID) else uuid.UUID(str(version_id))
    except ValueError:
        raise NotFound() from None
    found = await session.get(TemplateVersion, key)
    if found is None:
        raise NotFound()
    return found


async def versions(session: AsyncSession, *, actor: Actor) -> list[TemplateVersion]:
    """Drafts first (newest first), then published versions, newest first."""
    actor.require_vendor(Permission.VIEW_CLIENTS)
    rows = (await session.execute(select(TemplateVersion).order_by(
        TemplateVersion.number.is_(None).desc(), TemplateVersion.number.desc(), TemplateVersion.uploaded_at.desc(),
    ))).scalars().all()
    return list(rows)


async def latest_published(session: AsyncSession) -> TemplateVersion | None:
    return (await session.execute(
        select(TemplateVersion).where(TemplateVersion.status == TemplateStatus.PUBLISHED)
        .order_by(TemplateVersion.number.desc()).limit(1)
    )).scalar_one_or_none()


async def publish(session: AsyncSession, *, actor: Actor, version_id: str, changelog: str) -> TemplateVersion:
    """Publish a draft as the next numbered version, with what changed and why."""
    actor.require_vendor(Permission.MANAGE_TEMPLATES)
    version = await version_of(session, actor=actor, version_id=version_id)
    if version.status is TemplateStatus.PUBLISHED:
        raise InvalidInput(f"This is already published as version {version.number}.")
    changelog = changelog.strip()
    if not changelog:
        raise InvalidInput("Say what changed in this version: clients see it.", fields={"changelog": "Required."})
    if len(changelog) > MAX_CHANGELOG:
        raise InvalidInput(f"The changelog is longer than {MAX_CHANGELOG} characters.",
                           fields={"changelog": "Too long."})
    latest = await session.scalar(select(func.coalesce(func.max(TemplateVersion.number), 0)))
    version.number = int(latest or 0) + 1
    version.status = TemplateStatus.PUBLISHED
    version.changelog = changelog
    version.published_by = actor.label
    version.published_at = utcnow()
    await session.flush()
    await audit.record(session, actor=actor, tag="dpa_template:published", subject=version,
                       data={"number": version.number, "sha256": version.sha256, "changelog": changelog})
    return version


async def discard(session: AsyncSession, *, actor: Actor, version_id: str) -> None:
    actor.require_vendor(Permission.MANAGE_TEMPLATES)
    version = await version_of(session, actor=actor, version_id=version_id)
    if version.status is TemplateStatus.PUBLISHED:
        raise InvalidInput(f"Version {version.number} is published; published versions are kept as evidence.")
    await audit.record(session, actor=actor, tag="dpa_template:discarded", subject=version,
                       data={"filename": version.filename, "sha256": version.sha256})
    await session.delete(version)
    await session.flush()


async def preview(version: TemplateVersion) -> list[str]:
    """The template rendered with the demo data, paragraph by paragraph (tables included)."""
    return docx_text(await render_docx_async(version.docx, fields.demo_context()))


# ---------------------------------------------------------------- redline

@dataclass(frozen=True)
class RedlineLine:
    op: str  # "same", "removed", "added"
    text: str


def redline(old: TemplateVersion, new: TemplateVersion) -> list[RedlineLine]:
    """Paragraph-level differences between two versions' template text (placeholders as written)."""
    before, after = docx_text(old.docx), docx_text(new.docx)
    lines: list[RedlineLine] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=before, b=after, autojunk=False).get_opcodes():
        if tag == "equal":
            lines += [RedlineLine("same", text) for text in before[i1:i2]]
            continue
        lines += [RedlineLine("removed", text) for text in before[i1:i2]]
        lines += [RedlineLine("added", text) for text in after[j1:j2]]
    return lines
