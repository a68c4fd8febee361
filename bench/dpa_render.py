"""DPA rendering benchmark: the default DPA with a 50-row Annex IV, against plain string substitution.

Renders the default template (``portal.dpa.default_template.build_default_docx``) with the demo data
(``portal.dpa.fields.demo_context``), its ``subprocessors`` list extended to ``--rows`` rows, and measures in the same
run, on the same machine, interleaved so that a busy moment hits every method alike, the median wall-clock time per
document over ``--runs`` runs after ``--warmup`` warm-up runs of each:

1. the baseline (the lower bound): ``word/document.xml`` taken as text, each ``{{ name }}`` replaced by its
   XML-escaped value, each looped ``<w:tr>`` repeated per item with its fields substituted, the two inline
   ``{% if %}`` blocks resolved by choosing a branch, and a new zip written with the other parts copied;
2. the portal: ``portal.dpa.render.render_docx``, exactly as the portal runs it (one child process per render, with
   its memory and CPU limits and its deadline);
3. the same rendering core in this process: ``portal.dpa.render_worker.render_in_process``, the function the child
   calls, to show how much of (2) is the child process;
4. a persistent worker (a sketch, not portal code): one child started with the same environment and memory limit,
   kept across renders, answering each request with the child's own ``answer()``;
5. the core of (3) with each template's compiled Jinja template kept between renders (a sketch, in this process):
   what such a worker could add by caching per template version.

Before timing, every output is checked: it opens with python-docx, its Annex IV table has one row per sub-processor
with their names in order, an escaped value (``&``, ``<``) reads back literally, and the baseline's paragraphs are
exactly the portal's, so the lower bound produces the same document. It then prints the medians, the ratios to the
baseline (target for (2): at most 5) and where the time of (2) goes.

    python bench/dpa_render.py [--rows 50] [--runs 30] [--warmup 3]
"""

from __future__ import annotations

import argparse
import contextlib
import html
import io
import os
import pickle
import platform
import re
import resource
import statistics
import struct
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


# ---------------------------------------------------------------- 4. a persistent worker (sketch)

# The child: the portal's own render_worker (limits first, then the same answer()), but a loop over length-prefixed
# requests instead of one request per process.
_PERSISTENT_CHILD = """
import resource, struct, sys
from portal.dpa import render_worker
memory = int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
read, write = sys.stdin.buffer.read, sys.stdout.buffer
while header := read(4):
    payload = read(struct.unpack(">I", header)[0])
    answer = render_worker.answer(payload)
    write.write(struct.pack(">I", len(answer)) + answer)
    write.flush()
"""


