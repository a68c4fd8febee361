"""DPA rendering benchmark: the default DPA with a 50-row Annex IV, against plain string substitution.

Renders the default template (``portal.dpa.default_template.build_default_docx``) with the demo data
(``portal.dpa.fields.demo_context``), its ``subprocessors`` list extended to ``--rows`` rows, and measures in the same
run, on the same machine, interleaved so that a busy moment hits every method alike, the median wall-clock time per
document over ``--runs`` runs after ``--warmup`` warm-up runs of each:

1. the baseline (the lower bound): ``word/document.xml`` taken as text, each ``{{ name }}`` replaced by its
   XML-escaped value, each looped ``<w:tr>`` repeated per item with its fields substituted, the two inline
   ``{% if %}`` blocks resolved by choosing a branch, and a new zip written with the other parts copied;
2. the portal: ``portal.dpa.render.render_docx_async``, exactly as the portal's pages call it: a persistent render
   worker (``portal.dpa.render_pool``) started once with the empty environment and memory limit, a per-render
   deadline and CPU limit, compiled templates kept per template SHA-256, awaited from an event loop;
3. the one-shot child: ``render_docx(..., fresh=True)``, one child process per render (what uploads under
   validation use);
4. the same rendering core in this process: ``portal.dpa.render_worker.render_in_process``, without a cache, to show
   how much of (3) is the child process;
5. that core with its compiled-template cache (``CompiledTemplates``): what the worker of (2) runs, without the
   process boundary.

Before timing, every output is checked: it opens with python-docx, its Annex IV table has one row per sub-processor
with their names in order, an escaped value (``&``, ``<``) reads back literally, and the baseline's paragraphs are
exactly the portal's, so the lower bound produces the same document. It then prints the medians, the ratios to the
baseline (target for (2): at most 5) and where the time of (3) goes.

    python bench/dpa_render.py [--rows 50] [--runs 30] [--warmup 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import html
import io
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ESCAPE_PROBE = "Müller & Söhne <Data> GmbH"  # must come out literally, not as markup


# ---------------------------------------------------------------- data (not measured)

def bench_context(rows: int) -> dict[str, Any]:
    """The demo context with ``rows`` sub-processors: the demo rows repeated, each name numbered so every row
    differs, one of them carrying characters XML must escape."""
    from portal.dpa.fields import demo_context

    context = demo_context()
    demo = context["subprocessors"]
    extended = []
    for n in range(rows):
        row = dict(demo[n % len(demo)])
        row["name"] = f"{row['name']} ({n + 1:02d})"
        extended.append(row)
    extended[rows // 2]["name"] = ESCAPE_PROBE
    context["subprocessors"] = extended
    return context


# ---------------------------------------------------------------- 1. the baseline: strings in, zip out

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
_INLINE_IF = re.compile(r"\{%\s*if\s+(.+?)\s*%\}(.*?)(?:\{%\s*else\s*%\}(.*?))?\{%\s*endif\s*%\}", re.DOTALL)
_ROW_LOOP = re.compile(r"\{%\s*for\s+(\w+)\s+in\s+([\w.]+)\s*%\}(.*?)\{%\s*endfor\s*%\}", re.DOTALL)
_EQUALS = re.compile(r'([\w.]+)\s*==\s*"([^"]*)"')


def _lookup(context: Mapping[str, Any], dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        value = value[part]
    return value


def _escaped(context: Mapping[str, Any], dotted: str) -> str:
    return html.escape(str(_lookup(context, dotted)), quote=False)


def _condition(context: Mapping[str, Any], test: str) -> bool:
    """The two forms the default template uses: ``name == "literal"`` and ``name``."""
    if match := _EQUALS.fullmatch(test):
        return str(_lookup(context, match.group(1))) == match.group(2)
    return bool(_lookup(context, test))


def _substitute(xml: str, context: Mapping[str, Any]) -> str:
    xml = _INLINE_IF.sub(lambda m: m.group(2) if _condition(context, m.group(1)) else (m.group(3) or ""), xml)
    return _PLACEHOLDER.sub(lambda m: _escaped(context, m.group(1)), xml)


def _expand_rows(xml: str, context: Mapping[str, Any]) -> str:
    """Each ``<w:tr>`` holding ``{% for v in list %}`` … ``{% endfor %}``: the row without the tags, once per item."""
    while match := _ROW_LOOP.search(xml):
        start = xml.rfind("<w:tr>", 0, match.start())
        end = xml.index("</w:tr>", match.end()) + len("</w:tr>")
        variable, items = match.group(1), match.group(2)
        row = xml[start:match.start()] + match.group(3) + xml[match.end():end]
        copies = "".join(_substitute(row, {**context, variable: item}) for item in _lookup(context, items))
        xml = xml[:start] + copies + xml[end:]
    return xml


def render_baseline(template: bytes, context: Mapping[str, Any]) -> bytes:
    """The same document by plain string work on ``word/document.xml`` and re-zipping: the lower bound."""
    output = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(template)) as source, zipfile.ZipFile(output, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if info.filename == "word/document.xml":
                content = _substitute(_expand_rows(content.decode(), context), context).encode()
            target.writestr(info, content, compress_type=info.compress_type)
    return output.getvalue()


# ---------------------------------------------------------------- checks (not measured)

def check(name: str, document: bytes, context: Mapping[str, Any]) -> None:
    """The output opens with python-docx, Annex IV holds one row per sub-processor in order, escaping held."""
    import docx

    opened = docx.Document(io.BytesIO(document))
    names = [row["name"] for row in context["subprocessors"]]
    annex = [table for table in opened.tables if table.rows[0].cells[0].text == "Sub-processor"]
    if len(annex) != 1:
        raise SystemExit(f"{name}: expected one Annex IV table, found {len(annex)}")
    found = [row.cells[0].text for row in annex[0].rows[1:]]
    if found != names:
        raise SystemExit(f"{name}: Annex IV rows {found[:3]}… are not the {len(names)} sub-processors")
    text = "\n".join(p.text for p in opened.paragraphs)
    if "{{" in text or "{%" in text:
        raise SystemExit(f"{name}: template tags are left in the document")


# ---------------------------------------------------------------- timing

def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def cpu_seconds(*pids: int) -> float:
    """CPU time of this process, its reaped children and the live children ``pids`` (user + system)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # retired and reaped since: its time is in RUSAGE_CHILDREN now
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def interleaved(methods: Mapping[str, Callable[[], object]], runs: int, warmup: int,
                live: Callable[[], list[int]]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each method ``warmup`` times, then ``runs`` rounds of one call of each, so machine noise hits all alike.
    Wall-clock and CPU seconds per call (CPU counts the children, ``live()`` being those not yet reaped)."""
    for method in methods.values():
        for _ in range(warmup):
            method()
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(runs):
        for name, method in methods.items():
            pids = live()
            cpu_before = cpu_seconds(*pids)
            started = time.perf_counter()
            method()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(cpu_seconds(*sorted(set(pids) | set(live()))) - cpu_before)
    return wall, cpu


def core_breakdown(template: bytes, context: Mapping[str, Any], runs: int) -> dict[str, float]:
    """Median ms of each step ``render_in_process`` takes, measured one by one on the same input."""
    from portal.dpa import wordml
    from portal.dpa.render_worker import template_environment

    def timed(step: Callable[[], object]) -> float:
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            step()
            samples.append(time.perf_counter() - started)
        return median_ms(samples)

    def unzip() -> list[tuple[zipfile.ZipInfo, bytes]]:
        with zipfile.ZipFile(io.BytesIO(template)) as source:
            return [(info, source.read(info)) for info in source.infolist()]

    parts = unzip()
    document = dict((info.filename, data) for info, data in parts)["word/document.xml"]
    source = wordml.template_source(wordml.parse_xml(document))
    compiled = template_environment().from_string(source)
    rendered = compiled.render(context)

    def finish() -> bytes:
        root = wordml.parse_xml(rendered.encode())
        wordml.restore_breaks(root)
        return wordml.serialize(root)

    def rezip() -> bytes:
        output = io.BytesIO()
        with zipfile.ZipFile(output, "w") as target:
            for info, data in parts:
                target.writestr(info, data, compress_type=info.compress_type)
        return output.getvalue()

    return {
        "read the zip (all parts)": timed(unzip),
        "parse document.xml (lxml, safe parser)": timed(lambda: wordml.parse_xml(document)),
        "parse + join runs + Jinja source (template_source)": timed(
            lambda: wordml.template_source(wordml.parse_xml(document))),
        "compile the Jinja source (cache_size=0: every render)": timed(
            lambda: template_environment().from_string(source)),
        "render the compiled template (sandbox, autoescape)": timed(lambda: compiled.render(context)),
        "re-parse output + restore_breaks + serialize": timed(finish),
        "write the zip (deflate every part)": timed(rezip),
        "baseline: string work on document.xml only": timed(
            lambda: _substitute(_expand_rows(document.decode(), context), context)),
    }


def process_costs(runs: int) -> dict[str, float]:
    """The fixed cost of a child per render: a bare interpreter, and the portal's worker on a one-part package."""
    from portal.dpa.render import render_docx
    from portal.dpa.render_pool import SOURCE_ROOT, child_environment

    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    tiny = empty.getvalue()

    def bare() -> None:
        subprocess.run([sys.executable, "-c", "pass"], env=child_environment(), cwd=SOURCE_ROOT, check=True)

    samples_bare, samples_worker = [], []
    for _ in range(runs):
        started = time.perf_counter()
        bare()
        samples_bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        render_docx(tiny, {}, fresh=True)
        samples_worker.append(time.perf_counter() - started)
    return {"bare interpreter start (python -c pass)": median_ms(samples_bare),
            "render_docx(fresh=True) of a one-part package (start + imports + limits + pipes)":
                median_ms(samples_worker)}


# ---------------------------------------------------------------- main

def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}{load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50, help="sub-processors in Annex IV")
    parser.add_argument("--runs", type=int, default=30, help="timed runs of each method")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs of each method first")
    args = parser.parse_args()

    from portal.dpa.default_template import build_default_docx
    from portal.dpa.render import (
        close_render_workers,
        docx_text,
        render_docx,
        render_docx_async,
        render_in_process,
        render_worker_pids,
    )
    from portal.dpa.render_worker import CompiledTemplates

    print(f"machine: {machine()}", flush=True)
    template = build_default_docx()
    context = bench_context(args.rows)
    cache = CompiledTemplates()
    loop = asyncio.new_event_loop()
    portal_name = "portal render_docx_async (persistent worker)"
    try:
        methods: dict[str, Callable[[], bytes]] = {
            "baseline (string substitution + re-zip)": lambda: render_baseline(template, context),
            portal_name: lambda: loop.run_until_complete(render_docx_async(template, context)),
            "render_docx(fresh=True) (child per render)": lambda: render_docx(template, context, fresh=True),
            "render_in_process (core, no child, no cache)": lambda: render_in_process(template, context),
            "render_in_process (core, compiled cache)": lambda: render_in_process(template, context, cache=cache),
        }
        outputs = {name: method() for name, method in methods.items()}
        for name, document in outputs.items():
            check(name, document, context)
        portal_text = docx_text(outputs[portal_name])
        for name, document in outputs.items():
            if docx_text(document) != portal_text:
                raise SystemExit(f"{name}: its text differs from the portal's render")
        sizes = ", ".join(f"{len(document) / 1024:.0f} KiB" for document in outputs.values())
        print(f"template {len(template) / 1024:.0f} KiB; {args.rows} sub-processors; outputs {sizes}; all open with "
              f"python-docx, hold the {args.rows} rows and the same text", flush=True)
        print(f"{args.runs} interleaved runs of each after {args.warmup} warm-up runs:", flush=True)
        samples, cpu = interleaved(methods, args.runs, args.warmup, render_worker_pids)
    finally:
        close_render_workers()
        loop.close()

    base = median_ms(samples["baseline (string substitution + re-zip)"])
    base_cpu = statistics.median(cpu["baseline (string substitution + re-zip)"])
    for name, values in samples.items():
        ms = median_ms(values)
        print(f"  {name:46} median {ms:7.2f} ms  (min {min(values) * 1000:6.2f}, max {max(values) * 1000:7.2f})  "
              f"ratio {ms / base:5.2f}  |  CPU {statistics.median(cpu[name]) * 1000:6.1f} ms, ratio "
              f"{statistics.median(cpu[name]) / base_cpu:5.2f}")
    portal = median_ms(samples[portal_name])
    verdict = "met" if portal / base <= 5 else "NOT met"
    print(f"ratio portal render_docx_async (persistent worker) / baseline: {portal / base:.2f} "
          f"(target at most 5: {verdict})")
    fresh = median_ms(samples["render_docx(fresh=True) (child per render)"])
    print(f"ratio render_docx(fresh=True) / baseline: {fresh / base:.2f}")

    print("where the time of a fresh render goes (medians, each step measured alone):", flush=True)
    for step, ms in {**core_breakdown(template, context, args.runs), **process_costs(max(10, args.runs // 3))}.items():
        print(f"  {step:78} {ms:7.2f} ms")


if __name__ == "__main__":
    main()
