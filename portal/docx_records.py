"""Small pieces of the DOCX records the portal writes (the certificate of completion, the client's incident record):
fact tables, plain tables, and a package whose bytes depend only on what it says and the time it is of."""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from typing import Any

from docx.opc.constants import RELATIONSHIP_TYPE
from docx.shared import Pt

from portal.signing.bundle import deterministic_zip

SMALL = Pt(8)


def cell_text(value: object) -> str:
    return "" if value is None else str(value)


def facts(document: Any, rows: list[tuple[str, object]]) -> None:
    """A two-column table: bold labels, their values."""
    table = document.add_table(rows=0, cols=2)
    table.style = document.styles["Table Grid"]
    for label, value in rows:
        cells = table.add_row().cells
        cells[0].paragraphs[0].add_run(label).bold = True
        cells[1].paragraphs[0].add_run(cell_text(value))


def table(document: Any, header: tuple[str, ...], rows: list[tuple[object, ...]]) -> None:
    """A table in small type with a bold header row."""
    grid = document.add_table(rows=0, cols=len(header))
    grid.style = document.styles["Table Grid"]
    for index, row in enumerate([header, *rows]):
        for cell, value in zip(grid.add_row().cells, row, strict=True):
            run = cell.paragraphs[0].add_run(cell_text(value))
            run.font.size = SMALL
            run.bold = index == 0


def drop_thumbnail(document: Any) -> None:
    """python-docx's stock thumbnail shows a page that is not this document."""
    package = document.part.package
    for key, relationship in list(package.rels.items()):
        if relationship.reltype == RELATIONSHIP_TYPE.THUMBNAIL:
            del package.rels[key]


def finished(document: Any, *, title: str, author: str, subject: str, moment: dt.datetime | None) -> bytes:
    """The document's bytes with its properties set and every entry stamped with ``moment``, so the same record
    always gives the same file."""
    properties = document.core_properties
    properties.title, properties.subject = title, subject
    properties.author = properties.last_modified_by = author
    properties.comments = ""
    properties.revision = 1
    if moment is not None:
        properties.created = properties.modified = moment.replace(tzinfo=None)  # python-docx writes naive as UTC
    drop_thumbnail(document)
    buffer = io.BytesIO()
    document.save(buffer)
    return stamped(buffer.getvalue(), moment)


def stamped(data: bytes, moment: dt.datetime | None) -> bytes:
    """The same package with every entry stamped with ``moment`` (python-docx stamps the build's clock)."""
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        members = [(info.filename, package.read(info)) for info in package.infolist()]
    return deterministic_zip(members, moment)
