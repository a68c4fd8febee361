"""The child process that renders one template: ``python -m portal.dpa.render_worker``.

It limits its own address space and CPU time first, then reads ``(template, context, limits)`` pickled on stdin
from the portal (the only writer) and answers on stdout with ``K`` and the DOCX, or ``E`` and a JSON error. It
imports only the template engine and lxml, so it starts quickly and holds nothing of the web process (its
environment is emptied by the parent: no database URL, no secret key).
"""

from __future__ import annotations

import io
import json
import pickle
import re
import resource
import sys
import zipfile
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from portal.dpa import wordml

MiB = 1 << 20
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


def render_in_process(template: bytes, context: Mapping[str, Any]) -> bytes:
    """Render in this process, sandboxed but without resource limits: for the child process, and for templates
    that ship with the portal."""
    environment = template_environment()
    output = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(template)) as source, zipfile.ZipFile(output, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            if wordml.TEMPLATE_PART.fullmatch(info.filename):
                rendered = environment.from_string(wordml.template_source(wordml.parse_xml(content))).render(context)
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


def answer(payload: bytes) -> bytes:
    template, context, memory_bytes = pickle.loads(payload)  # noqa: S301 - written by the portal itself
    try:
        return b"K" + render_in_process(template, context)
    except MemoryError:
        return _error("memory", "Rendering was stopped: the template needs more memory than allowed "
                                f"({memory_bytes // MiB} MiB).")
    except SecurityError as exc:
        return _error("template", f"The template tried something the sandbox forbids ({exc}).")
    except (TemplateError, wordml.LayoutError) as exc:
        return _error("template", f"The template could not be rendered: {exc}.")
    except Exception as exc:  # whatever else an untrusted template provokes is still the template's failure
        return _error("template", f"The template could not be rendered ({type(exc).__name__}: {exc}).")


def main() -> None:
    memory_bytes, cpu_seconds = int(sys.argv[1]), int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
    sys.stdout.buffer.write(answer(sys.stdin.buffer.read()))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
