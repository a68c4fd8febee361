"""The default DPA shipped in dpa_templates/: built from its text into a DOCX, it covers every point of GDPR
Art. 28(3), has annexes I-VI with the sub-processor table as a looped row, uses only catalog placeholders, renders
completely with the demo data, and builds to the same bytes every time."""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from typing import Any

import docx
import jinja2
import pytest
from jinja2.sandbox import SandboxedEnvironment

from portal.dpa import fields
from portal.dpa.default_template import MarkupError, build_default_docx, build_docx, default_text, parse

EXPRESSION = re.compile(r"\{\{(.*?)\}\}|\{%-?\s*(?:if|elif|for)\b(.*?)-?%\}", re.DOTALL)
STRING = re.compile(r"\"[^\"]*\"|'[^']*'")
NAME = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*")
JINJA_WORDS = {"in", "not", "and", "or", "is", "if", "else", "true", "false", "none"}
DASH = "\N{EN DASH}"  # the headings' separator, as in "Clause 1 \N{EN DASH} Purpose and scope"
LOOP_TAG = re.compile(r"^\{% for (\w+) in ([\w.]+) %\}")


@pytest.fixture(scope="module")
def built() -> bytes:
    return build_default_docx()


@pytest.fixture(scope="module")
def document(built: bytes) -> Any:
    return docx.Document(io.BytesIO(built))


@pytest.fixture(scope="module")
def text(document: Any) -> str:
    """Every paragraph and table cell of the DOCX, in document order, one per line."""
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        lines.extend(cell.text for row in table.rows for cell in row.cells)
    return "\n".join(lines)


def flat(text: str) -> str:
    return " ".join(text.split())


# Characteristic wording chosen for each obligation of GDPR Art. 28(3) (requirement 2's tags).
ARTICLE_28_3 = {
    "28.3.a documented instructions, incl. transfers, legal-requirement notice":
        ["processes Customer Personal Data only on documented instructions from the Customer",
         "including with regard to transfers of personal data to a third country",
         "informs the Customer of that legal requirement before processing"],
    "28.3.b confidentiality": ["has committed themselves to confidentiality"],
    "28.3.c Art. 32 security": ["as required by Article 32 of the GDPR", "Annex III"],
    "28.3.d / 28.2 / 28.4 sub-processors":
        ["general written authorisation", "at least {{ notice_days }} days", "may object in the Portal",
         "has not objected by the deadline, the change counts as authorised",
         "in substance, the same data protection obligations", "remains fully responsible to the Customer"],
    "28.3.e data subjects' rights":
        ["request it receives from a data subject", "exercising the data subject's rights under Chapter III"],
    "28.3.f Arts. 32 to 36": ["compliance with Articles 32 to 36 of the GDPR", "data protection impact assessment",
                              "prior to processing"],
    "28.3.g deletion or return": ["at the choice of the Customer, deletes all Customer Personal Data or returns it",
                                  "deletes existing copies, unless Union or Member State law requires storage"],
    "28.3.h information and audits": ["all information necessary to demonstrate compliance",
                                      "allows for and contributes to audits, including inspections"],
    "28.3 final subparagraph": ["immediately informs the Customer if, in its opinion, an instruction infringes"],
}


@pytest.mark.parametrize("obligation", ARTICLE_28_3)
def test_each_article_28_3_obligation_has_its_clause(text, obligation):
    missing = [phrase for phrase in ARTICLE_28_3[obligation] if phrase not in flat(text)]
    assert not missing, f"{obligation}: the default DPA lacks {missing}"


def test_breach_clause_has_the_target_hours_and_the_article_33_3_minimum_content(text):
    body = flat(text)
    for phrase in ("without undue delay after the Processor becomes aware",
                   "within {{ breach_target_hours }} hours of becoming aware",
                   "categories and approximate number of data subjects concerned",
                   "categories and approximate number of personal data records concerned",
                   "name and contact details of the data protection officer or another contact point",
                   "the likely consequences of the breach",
                   "measures taken or proposed to be taken to address the breach",
                   "mitigate its possible adverse effects",
                   "further information is provided in updates without undue further delay"):
        assert phrase in body, phrase


