"""Downloading an agreement's files, for its pages and its API alike: the text of an agreement in progress
(``document``) or one of the documents stored at execution, with a file name safe in a header.

Tenancy: the agreement is found by the caller for the organisation in the path; its documents are read scoped to
that organisation, so a file of another tenant is never served.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer
from starlette.responses import Response

from portal.accounts.models import Organisation
from portal.agreements.models import Agreement, AgreementDocument, DocumentKind
from portal.errors import NotFound
from portal.signing.execution import MEDIA_TYPES
from portal.tenancy import scoped

CURRENT_TEXT = "document"  # the kind naming the agreement's own text rather than a stored document
KINDS = [CURRENT_TEXT, *(kind.value for kind in DocumentKind)]


@dataclass(frozen=True)
class AgreementFile:
    data: bytes
    filename: str
    media_type: str

    def response(self) -> Response:
        return Response(self.data, media_type=self.media_type, headers={
            "Content-Disposition": f'attachment; filename="{self.filename}"', "Cache-Control": "no-store"})


def download_name(filename: str) -> str:
    """``filename`` reduced to characters that are safe in a header and on every file system."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("._")[:150] or "document"


def text_name(agreement: Agreement) -> str:
    return download_name(f"{agreement.reference}-for-signature.docx")


async def listings(session: AsyncSession, org: Organisation,
                   agreement_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Any]]:
    """The stored documents of each agreement (kind, filename, media type, SHA-256, size; not the bytes), in the
    order of ``DocumentKind``."""
    rows = (await session.execute(scoped(select(
        AgreementDocument.agreement_id, AgreementDocument.kind, AgreementDocument.filename,
        AgreementDocument.media_type, AgreementDocument.sha256, AgreementDocument.size,
    ).where(AgreementDocument.agreement_id.in_(agreement_ids)), AgreementDocument, org))).all()
    order = list(DocumentKind)
    found: dict[uuid.UUID, list[Any]] = {}
    for row in sorted(rows, key=lambda row: order.index(row.kind)):
        found.setdefault(row.agreement_id, []).append(row)
    return found


async def agreement_file(session: AsyncSession, org: Organisation, agreement: Agreement, kind: str) -> AgreementFile:
    """One file of ``agreement`` (of ``org``) by kind, else 404."""
    if kind == CURRENT_TEXT:
        if agreement.document_docx is None:
            raise NotFound()
        return AgreementFile(agreement.document_docx, text_name(agreement), MEDIA_TYPES[DocumentKind.SIGNED_DOCX])
    if kind not in KINDS:
        raise NotFound()
    stored = (await session.execute(scoped(
        select(AgreementDocument).where(AgreementDocument.agreement_id == agreement.id,
                                        AgreementDocument.kind == DocumentKind(kind))
        .options(undefer(AgreementDocument.data)), AgreementDocument, org))).scalar_one_or_none()
    if stored is None:
        raise NotFound()
    return AgreementFile(stored.data, download_name(stored.filename), stored.media_type)
