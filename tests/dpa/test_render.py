"""Rendering DOCX templates: tags split by Word, row loops, literal XML characters, and the child's limits."""

from __future__ import annotations

import io
import zipfile

import docx
import pytest

from portal.dpa.render import RenderError, RenderLimits, docx_text, render_docx, render_docx_async

MiB = 1 << 20
CONTEXT = {"client": {"name": "Acme Logistics SE", "address": "Am Sandtorkai 50\nHamburg"}, "notice_days": 30}


def save(document: docx.document.Document) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def template(*paragraphs: str | list[str]) -> bytes:
    document = docx.Document()
    for paragraph in paragraphs:
        p = document.add_paragraph()
        for i, text in enumerate([paragraph] if isinstance(paragraph, str) else paragraph):
            p.add_run(text).italic = bool(i % 2)
    return save(document)


def test_placeholders_split_across_runs_are_filled_with_the_first_runs_formatting():
    document = docx.Document()
    p = document.add_paragraph()
    p.add_run("Client: {{ cli").bold = True
    p.add_run("ent.na").italic = True
    p.add_run("me }}, notice {{ notice_days }} days")

    rendered = render_docx(save(document), CONTEXT)

    assert docx_text(rendered) == ["Client: Acme Logistics SE, notice 30 days"]
    (run,) = docx.Document(io.BytesIO(rendered)).paragraphs[0].runs
    assert run.bold is True


def test_a_table_row_loop_repeats_once_per_item():
    document = docx.Document()
    table = document.add_table(rows=2, cols=3)
    for cell, text in zip(table.rows[0].cells, ("No.", "Name", "Locations"), strict=True):
        cell.text = text
    for cell, text in zip(table.rows[1].cells, ("{% for sp in subprocessors %}{{ loop.index }}", "{{ sp.name }}",
                                                "{{ sp.locations }}{% endfor %}"), strict=True):
        cell.text = text
    document.add_paragraph("After the table")
    subprocessors = [{"name": f"Vendor {i}", "locations": "Germany (DE)"} for i in range(1, 51)]

    rendered = render_docx(save(document), {"subprocessors": subprocessors})

    rows = docx.Document(io.BytesIO(rendered)).tables[0].rows
    assert len(rows) == 51
    assert [c.text for c in rows[1].cells] == ["1", "Vendor 1", "Germany (DE)"]
    assert [c.text for c in rows[50].cells] == ["50", "Vendor 50", "Germany (DE)"]
    assert docx_text(rendered)[-1] == "After the table"


def test_paragraphs_holding_only_block_tags_repeat_or_hide_the_paragraphs_between():
    data = template("{% for sp in subprocessors %}", "- {{ sp.name }}", "{% endfor %}",
                    "{% if notice_days > 60 %}", "Long notice", "{% else %}", "Short notice", "{% endif %}")

    rendered = render_docx(data, {"subprocessors": [{"name": "A"}, {"name": "B"}], "notice_days": 30})

    assert docx_text(rendered) == ["- A", "- B", "Short notice"]


def test_xml_special_characters_in_values_come_out_literally():
    value = 'Smith & Sons <Ltd> "quoted" \'single\' ]]> &amp;'
    data = template(["{{ client", ".name }}"], "Literal & text < stays")

    rendered = render_docx(data, {"client": {"name": value}})

    assert docx_text(rendered) == [value, "Literal & text < stays"]


def test_line_breaks_in_values_become_line_breaks_in_word():
    rendered = render_docx(template("Address: {{ client.address }}"), CONTEXT)

    assert docx_text(rendered) == ["Address: Am Sandtorkai 50\nHamburg"]
    assert b"<w:br/>" in _document_xml(rendered)


def test_a_missing_value_is_an_error_not_a_blank():
    with pytest.raises(RenderError) as caught:
        render_docx(template("Dear {{ client.name }}"), {"client": {}})
    assert caught.value.reason == "template"
    assert "has no attribute 'name'" in caught.value.message


def test_the_sandbox_refuses_escapes_even_in_a_template_that_skipped_validation():
    with pytest.raises(RenderError) as caught:
        render_docx(template("{{ cycler.__init__.__globals__.os.popen('id').read() }}"), {})
    assert caught.value.reason == "template"
    assert "__init__" in caught.value.message


def test_a_template_that_loops_too_long_is_stopped_by_the_deadline():
    data = template("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")

    with pytest.raises(RenderError) as caught:
        render_docx(data, {}, limits=RenderLimits(seconds=1.5))

    assert caught.value.reason == "timeout"
    assert caught.value.message.startswith("Rendering was stopped after 1.5 seconds")


def test_a_template_that_allocates_hugely_is_stopped_by_the_memory_limit():
    data = template("{{ 'x' * 2000000000 }}")

    with pytest.raises(RenderError) as caught:
        render_docx(data, {}, limits=RenderLimits(memory_bytes=256 * MiB))

    assert caught.value.reason == "memory"
    assert "needs more memory than allowed (256 MiB)" in caught.value.message


async def test_the_async_wrapper_renders_and_keeps_its_limits():
    rendered = await render_docx_async(template("Hello {{ client.name }}"), CONTEXT)
    assert docx_text(rendered) == ["Hello Acme Logistics SE"]

    with pytest.raises(RenderError) as caught:
        await render_docx_async(template("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}"
                                         "{% endfor %}"), {}, limits=RenderLimits(seconds=1))
    assert caught.value.reason == "timeout"


def test_docx_text_reads_paragraphs_and_table_cells_in_order():
    document = docx.Document()
    document.add_paragraph("Before")
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text = "Left"
    table.rows[0].cells[1].text = "Right"
    document.add_paragraph("After\tTabbed")

    assert docx_text(save(document)) == ["Before", "Left", "Right", "After\tTabbed"]


def _document_xml(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.read("word/document.xml")
