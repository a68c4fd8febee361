"""Validation of an uploaded DOCX template, before anything of it is stored.

Checks run cheapest first and nothing is decompressed before the ZIP directory has passed the guard:
1. size (empty, over the limit) and the ZIP signature;
2. the ZIP directory: member count, each member's and the total uncompressed size, compression ratio, absolute or
   ``..`` paths, duplicate names, encryption, symbolic links (a declared size bounds what ``zipfile`` will inflate:
   it stops with a CRC error when a member holds more);
3. the package: every XML part parses without a DOCTYPE; a Word document main part, no macros, no ActiveX, no
   embedded OLE objects, and no external relationship that loads content (hyperlinks are fine);
4. the template: Jinja syntax, the allow-list of constructs, and every placeholder in the caller's catalog.
Every refusal is an ``InvalidInput`` on the ``file`` field whose message names the problem.
"""

from __future__ import annotations

import hashlib
import io
import stat
import zipfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from jinja2 import TemplateSyntaxError
from lxml import etree

from portal.dpa.placeholders import analyse
from portal.dpa.render_worker import template_environment
from portal.dpa.wordml import TEMPLATE_PART, LayoutError, UnsafeXml, parse_xml, template_source
from portal.errors import InvalidInput

MiB = 1 << 20
DOCX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
DOCM_MAIN = "application/vnd.ms-word.document.macroenabled.main+xml"
DOTX_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml"
CT = "{http://schemas.openxmlformats.org/package/2006/content-types}"
RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}Relationship"
# External targets Word follows only when the reader clicks; anything else (attachedTemplate, oleObject, frame,
# subDocument, a linked image...) is fetched when the document opens: a tracking beacon or an NTLM-hash leak.
SAFE_EXTERNAL = frozenset({"hyperlink"})
ACTIVE_RELATIONSHIPS = {"vbaProject": "macros (a VBA project)", "control": "ActiveX controls",
                        "activeXControlBinary": "ActiveX controls", "oleObject": "embedded OLE objects"}
_SHOWN = 5


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 5 * MiB
    max_members: int = 300
    max_member_bytes: int = 20 * MiB
    max_total_bytes: int = 50 * MiB
    max_ratio: int = 100
    ratio_applies_from: int = MiB  # small XML parts legitimately compress more than 100:1


@dataclass(frozen=True)
class ValidatedTemplate:
    data: bytes
    sha256: str
    placeholders: tuple[str, ...]  # sorted


def refuse(message: str) -> InvalidInput:
    return InvalidInput(message, fields={"file": message})


def validate_docx(data: bytes, *, allowed: frozenset[str], limits: UploadLimits = UploadLimits(),
                  loops: Mapping[str, str] | None = None) -> ValidatedTemplate:
    """Accept a DOCX template only if it is a plain Word document whose tags use known placeholders and nothing
    else; ``loops`` (loop variable -> list) fixes which variable each list is repeated with."""
    if not data:
        raise refuse("The file is empty.")
    if len(data) > limits.max_bytes:
        raise refuse(f"The file is {_size(len(data))}; templates may be at most {_size(limits.max_bytes)}.")
    if not data.startswith(b"PK\x03\x04"):
        raise refuse("This is not a Word document: a .docx file is a ZIP package, and this file is not one. "
                     "Save the template in Word as “Word Document (.docx)”.")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            _guard(archive, limits)
            names = set(archive.namelist())
            parts = {name: archive.read(name) for name in names if _is_xml(name)}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError) as exc:
        raise refuse(f"The file is a damaged ZIP package and cannot be read as a Word document ({exc}).") from exc
    trees = _parse_parts(parts)
    _check_package(trees, names)
    return ValidatedTemplate(data, hashlib.sha256(data).hexdigest(), _placeholders(parts, allowed, loops))


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n / 1024:.0f} KiB"


def _is_xml(name: str) -> bool:
    return name.lower().endswith((".xml", ".rels"))


def _guard(archive: zipfile.ZipFile, limits: UploadLimits) -> None:
    """Refuse a hostile archive from its central directory alone, before any member is inflated."""
    infos = archive.infolist()
    if len(infos) > limits.max_members:
        raise refuse(f"The ZIP package holds {len(infos)} files; a Word document has far fewer "
                     f"(at most {limits.max_members} are accepted).")
    duplicates = sorted(name for name, n in Counter(i.filename for i in infos).items() if n > 1)
    if duplicates:
        raise refuse(f"The ZIP package holds the name “{duplicates[0]}” more than once.")
    total = 0
    for info in infos:
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if not name or name.startswith(("/", "\\")) or "\\" in name or ":" in parts[0] or ".." in parts:
            raise refuse(f"The ZIP package holds a file with an unsafe path (“{name[:100]}”).")
        if info.flag_bits & 0x1:
            raise refuse(f"The ZIP package holds an encrypted file (“{name}”); save the document without a password.")
        if stat.S_ISLNK(info.external_attr >> 16):
            raise refuse(f"The ZIP package holds a symbolic link (“{name}”).")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise refuse(f"The ZIP package uses a compression method Word does not write (“{name}”).")
        if info.file_size > limits.max_member_bytes:
            raise refuse(f"“{name}” unpacks to {_size(info.file_size)} (at most {_size(limits.max_member_bytes)} "
                         "per file): this looks like a ZIP bomb.")
        if info.file_size >= limits.ratio_applies_from and info.file_size > limits.max_ratio * info.compress_size:
            raise refuse(f"“{name}” is compressed more than {limits.max_ratio}:1 "
                         f"({_size(info.compress_size)} unpacking to {_size(info.file_size)}): this looks like a "
                         "ZIP bomb.")
        total += info.file_size
    if total > limits.max_total_bytes:
        raise refuse(f"The package unpacks to {_size(total)} in total (at most {_size(limits.max_total_bytes)}): "
                     "this looks like a ZIP bomb.")


