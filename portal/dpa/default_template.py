"""The default DPA template: ``dpa_templates/default_dpa.txt`` (reviewable text) turned into a DOCX.

The text uses a small line-based markup, described at the top of the file itself: ``= `` title, ``# ``/``## ``/``### ``
headings, ``- `` bullets, ``| a | b |`` table rows (first row is the header), ``%%`` reviewer notes, and blank lines
between paragraphs. Placeholders are Jinja tags over the catalog in ``portal.dpa.fields``; each paragraph and each
table cell is written as a single run, so no tag is ever split across runs.

Row loop convention (what a renderer repeats): in a table, a row whose FIRST cell's text begins with
``{% for <variable> in <list> %}`` and whose LAST cell's text ends with ``{% endfor %}`` is a looped row. The renderer
removes both tags and writes one copy of the row per item of ``<list>``, rendering each cell's text with
``<variable>`` bound to the item; with an empty list the row disappears and the header row stays. In the text source
the tags stand on their own lines around the row; ``build_docx`` moves them into the row's first and last cells.

Invariants:
- the same text gives the same bytes (fixed core properties, fixed zip entry times and order, no thumbnail), so the
  template's SHA-256 is stable;
- the package holds no macro parts (nothing but python-docx's own parts);
- malformed markup (a loop line outside a table, an unclosed loop, rows of different widths) raises ``MarkupError``
  naming the line, so a broken edit of the text fails the tests rather than producing a broken document.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import docx
from docx.opc.constants import RELATIONSHIP_TYPE
from docx.oxml import OxmlElement
from docx.oxml.ns import qn
from docx.shared import Pt

SOURCE_NAME = "default_dpa.txt"
_SOURCE_DIR = Path(__file__).resolve().parent.parent.parent / "dpa_templates"
# Installed without the source tree (pip install .), the text ships inside the package (see pyproject.toml).
_PACKAGED_DIR = Path(__file__).resolve().parent.parent / "resources" / "dpa_templates"

# Fixed so the same text always gives the same bytes: the document's own dates are the agreement's, not the build's.
FIXED_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
TABLE_FONT = Pt(8)

_FOR = re.compile(r"^\{%-?\s*for\s+([A-Za-z_]\w*)\s+in\s+([A-Za-z_][\w.]*)\s*-?%\}$")
_ENDFOR = re.compile(r"^\{%-?\s*endfor\s*-?%\}$")
_HEADING = re.compile(r"^(#{1,3}) (.+)$")


class MarkupError(ValueError):
    pass


@dataclass(frozen=True)
class Row:
    cells: tuple[str, ...]
    loop: tuple[str, str] | None = None  # (variable, list) for a looped row


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)


@dataclass(frozen=True)
class Block:
    kind: str  # "title", "heading", "paragraph", "bullet"
    text: str
    level: int = 0


Element = Block | Table


def source_path() -> Path:
    """Where the default template's text is: the source tree, or the copy inside the installed package."""
    source = _SOURCE_DIR / SOURCE_NAME
    return source if source.is_file() else _PACKAGED_DIR / SOURCE_NAME


def default_text() -> str:
    return source_path().read_text(encoding="utf-8")


def _cells(line: str, number: int) -> tuple[str, ...]:
    if not line.endswith("|") or len(line) < 2:
        raise MarkupError(f"line {number}: a table row starts and ends with '|'")
    return tuple(cell.strip() for cell in line[1:-1].split("|"))


def _table(lines: list[tuple[int, str]]) -> Table:
    table = Table()
    loop: tuple[str, str] | None = None
    looped_row_seen = False
    for number, line in lines:
        if match := _FOR.match(line):
            if loop is not None or not table.rows:
                raise MarkupError(f"line {number}: a loop starts after the header row and cannot be nested")
            loop = (match.group(1), match.group(2))
            looped_row_seen = False
        elif _ENDFOR.match(line):
            if loop is None or not looped_row_seen:
                raise MarkupError(f"line {number}: '{{% endfor %}}' must follow exactly one looped row")
            loop = None
        else:
            if loop is not None and looped_row_seen:
                raise MarkupError(f"line {number}: a loop repeats exactly one row")
            row = Row(_cells(line, number), loop)
            if table.rows and len(row.cells) != len(table.rows[0].cells):
                raise MarkupError(f"line {number}: {len(row.cells)} cells where the header has "
                                  f"{len(table.rows[0].cells)}")
            table.rows.append(row)
            looped_row_seen = loop is not None
    if loop is not None:
        raise MarkupError(f"line {lines[-1][0]}: the table ends inside a loop (missing '{{% endfor %}}')")
    return table


