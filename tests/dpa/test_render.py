"""Rendering DOCX templates: tags split by Word, row loops, literal XML characters, the child's limits, and the
persistent workers (reused, replaced after a failure, sandboxed environment, compiled templates kept apart)."""

from __future__ import annotations

import asyncio
import io
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

import docx
import pytest

from portal.dpa.render import (
    RenderError,
    RenderLimits,
    close_render_workers,
    docx_text,
    render_docx,
    render_docx_async,
    render_worker_pids,
)
from portal.dpa.render_pool import RenderPool, child_environment
from portal.dpa.render_worker import CompiledTemplates, render_in_process

MiB = 1 << 20
CONTEXT = {"client": {"name": "Acme Logistics SE", "address": "Am Sandtorkai 50\nHamburg"}, "notice_days": 30}
LOOPS = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
BOMB = "{{ 'x' * 2000000000 }}"


@pytest.fixture(autouse=True)
def no_workers_left() -> Iterator[None]:
    """Each test starts and ends without render workers, so pids compare within one test only."""
    close_render_workers()
    yield
    close_render_workers()


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


@pytest.mark.parametrize("fresh", [False, True], ids=["worker", "fresh"])
def test_a_template_that_loops_too_long_is_stopped_by_the_deadline(fresh):
    with pytest.raises(RenderError) as caught:
        render_docx(template(LOOPS), {}, limits=RenderLimits(seconds=1.5), fresh=fresh)

    assert caught.value.reason == "timeout"
    assert caught.value.message.startswith("Rendering was stopped after 1.5 seconds")


@pytest.mark.parametrize("fresh", [False, True], ids=["worker", "fresh"])
def test_a_template_that_allocates_hugely_is_stopped_by_the_memory_limit(fresh):
    with pytest.raises(RenderError) as caught:
        render_docx(template(BOMB), {}, limits=RenderLimits(memory_bytes=256 * MiB), fresh=fresh)

    assert caught.value.reason == "memory"
    assert "needs more memory than allowed (256 MiB)" in caught.value.message


@pytest.mark.parametrize("fresh", [False, True], ids=["worker", "fresh"])
async def test_the_async_wrapper_renders_and_keeps_its_limits(fresh):
    rendered = await render_docx_async(template("Hello {{ client.name }}"), CONTEXT, fresh=fresh)
    assert docx_text(rendered) == ["Hello Acme Logistics SE"]

    with pytest.raises(RenderError) as caught:
        await render_docx_async(template(LOOPS), {}, limits=RenderLimits(seconds=1), fresh=fresh)
    assert caught.value.reason == "timeout"


async def test_a_fresh_render_leaves_no_worker_behind():
    await render_docx_async(template("Hello {{ client.name }}"), CONTEXT, fresh=True)

    assert render_worker_pids() == []


async def test_a_worker_is_reused_between_renders_and_keeps_no_data_of_the_previous_one():
    data = template("Hello {{ client.name }}")

    first = await render_docx_async(data, CONTEXT)
    (pid,) = render_worker_pids()
    second = await render_docx_async(data, {"client": {"name": "Nordwind Freight AB"}})

    assert render_worker_pids() == [pid]
    assert docx_text(first) == ["Hello Acme Logistics SE"]
    assert docx_text(second) == ["Hello Nordwind Freight AB"]


@pytest.mark.parametrize(("body", "limits", "reason"), [
    (LOOPS, RenderLimits(seconds=1.5), "timeout"),
    (BOMB, RenderLimits(memory_bytes=256 * MiB), "memory"),
    ("Dear {{ client.name }}", RenderLimits(), "template"),
    ("{{ cycler.__init__.__globals__ }}", RenderLimits(), "template"),
], ids=["deadline", "memory", "missing-value", "sandbox"])
async def test_a_worker_that_fails_is_replaced_and_the_next_render_works(body, limits, reason):
    await render_docx_async(template("Warm up"), {}, limits=limits)
    (before,) = render_worker_pids()

    with pytest.raises(RenderError) as caught:
        await render_docx_async(template(body), {"client": {}}, limits=limits)
    assert caught.value.reason == reason
    assert render_worker_pids() == []
    with pytest.raises(ProcessLookupError):
        os.kill(before, 0)  # killed and reaped, not left running

    rendered = await render_docx_async(template("Hello {{ client.name }}"), CONTEXT, limits=limits)
    assert docx_text(rendered) == ["Hello Acme Logistics SE"]
    (after,) = render_worker_pids()
    assert after != before