def _parse_parts(parts: dict[str, bytes]) -> dict[str, etree._Element]:
    trees = {}
    for name, content in parts.items():
        try:
            trees[name] = parse_xml(content)
        except UnsafeXml as exc:
            what = "declares a DOCTYPE or entities, which Word never writes" if "DOCTYPE" in str(exc) else exc
            raise refuse(f"The part “{name}” {what}; the file is refused.") from exc
    return trees


def _check_package(trees: dict[str, etree._Element], names: set[str]) -> None:
    if "[Content_Types].xml" not in trees or "word/document.xml" not in trees:
        raise refuse("This ZIP package is not a Word document (it has no word/document.xml). "
                     "Save the template in Word as “Word Document (.docx)”.")
    macro_names = sorted(n for n in names if n.lower().rsplit("/", 1)[-1] in ("vbaproject.bin", "vbadata.xml"))
    if macro_names:
        raise refuse(f"The document contains macros ({macro_names[0]}). Save it as “Word Document (.docx)”, "
                     "which drops them.")
    if any("/activex/" in f"/{n.lower()}" for n in names):
        raise refuse("The document contains ActiveX controls; remove them and save it again.")
    types = trees["[Content_Types].xml"]
    declared = [el.get("ContentType", "") for el in types.iter(f"{CT}Default", f"{CT}Override")]
    if any("macroenabled" in t.lower() or "vbaproject" in t.lower() for t in declared):
        raise refuse("The document is macro-enabled (.docm) or contains macros. Save it as “Word Document "
                     "(.docx)”, which drops them.")
    if any("activex" in t.lower() for t in declared):
        raise refuse("The document contains ActiveX controls; remove them and save it again.")
    main = next((el.get("ContentType", "") for el in types.iter(f"{CT}Override")
                 if el.get("PartName", "").lower() == "/word/document.xml"), "")
    if main.lower() == DOTX_MAIN:
        raise refuse("This is a Word template (.dotx); open it and save it as “Word Document (.docx)”.")
    if main.lower() != DOCX_MAIN:
        raise refuse("This is not a Word document: its main part is declared as "
                     f"“{main or 'nothing'}”, not a word-processing document.")
    for name, tree in trees.items():
        if name.endswith(".rels"):
            _check_relationships(name, tree)


def _check_relationships(name: str, tree: etree._Element) -> None:
    for relationship in tree.iter(RELS):
        kind = relationship.get("Type", "").rsplit("/", 1)[-1]
        if kind in ACTIVE_RELATIONSHIPS:
            raise refuse(f"The document contains {ACTIVE_RELATIONSHIPS[kind]}, which can run code when it is "
                         "opened; remove them and save it again.")
        if relationship.get("TargetMode", "").lower() == "external" and kind not in SAFE_EXTERNAL:
            target = relationship.get("Target", "")[:100]
            raise refuse(f"The document loads external content when opened (a “{kind}” link to {target} in "
                         f"{name}); remove it and save it again.")


def _placeholders(parts: dict[str, bytes], allowed: frozenset[str], loops: Mapping[str, str] | None
                  ) -> tuple[str, ...]:
    environment = template_environment()
    names: set[str] = set()
    problems: list[str] = []
    for part in sorted(p for p in parts if TEMPLATE_PART.fullmatch(p)):
        try:
            source = template_source(parse_xml(parts[part]))
            findings = analyse(environment.parse(source), loops)
        except LayoutError as exc:
            raise refuse(str(exc)) from exc
        except TemplateSyntaxError as exc:
            raise refuse(f"The template has a tag Jinja cannot read ({exc.message}). Check that every “{{{{” has "
                         "its “}}”, every “{%” its “%}”, and every {% for %} or {% if %} its {% endfor %} or "
                         "{% endif %}.") from exc
        names |= findings.names
        problems += [p for p in findings.problems if p not in problems]
    if problems:
        raise refuse("The template uses what templates may not: " + _listing(problems) + ". Templates may only "
                     "show fields, and repeat or hide text with {% for %} and {% if %}.")
    unknown = sorted(names - allowed)
    if unknown:
        raise refuse("Unknown placeholders: " + _listing([f"{{{{ {n} }}}}" for n in unknown]) + ". Use the field "
                     "names listed on this page.")
    return tuple(sorted(names))


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else "")