def parse(text: str) -> list[Element]:
    """The document's elements, in order (see the module docstring for the markup)."""
    elements: list[Element] = []
    paragraph: list[str] = []
    bullet: list[str] | None = None
    table: list[tuple[int, str]] = []

    def flush() -> None:
        nonlocal bullet
        if paragraph:
            elements.append(Block("paragraph", " ".join(paragraph)))
            paragraph.clear()
        if bullet is not None:
            elements.append(Block("bullet", " ".join(bullet)))
            bullet = None
        if table:
            elements.append(_table(table))
            table.clear()

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if stripped.startswith("%%"):
            continue
        is_loop_line = bool(_FOR.match(stripped) or _ENDFOR.match(stripped))
        if stripped.startswith("|") or (is_loop_line and table):
            if not table:
                flush()
            table.append((number, stripped))
            continue
        if is_loop_line:
            raise MarkupError(f"line {number}: a loop line belongs inside a table, before and after one row")
        if table:
            flush()
        if not stripped:
            flush()
        elif line.startswith("= "):
            flush()
            elements.append(Block("title", line[2:].strip()))
        elif heading := _HEADING.match(line):
            flush()
            elements.append(Block("heading", heading.group(2).strip(), len(heading.group(1))))
        elif line.startswith("- "):
            flush()
            bullet = [line[2:].strip()]
        elif bullet is not None and line.startswith("  "):
            bullet.append(stripped)
        else:
            if bullet is not None:
                flush()
            paragraph.append(stripped)
    flush()
    return elements


def _repeat_as_header(row: object) -> None:
    # A long annex table keeps its column names on every page.
    tr_pr = row._tr.get_or_add_trPr()  # type: ignore[attr-defined]
    header = OxmlElement("w:tblHeader")
    header.set(qn("w:val"), "true")
    tr_pr.append(header)


def _add_table(document: docx.document.Document, table: Table) -> None:
    width = len(table.rows[0].cells)
    word_table = document.add_table(rows=0, cols=width)
    word_table.style = document.styles["Table Grid"]
    for index, row in enumerate(table.rows):
        texts = list(row.cells)
        if row.loop is not None:
            variable, items = row.loop
            texts[0] = f"{{% for {variable} in {items} %}}{texts[0]}"
            texts[-1] = f"{texts[-1]}{{% endfor %}}"
        word_row = word_table.add_row()
        for cell, text in zip(word_row.cells, texts, strict=True):
            run = cell.paragraphs[0].add_run(text)
            run.font.size = TABLE_FONT
            run.bold = index == 0
        if index == 0:
            _repeat_as_header(word_row)


def build_docx(elements: list[Element], *, title: str = "Data Processing Agreement") -> bytes:
    """A DOCX of ``elements``: headings in Word's heading styles, each paragraph and cell a single run."""
    document = docx.Document()
    for element in elements:
        if isinstance(element, Table):
            _add_table(document, element)
        elif element.kind == "title":
            document.add_heading(element.text, level=0)
        elif element.kind == "heading":
            document.add_heading(element.text, level=element.level)
        elif element.kind == "bullet":
            document.add_paragraph(element.text, style="List Bullet")
        else:
            document.add_paragraph(element.text)
    _fix_properties(document, title)
    buffer = io.BytesIO()
    document.save(buffer)
    return _normalised_zip(buffer.getvalue())


def _fix_properties(document: docx.document.Document, title: str) -> None:
    properties = document.core_properties
    properties.title = title
    properties.author = ""
    properties.comments = ""
    properties.last_modified_by = ""
    properties.revision = 1
    properties.created = FIXED_TIME.replace(tzinfo=None)
    properties.modified = FIXED_TIME.replace(tzinfo=None)
    # python-docx's stock thumbnail shows a page that is not this document.
    package = document.part.package
    for key, relationship in list(package.rels.items()):
        if relationship.reltype == RELATIONSHIP_TYPE.THUMBNAIL:
            del package.rels[key]


def _normalised_zip(data: bytes) -> bytes:
    """The same package with fixed entry times and attributes (zip entries otherwise carry the build's clock)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.create_system = 3
            entry.external_attr = 0o644 << 16
            target.writestr(entry, source.read(info.filename))
    return out.getvalue()


def build_default_docx() -> bytes:
    """The default DPA template as DOCX bytes, built from ``dpa_templates/default_dpa.txt``."""
    return build_docx(parse(default_text()))
