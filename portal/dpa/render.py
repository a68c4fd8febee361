"""Rendering a DOCX template with data: sandboxed Jinja, in a child process with a time and a memory limit.

Invariants:
- templates render with ``ImmutableSandboxedEnvironment`` and XML autoescaping: a value is always text in the
  document (``<`` and ``&`` come out literally), never markup; a missing value is an error, not a silent gap;
- every render happens in a child process (``portal.dpa.render_worker``) with an address-space limit, a CPU-time
  limit and a deadline, started with an empty environment; the parent reads only bytes and JSON back (never
  unpickles what the child sends), kills the child when the deadline passes, and always answers with DOCX bytes or
  a ``RenderError`` saying what stopped it;
- by default a persistent worker renders (``portal.dpa.render_pool``: reused, replaced after any failure);
  ``fresh=True`` renders in a process of its own that ends with the render, for uploads not yet accepted;
- parts other than the body, headers, footers and notes are copied unchanged.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import zipfile
from typing import Any

from portal.dpa.render_pool import (
    SOURCE_ROOT,
    Job,
    RenderError,
    RenderLimits,
    answer_of,
    child_environment,
    close_render_workers,
    exit_error,
    once_command,
    render_pool,
    render_worker_pids,
    request,
    timeout_error,
)
from portal.dpa.render_worker import render_in_process, template_environment
from portal.dpa.wordml import document_paragraphs, parse_xml

__all__ = ["RenderError", "RenderLimits", "close_render_workers", "docx_text", "render_docx", "render_docx_async",
           "render_in_process", "render_worker_pids", "template_environment"]

DEFAULT_LIMITS = RenderLimits()


def docx_text(data: bytes) -> list[str]:
    """The text of every paragraph of the document body, table cells included, in reading order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return document_paragraphs(parse_xml(archive.read("word/document.xml")))


def _once_result(returncode: int, stdout: bytes, stderr: bytes, limits: RenderLimits) -> bytes:
    if returncode == 0 and stdout[:1] in (b"K", b"E"):
        return answer_of(stdout)
    raise exit_error(returncode, stderr, limits)


def render_docx(template: bytes, context: dict[str, Any], *, limits: RenderLimits = DEFAULT_LIMITS,
                fresh: bool = False) -> bytes:
    """Render ``template`` with ``context`` in a resource-limited child process: a DOCX, or a ``RenderError``.
    ``fresh`` renders in a new process that ends with this render (for untrusted uploads)."""
    if not fresh:
        return render_pool().render(template, context, limits)
    try:
        done = subprocess.run(once_command(limits), input=request(template, context, limits),  # noqa: S603
                              capture_output=True, timeout=limits.seconds, env=child_environment(), cwd=SOURCE_ROOT,
                              check=False)
    except subprocess.TimeoutExpired:
        raise timeout_error(limits) from None  # run() has killed the child
    return _once_result(done.returncode, done.stdout, done.stderr, limits)


async def render_docx_async(template: bytes, context: dict[str, Any], *, limits: RenderLimits = DEFAULT_LIMITS,
                            fresh: bool = False) -> bytes:
    """``render_docx`` for the event loop: the render is awaited, never waited for, and its child killed if the
    caller is cancelled."""
    if not fresh:
        job = Job()
        try:
            return await asyncio.to_thread(render_pool().render, template, context, limits, job)
        except asyncio.CancelledError:
            job.abandon()
            raise
    child = await asyncio.create_subprocess_exec(
        *once_command(limits), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=child_environment(), cwd=SOURCE_ROOT)
    try:
        stdout, stderr = await asyncio.wait_for(child.communicate(request(template, context, limits)),
                                                limits.seconds)
    except TimeoutError:
        raise timeout_error(limits) from None
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode is not None
    return _once_result(child.returncode, stdout, stderr, limits)
