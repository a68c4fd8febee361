"""WordprocessingML as the template engine sees it: safe parsing, paragraph text, and the Jinja source of a part.

Invariants:
- XML from an upload is parsed only by ``parse_xml``: no DTD, no entities, no network, no huge trees; a document
  that declares a DOCTYPE is refused rather than parsed around;
- Word splits text into runs at every formatting or spell-check boundary, so a paragraph holding template tags is
  joined into its first text run (keeping that run's formatting) before anything reads its tags;
- upload validation and rendering read the same Jinja source (``template_source``), so what was checked is exactly
  what runs;
- a paragraph that holds only ``{% for %}``/``{% if %}``-style tags is structure: it disappears and repeats or hides
  the paragraphs between; a table row whose first cell starts with ``{% for %}`` and whose last cell ends with
  ``{% endfor %}`` repeats once per item; every other tag stays inside its paragraph.
"""

from __future__ import annotations

import html
import re

from lxml import etree

W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
W_P, W_R, W_T, W_TAB, W_BR, W_CR = (f"{{{W}}}{tag}" for tag in ("p", "r", "t", "tab", "br", "cr"))
W_TR, W_TC, W_RPR, W_TYPE = f"{{{W}}}tr", f"{{{W}}}tc", f"{{{W}}}rPr", f"{{{W}}}type"
XML_SPACE = "{http://www.w3.org/XML/1998/namespace}space"

# The parts whose text is a template: the body, headers and footers, footnotes and endnotes.
TEMPLATE_PART = re.compile(r"word/(document|header\d*|footer\d*|footnotes|endnotes)\.xml")

_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_PARSER_OPTIONS = {"resolve_entities": False, "no_network": True, "load_dtd": False, "dtd_validation": False,
                   "huge_tree": False}
_JINJA = ("{{", "{%", "{#")
_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_STATEMENT = r"\{%-?\s*(?:for|endfor|if|elif|else|endif)\b(?:(?!%\}).)*%\}"
_BLOCK_ONLY = re.compile(rf"\s*({_STATEMENT})\s*", re.DOTALL)
_ROW_FOR = re.compile(r"\s*(\{%-?\s*for\b(?:(?!%\}).)*%\})", re.DOTALL)
_ROW_ENDFOR = re.compile(r"(\{%-?\s*endfor\s*-?%\})\s*$")
_KEYWORD = re.compile(r"\{%-?\s*(for|endfor|if|elif|else|endif)\b")
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'


class UnsafeXml(ValueError):
    """An XML part declares a DOCTYPE or entities, or is not well-formed."""


class LayoutError(ValueError):
    """Template tags are placed where the document structure cannot follow them."""


def parse_xml(data: bytes) -> etree._Element:
    """Parse one package part; DOCTYPE and ENTITY declarations (XXE, billion laughs) are refused, not expanded."""
    if _DECLARATION.search(data[:1_000_000]) or _DECLARATION.search(data.replace(b"\x00", b"")[:1_000_000]):
        raise UnsafeXml("declares a DOCTYPE or ENTITY")
    try:
        tree = etree.fromstring(data, etree.XMLParser(**_PARSER_OPTIONS))
    except etree.XMLSyntaxError as exc:
        raise UnsafeXml(f"is not well-formed XML ({exc.msg})") from exc
    if tree.getroottree().docinfo.doctype:  # any encoding the byte scan could miss
        raise UnsafeXml("declares a DOCTYPE or ENTITY")
    return tree


def serialize(root: etree._Element) -> bytes:
    body: bytes = etree.tostring(root, encoding="UTF-8")
    return XML_DECLARATION + body


def _text_nodes(paragraph: etree._Element) -> list[etree._Element]:
    """The text-bearing run children of this paragraph, leaving out paragraphs nested in it (text boxes)."""
    found: list[etree._Element] = []
    for child in paragraph:
        if child.tag == W_P:
            continue
        if child.tag == W_R:
            found.extend(node for node in child if _is_text(node))
        elif isinstance(child.tag, str):
            found.extend(_text_nodes(child))
    return found


def _is_text(node: etree._Element) -> bool:
    if node.tag in (W_T, W_TAB, W_CR):
        return True
    return node.tag == W_BR and node.get(W_TYPE) in (None, "textWrapping")


def _node_text(node: etree._Element) -> str:
    if node.tag == W_T:
        return node.text or ""
    return "\t" if node.tag == W_TAB else "\n"


def paragraph_text(paragraph: etree._Element) -> str:
    """What the reader sees in the paragraph: its runs joined, tabs as ``\\t`` and line breaks as ``\\n``."""
    return "".join(_node_text(node) for node in _text_nodes(paragraph))