def test_ai_clause_forbids_training_without_a_documented_instruction(text):
    body = flat(text)
    assert f"Clause 10 {DASH} AI data-use commitments (additional clause)" in body
    assert "to train, fine-tune or otherwise improve any machine-learning model" in body
    assert "unless the Customer has given a documented instruction" in body


def test_sections_clauses_and_annexes_i_to_vi_are_headings(document):
    headings = [p.text for p in document.paragraphs if p.style.name.startswith("Heading")]
    for expected in (f"Section I {DASH} General", f"Section II {DASH} Obligations of the Parties",
                     f"Section III {DASH} Final provisions", *(f"Clause {n} {DASH}" for n in range(1, 18)),
                     *(f"7.{n} " for n in range(1, 9)), "9.1 ", "9.2 "):
        assert any(h.startswith(expected) for h in headings), expected
    annexes = [h for h in headings if h.startswith("Annex ")]
    assert [a.split(f" {DASH} ")[0] for a in annexes] == [f"Annex {n}" for n in ("I", "II", "III", "IV", "V", "VI")]
    assert annexes[3] == f"Annex IV {DASH} List of sub-processors"
    assert document.paragraphs[0].style.name == "Title"


def test_annex_iv_is_a_word_table_with_one_looped_row_over_subprocessors(document):
    tables = {table.rows[0].cells[0].text: table for table in document.tables}
    annex_iv = tables["Sub-processor"]
    assert len(annex_iv.rows) == 2
    header, looped = ([cell.text for cell in row.cells] for row in annex_iv.rows)
    assert header[-1] == "Engaged by" and "Transfer mechanism" in header and "Locations" in header
    assert looped[0].startswith("{% for sp in subprocessors %}{{ sp.name }}")
    assert looped[-1] == "{{ sp.engaged_by }}{% endfor %}"
    assert all("{% for" not in cell and "{% endfor" not in cell for cell in looped[1:-1])
    assert annex_iv.rows[0]._tr.trPr.find(
        "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}tblHeader") is not None

    annex_v = tables["Data class"]
    assert annex_v.rows[1].cells[0].text.startswith(
        "{% for commitment in ai_commitments.rows %}")


def test_every_placeholder_is_in_the_catalog(text):
    used: set[str] = set()
    for output, statement in EXPRESSION.findall(text):
        expression = STRING.sub(" ", output or statement)
        used.update(name for name in NAME.findall(expression) if name.lower() not in JINJA_WORDS)
    assert {"client.name", "notice_days", "breach_target_hours", "subprocessors", "sp", "sp.engaged_by",
            "ai_commitments.rows", "subprocessor_authorisation"} <= used
    unknown = sorted(used - fields.allowed_names())
    assert not unknown, f"not in the placeholder catalog: {unknown}"


def test_the_looped_rows_use_the_catalog_loop_variables(document):
    loops = {(loop.variable, loop.iterable) for loop in fields.LOOPS}
    found = {match.groups() for table in document.tables for row in table.rows
             if (match := LOOP_TAG.match(row.cells[0].text))}
    assert found == loops


def render_with_demo(document: Any) -> str:
    """The document's text rendered in a sandbox with the demo context; looped rows repeated per item."""
    environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    context = fields.demo_context()
    out = [environment.from_string(p.text).render(context) for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text for cell in row.cells]
            match = LOOP_TAG.match(cells[0])
            if match is None:
                out.append(" | ".join(cells))
                continue
            variable, items = match.groups()
            cells[0] = cells[0][match.end():]
            cells[-1] = cells[-1].removesuffix("{% endfor %}")
            for item in environment.compile_expression(items)(**context):
                out.append(" | ".join(environment.from_string(c).render({**context, variable: item})
                                      for c in cells))
    return "\n".join(out)


