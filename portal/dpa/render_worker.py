"""The child process that renders templates: ``python -m portal.dpa.render_worker``.

Two modes, both started by the portal with an empty environment and an address-space limit set first thing:

- ``once MEMORY CPU``: one request on stdin, one answer on stdout, then exit (uploads under validation: every
  render in a process of its own);
- ``serve MEMORY``: length-prefixed requests (4-byte big-endian length, then the payload) answered one at a time
  with length-prefixed answers, until stdin closes; the portal kills it after any error, at its deadline, or after
  a fixed number of renders.

A request is ``(template, context, memory_bytes, cpu_seconds)`` pickled by the portal (the only writer); an answer
is ``K`` and the DOCX, or ``E`` and a JSON error: the portal never unpickles what comes back. The CPU limit is set
per request (``RLIMIT_CPU`` counts the whole life of a process, so a serving child moves the soft limit forward).
Compiled templates are kept in a small LRU keyed by the template bytes' SHA-256, each in a sandboxed environment of
its own, so nothing one template sets up is visible to another. It imports only the template engine and lxml, so
it starts quickly and holds nothing of the web process (no database URL, no secret key).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import re
import resource
import struct
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, BinaryIO

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from portal.dpa import wordml

MiB = 1 << 20
FRAME_HEADER = struct.Struct(">I")
CACHED_TEMPLATES = 8  # a few template versions in use at once; their compiled forms count against the memory limit
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _as_text(value: Any) -> Any:
    """Every value becomes plain text Word can hold: None is empty, XML-forbidden control characters go."""
    if value is None:
        return ""
    if isinstance(value, Markup):
        return value
    return _XML_INVALID.sub("", str(value))


def template_environment() -> ImmutableSandboxedEnvironment:
    """Sandboxed, XML-escaping, strict about missing values (a gap in a contract is an error, not a blank)."""
    return ImmutableSandboxedEnvironment(autoescape=True, undefined=StrictUndefined, finalize=_as_text,
                                         keep_trailing_newline=True, cache_size=0)


class CompiledTemplate:
    """The compiled Jinja template of each part of one DOCX, in a sandboxed environment of its own (so globals,
    filters or anything else an environment holds are never shared between two templates)."""

    def __init__(self) -> None:
        self.environment = template_environment()
        self._parts: dict[str, Template] = {}

    def part(self, name: str, content: bytes) -> Template:
        if name not in self._parts:
            source = wordml.template_source(wordml.parse_xml(content))
            self._parts[name] = self.environment.from_string(source)
        return self._parts[name]


class CompiledTemplates:
    """A small LRU of ``CompiledTemplate`` keyed by the SHA-256 of the template's bytes: the Jinja source and its
    compiled form depend on the template alone, never on the data, and the same bytes always compile the same."""

    def __init__(self, capacity: int = CACHED_TEMPLATES) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, CompiledTemplate] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, template: bytes) -> bool:
        return hashlib.sha256(template).digest() in self._entries

    def of(self, template: bytes) -> CompiledTemplate:
        key = hashlib.sha256(template).digest()
        compiled = self._entries.get(key)
        if compiled is None:
            compiled = self._entries[key] = CompiledTemplate()
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        self._entries.move_to_end(key)
        return compiled


def render_in_process(template: bytes, context: Mapping[str, Any], *,
                      cache: CompiledTemplates | None = None) -> bytes:
    """Render in this process, sandboxed but without resource limits: for the child process, and for templates
    that ship with the portal. ``cache`` keeps the compiled parts for the next render of the same bytes."""
    compiled = cache.of(template) if cache is not None else CompiledTemplate()
    output = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(template)) as source, zipfile.ZipFile(output, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if wordml.TEMPLATE_PART.fullmatch(info.filename):
                rendered = compiled.part(info.filename, content).render(context)
                try:
                    root = wordml.parse_xml(rendered.encode())
                except wordml.UnsafeXml as exc:
                    raise wordml.LayoutError(f"the tags in {info.filename} produce a broken document: keep each "
                                             "{% if %} … {% endif %} inside one paragraph or on paragraphs of their "
                                             "own") from exc
                wordml.restore_breaks(root)
                content = wordml.serialize(root)
            target.writestr(info, content, compress_type=info.compress_type)
    return output.getvalue()


def _error(reason: str, message: str) -> bytes:
    return b"E" + json.dumps({"reason": reason, "message": message[:2000]}).encode()


def limit_cpu(seconds: int) -> None:
    """Allow ``seconds`` more CPU time from now: the limit counts the process's whole life, so it moves forward
    with each request (SIGXCPU ends the process if a render overruns; the parent's deadline usually comes first)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(used.ru_utime + used.ru_stime) + seconds
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def answer(payload: bytes, *, cache: CompiledTemplates | None = None) -> bytes:
    """``K`` and the DOCX, or ``E`` and a JSON error, for one pickled request."""
    template, context, memory_bytes, cpu_seconds = pickle.loads(payload)  # noqa: S301 - written by the portal
    limit_cpu(cpu_seconds)
    try:
        return b"K" + render_in_process(template, context, cache=cache)
    except MemoryError:
        return _error("memory", "Rendering was stopped: the template needs more memory than allowed "
                                f"({memory_bytes // MiB} MiB).")
    except SecurityError as exc:
        return _error("template", f"The template tried something the sandbox forbids ({exc}).")
    except (TemplateError, wordml.LayoutError) as exc:
        return _error("template", f"The template could not be rendered: {exc}.")
    except Exception as exc:  # whatever else an untrusted template provokes is still the template's failure
        return _error("template", f"The template could not be rendered ({type(exc).__name__}: {exc}).")


def read_frame(stream: BinaryIO) -> bytes | None:
    """One length-prefixed frame, or None when the stream ends between frames."""
    header = stream.read(FRAME_HEADER.size)
    if len(header) < FRAME_HEADER.size:
        return None
    (length,) = FRAME_HEADER.unpack(header)
    payload = stream.read(length)
    return payload if len(payload) == length else None


def frame(payload: bytes) -> bytes:
    return FRAME_HEADER.pack(len(payload)) + payload


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer framed requests one at a time until stdin closes, keeping compiled templates between them."""
    cache = CompiledTemplates()
    while (request := read_frame(stdin)) is not None:
        stdout.write(frame(answer(request, cache=cache)))
        stdout.flush()


def main() -> None:
    mode, memory_bytes = sys.argv[1], int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    if mode == "serve":
        serve(sys.stdin.buffer, sys.stdout.buffer)
        return
    cpu_seconds = int(sys.argv[3])  # "once": a hard stop for the whole process as well
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    sys.stdout.buffer.write(answer(sys.stdin.buffer.read()))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