def document_paragraphs(root: etree._Element) -> list[str]:
    """Every paragraph's text in document order, table cells and text boxes included."""
    return [paragraph_text(p) for p in root.iter(W_P)]


def _join_runs(paragraph: etree._Element) -> etree._Element | None:
    """Move a tagged paragraph's text into its first text run; return that run's ``w:t`` (None: no tags)."""
    nodes = _text_nodes(paragraph)
    text = "".join(_node_text(node) for node in nodes)
    if not any(mark in text for mark in _JINJA):
        return None
    first = next(node for node in nodes if node.tag == W_T)
    first.text = text
    first.set(XML_SPACE, "preserve")
    for node in nodes:
        if node is first:
            continue
        run = node.getparent()
        assert run is not None
        run.remove(node)
        if all(child.tag == W_RPR for child in run):
            parent = run.getparent()
            assert parent is not None
            parent.remove(run)
    return first


def _replace_with_source(element: etree._Element, source: str) -> None:
    """Put raw template source where ``element`` was (as text between its neighbours)."""
    parent = element.getparent()
    assert parent is not None
    chunk = source + (element.tail or "")
    previous = element.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + chunk
    else:
        parent.text = (parent.text or "") + chunk
    parent.remove(element)


def _wrap_with_source(element: etree._Element, before: str, after: str) -> None:
    parent = element.getparent()
    assert parent is not None
    previous = element.getprevious()
    if previous is not None:
        previous.tail = (previous.tail or "") + before
    else:
        parent.text = (parent.text or "") + before
    element.tail = after + (element.tail or "")


def _row_loop(row: etree._Element, joined: dict[etree._Element, etree._Element]) -> tuple[str, str] | None:
    cells = row.findall(W_TC)
    if not cells:
        return None
    firsts = [t for p in cells[0].iter(W_P) if (t := joined.get(p)) is not None]
    lasts = [t for p in cells[-1].iter(W_P) if (t := joined.get(p)) is not None]
    if not firsts or not lasts:
        return None
    opening = _ROW_FOR.match(firsts[0].text or "")
    closing = _ROW_ENDFOR.search(lasts[-1].text or "")
    if not opening or not closing or (firsts[0] is lasts[-1] and closing.start() < opening.end()):
        return None
    lasts[-1].text = (lasts[-1].text or "")[:closing.start()]
    firsts[0].text = (firsts[0].text or "")[opening.end():]
    return opening.group(1), closing.group(1)


def _check_balanced(text: str) -> None:
    depth = 0
    for keyword in _KEYWORD.findall(text):
        depth += {"for": 1, "if": 1, "endfor": -1, "endif": -1}.get(keyword, 0)
        if depth < 0 or (keyword in ("elif", "else") and depth == 0):
            break
    else:
        if depth == 0:
            return
    raise LayoutError(
        f"The paragraph “{text.strip()[:120]}” opens or closes a {{% for %}} or {{% if %}} block that continues "
        "outside it. Keep a block inside one paragraph, put each of its tags on a paragraph of its own, or (for a "
        "table) start the row's first cell with {% for … %} and end its last cell with {% endfor %}.")


def template_source(root: etree._Element) -> str:
    """The Jinja source of one part; ``root`` is rearranged in the process (pass a freshly parsed tree)."""
    joined = {p: t for p in list(root.iter(W_P)) if (t := _join_runs(p)) is not None}
    for row in list(root.iter(W_TR)):
        if (tags := _row_loop(row, joined)) is not None:
            _wrap_with_source(row, *tags)
    for paragraph, text_node in joined.items():
        block = _BLOCK_ONLY.fullmatch(text_node.text or "")
        if block:
            _replace_with_source(paragraph, block.group(1))
        else:
            _check_balanced(text_node.text or "")
    xml = etree.tostring(root, encoding="unicode")
    # Serialising escaped the tags' own characters (`a &gt; b`); the template engine must read them as written.
    return _TAG.sub(lambda match: html.unescape(match.group(0)), xml)


def restore_breaks(root: etree._Element) -> None:
    """Turn tabs and line breaks inside rendered text (joined runs, multi-line values) back into Word's elements."""
    for text_node in list(root.iter(W_T)):
        text = text_node.text or ""
        if "\t" not in text and "\n" not in text:
            continue
        run = text_node.getparent()
        assert run is not None
        position = run.index(text_node)
        run.remove(text_node)
        for piece in reversed(re.split(r"(\t|\n)", text)):
            if piece == "\t":
                element = etree.Element(W_TAB)
            elif piece == "\n":
                element = etree.Element(W_BR)
            elif piece:
                element = etree.Element(W_T)
                element.text = piece
                element.set(XML_SPACE, "preserve")
            else:
                continue
            run.insert(position, element)