def test_the_demo_context_renders_every_placeholder(document):
    rendered = render_with_demo(document)
    assert "{{" not in rendered and "{%" not in rendered
    demo = fields.demo_context()
    assert "at least 30 days before the change takes effect" in flat(rendered)
    assert "within 24 hours of becoming aware" in flat(rendered)
    for sp in demo["subprocessors"]:
        assert f"{sp['name']} | {sp['legal_entity']}, {sp['address']}" in rendered
    chain = next(sp for sp in demo["subprocessors"] if sp["engaged_by"] != demo["vendor"]["name"])
    engaged = [line for line in rendered.splitlines() if line.endswith(f"| {chain['engaged_by']}")]
    assert len(engaged) == 1 and engaged[0].startswith(chain["name"])


def test_specific_authorisation_renders_its_own_option(document):
    environment = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    (clause,) = [p.text for p in document.paragraphs if "subprocessor_authorisation" in p.text]
    general = environment.from_string(clause).render(fields.demo_context())
    specific = environment.from_string(clause).render({**fields.demo_context(),
                                                        "subprocessor_authorisation": "specific"})
    assert "General written authorisation" in general and "Silence does not count" not in general
    assert "Prior specific authorisation" in specific and "Silence does not count as authorisation" in specific


def test_catalog_names_are_unique_and_the_demo_context_has_each_of_them():
    names = [f.name for f in fields.FIELDS]
    assert len(names) == len(set(names))
    demo = fields.demo_context()
    rows = {"sp": demo["subprocessors"][0], "commitment": demo["ai_commitments"]["rows"][0]}
    for field in fields.FIELDS:
        head, *rest = field.name.split(".")
        value: Any = rows.get(head, demo.get(head))
        for part in rest:
            value = value[part]
        assert value == field.example, field.name
        assert field.description and field.group
    assert fields.demo_context() is not fields.demo_context()


def test_build_is_deterministic(built):
    again = build_default_docx()
    assert hashlib.sha256(again).hexdigest() == hashlib.sha256(built).hexdigest()
    with zipfile.ZipFile(io.BytesIO(built)) as package:
        assert {info.date_time for info in package.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_package_has_no_macros_and_no_stock_thumbnail(built):
    with zipfile.ZipFile(io.BytesIO(built)) as package:
        names = package.namelist()
        content_types = package.read("[Content_Types].xml").decode()
    assert not [n for n in names if "vba" in n.lower() or n.lower().endswith((".bin", ".bas"))]
    assert "macroEnabled" not in content_types and "vbaProject" not in content_types
    assert "word/document.xml" in names
    assert "docProps/thumbnail.jpeg" not in names


def test_the_text_source_is_in_the_repository_and_notes_stay_out_of_the_document(text):
    source = default_text()
    assert "%% " in source
    assert "%%" not in text
    assert "Markup" not in text


@pytest.mark.parametrize(("markup", "message"), [
    ("{% for sp in subprocessors %}\n", "belongs inside a table"),
    ("| a | b |\n{% for sp in subprocessors %}\n| {{ sp.name }} | x |\n", "ends inside a loop"),
    ("| a | b |\n| x |\n", "1 cells where the header has 2"),
    ("| a | b |\n{% for sp in subprocessors %}\n| x | y |\n| z | w |\n{% endfor %}\n", "exactly one row"),
    ("| a |\n{% endfor %}\n", "must follow exactly one looped row"),
])
def test_malformed_markup_is_refused_with_the_line(markup, message):
    with pytest.raises(MarkupError, match=message):
        parse(markup)


def test_markup_elements_become_their_word_counterparts():
    built = build_docx(parse("= T\n\n# H1\n## H2\n\nOne\ntwo.\n\n- item\n  continued\n- next\nAfter.\n"))
    document = docx.Document(io.BytesIO(built))
    assert [(p.style.name, p.text) for p in document.paragraphs] == [
        ("Title", "T"), ("Heading 1", "H1"), ("Heading 2", "H2"), ("Normal", "One two."),
        ("List Bullet", "item continued"), ("List Bullet", "next"), ("Normal", "After.")]
    assert all(len(p.runs) == 1 for p in document.paragraphs)