async def test_concurrent_renders_each_get_their_own_content():
    data = template("Client {{ client.name }}", "Notice {{ notice_days }} days")
    contexts = [{"client": {"name": f"Client {n}"}, "notice_days": n} for n in range(1, 6)]

    rendered = await asyncio.gather(*(render_docx_async(data, context) for context in contexts))

    assert [docx_text(document) for document in rendered] == [
        [f"Client Client {n}", f"Notice {n} days"] for n in range(1, 6)]


async def test_a_cancelled_render_kills_its_worker_and_the_next_one_works():
    task = asyncio.create_task(render_docx_async(template(LOOPS), {}, limits=RenderLimits(seconds=30)))
    for _ in range(200):  # until the pool has started the worker for it (polling: it runs in another thread)
        if render_worker_pids():
            break
        await asyncio.sleep(0.05)
    (pid,) = render_worker_pids()

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    rendered = await render_docx_async(template("Hello {{ client.name }}"), CONTEXT)
    assert docx_text(rendered) == ["Hello Acme Logistics SE"]
    assert pid not in render_worker_pids()


def test_a_worker_is_replaced_after_its_share_of_renders():
    pool = RenderPool(size=1, renders_per_worker=2)
    data = template("Hello {{ client.name }}")
    try:
        pool.render(data, CONTEXT, RenderLimits())
        (first,) = pool.pids()
        pool.render(data, CONTEXT, RenderLimits())
        assert pool.pids() == []  # retired after its second render

        pool.render(data, CONTEXT, RenderLimits())
        assert pool.pids() not in ([], [first])
    finally:
        pool.close()


def test_a_template_sees_nothing_another_template_set_up_in_the_same_worker():
    render_docx(template("{% set secret = client.name %}{{ secret }}"), CONTEXT)
    (pid,) = render_worker_pids()

    with pytest.raises(RenderError) as caught:
        render_docx(template("Leaked: {{ secret }}{{ client.name }}"), {})

    assert "'secret' is undefined" in caught.value.message
    assert pid not in render_worker_pids()


def test_compiled_templates_are_kept_per_template_bytes_least_recently_used_first_out():
    cache = CompiledTemplates(capacity=2)
    a, b, c = (template(f"{name} {{{{ client.name }}}}") for name in "ABC")

    assert docx_text(render_in_process(a, CONTEXT, cache=cache)) == ["A Acme Logistics SE"]
    render_in_process(b, CONTEXT, cache=cache)
    render_in_process(a, CONTEXT, cache=cache)  # a is now the most recently used
    render_in_process(c, CONTEXT, cache=cache)

    assert (a in cache, b in cache, c in cache) == (True, False, True)
    assert cache.of(a) is cache.of(bytes(a))
    assert cache.of(a).environment is not cache.of(c).environment
    assert docx_text(render_in_process(a, {"client": {"name": "Other"}}, cache=cache)) == ["A Other"]


def test_workers_start_with_an_empty_environment(monkeypatch):
    monkeypatch.setenv("PORTAL_SECRET_KEY", "must-not-reach-the-renderer")
    monkeypatch.setenv("PORTAL_DATABASE_URL", "postgresql://user:password@db/portal")

    assert not any(name.startswith("PORTAL_") for name in child_environment())
    render_docx(template("Hello"), {})
    (pid,) = render_worker_pids()
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = sorted(entry.split(b"=", 1)[0].decode() for entry in environ if entry)

    assert names == sorted(child_environment())
    assert b"must-not-reach" not in b"".join(environ)


def test_closing_the_workers_kills_them_and_the_next_render_starts_one():
    render_docx(template("Hello"), {})
    (pid,) = render_worker_pids()

    close_render_workers()

    assert render_worker_pids() == []
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert docx_text(render_docx(template("Again"), {})) == ["Again"]


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