class PersistentWorker:
    """One child kept across renders. A real one would also enforce a per-render deadline (kill and restart on
    timeout), restart after an error or every N renders, and set the CPU limit per render (RLIMIT_CPU counts the
    whole life of the process)."""

    def __init__(self) -> None:
        from portal.dpa.render import _SOURCE_ROOT, RenderLimits, _environment

        self.memory = RenderLimits().memory_bytes
        self.child = subprocess.Popen(  # noqa: S603 - this interpreter, fixed code
            [sys.executable, "-c", _PERSISTENT_CHILD, str(self.memory)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=_environment(), cwd=_SOURCE_ROOT)

    def render(self, template: bytes, context: Mapping[str, Any]) -> bytes:
        assert self.child.stdin is not None
        assert self.child.stdout is not None
        payload = pickle.dumps((template, dict(context), self.memory))
        self.child.stdin.write(struct.pack(">I", len(payload)) + payload)
        self.child.stdin.flush()
        (length,) = struct.unpack(">I", self.child.stdout.read(4))
        answer = self.child.stdout.read(length)
        if not answer.startswith(b"K"):
            raise RuntimeError(answer[:500].decode(errors="replace"))
        return answer[1:]

    def close(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        self.child.wait(timeout=10)


# ---------------------------------------------------------------- 5. the core with compiled templates cached (sketch)

class CompiledCache:
    """``render_in_process`` with each part's compiled Jinja template kept per template (the Jinja source and its
    compilation depend on the template only, not on the data): what a persistent worker could keep between
    renders, keyed by the template version's SHA-256."""

    def __init__(self) -> None:
        self.compiled: dict[tuple[bytes, str], Any] = {}

    def render(self, template: bytes, context: Mapping[str, Any]) -> bytes:
        import hashlib

        from portal.dpa import wordml
        from portal.dpa.render_worker import template_environment

        digest = hashlib.sha256(template).digest()
        output = io.BytesIO()
        with zipfile.ZipFile(io.BytesIO(template)) as source, zipfile.ZipFile(output, "w") as target:
            for info in source.infolist():
                content = source.read(info)
                if wordml.TEMPLATE_PART.fullmatch(info.filename):
                    key = (digest, info.filename)
                    if key not in self.compiled:
                        part_source = wordml.template_source(wordml.parse_xml(content))
                        self.compiled[key] = template_environment().from_string(part_source)
                    root = wordml.parse_xml(self.compiled[key].render(context).encode())
                    wordml.restore_breaks(root)
                    content = wordml.serialize(root)
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
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def interleaved(methods: Mapping[str, Callable[[], object]], runs: int, warmup: int,
                live: tuple[int, ...]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each method ``warmup`` times, then ``runs`` rounds of one call of each, so machine noise hits all alike.
    Wall-clock and CPU seconds per call (CPU counts the children, ``live`` being those not yet reaped)."""
    for method in methods.values():
        for _ in range(warmup):
            method()
    wall: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(runs):
        for name, method in methods.items():
            cpu_before = cpu_seconds(*live)
            started = time.perf_counter()
            method()
            wall[name].append(time.perf_counter() - started)
            cpu[name].append(cpu_seconds(*live) - cpu_before)
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
    from portal.dpa.render import _SOURCE_ROOT, _environment, render_docx

    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
    tiny = empty.getvalue()

    def bare() -> None:
        subprocess.run([sys.executable, "-c", "pass"], env=_environment(), cwd=_SOURCE_ROOT, check=True)

    samples_bare, samples_worker = [], []
    for _ in range(runs):
        started = time.perf_counter()
        bare()
        samples_bare.append(time.perf_counter() - started)
        started = time.perf_counter()
        render_docx(tiny, {})
        samples_worker.append(time.perf_counter() - started)
    return {"bare interpreter start (python -c pass)": median_ms(samples_bare),
            "render_docx of a one-part package (start + imports + limits + pipes)": median_ms(samples_worker)}


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
    from portal.dpa.render import docx_text, render_docx, render_in_process

    print(f"machine: {machine()}", flush=True)
    template = build_default_docx()
    context = bench_context(args.rows)
    worker = PersistentWorker()
    cache = CompiledCache()
    try:
        methods: dict[str, Callable[[], bytes]] = {
            "baseline (string substitution + re-zip)": lambda: render_baseline(template, context),
            "portal render_docx (child per render)": lambda: render_docx(template, context),
            "render_in_process (same core, no child)": lambda: render_in_process(template, context),
            "persistent worker (sketch)": lambda: worker.render(template, context),
            "core, compiled template cached (sketch)": lambda: cache.render(template, context),
        }
        outputs = {name: method() for name, method in methods.items()}
        for name, document in outputs.items():
            check(name, document, context)
        portal_text = docx_text(outputs["portal render_docx (child per render)"])
        for name, document in outputs.items():
            if docx_text(document) != portal_text:
                raise SystemExit(f"{name}: its text differs from the portal's render")
        sizes = ", ".join(f"{len(document) / 1024:.0f} KiB" for document in outputs.values())
        print(f"template {len(template) / 1024:.0f} KiB; {args.rows} sub-processors; outputs {sizes}; all open with "
              f"python-docx, hold the {args.rows} rows and the same text", flush=True)
        print(f"{args.runs} interleaved runs of each after {args.warmup} warm-up runs:", flush=True)
        samples, cpu = interleaved(methods, args.runs, args.warmup, (worker.child.pid,))
    finally:
        worker.close()

    base = median_ms(samples["baseline (string substitution + re-zip)"])
    base_cpu = statistics.median(cpu["baseline (string substitution + re-zip)"])
    for name, values in samples.items():
        ms = median_ms(values)
        print(f"  {name:42} median {ms:7.2f} ms  (min {min(values) * 1000:6.2f}, max {max(values) * 1000:7.2f})  "
              f"ratio {ms / base:5.2f}  |  CPU {statistics.median(cpu[name]) * 1000:6.1f} ms, ratio "
              f"{statistics.median(cpu[name]) / base_cpu:5.2f}")
    portal = median_ms(samples["portal render_docx (child per render)"])
    core = median_ms(samples["render_in_process (same core, no child)"])
    persistent = median_ms(samples["persistent worker (sketch)"])
    verdict = "met" if portal / base <= 5 else "NOT met"
    print(f"ratio portal render_docx / baseline: {portal / base:.2f} (target at most 5: {verdict})")
    print(f"ratio render_in_process / baseline:  {core / base:.2f}")
    print(f"ratio persistent worker / baseline:  {persistent / base:.2f}")
    cached = median_ms(samples["core, compiled template cached (sketch)"])
    print(f"ratio core with compiled cache / baseline: {cached / base:.2f}")

    print("where the time goes (medians, each step measured alone):", flush=True)
    for step, ms in {**core_breakdown(template, context, args.runs), **process_costs(max(10, args.runs // 3))}.items():
        print(f"  {step:70} {ms:7.2f} ms")


if __name__ == "__main__":
    main()
