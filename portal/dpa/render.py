"""Rendering a DOCX template with data: sandboxed Jinja, in a child process with a time and a memory limit.

Invariants:
- templates render with ``ImmutableSandboxedEnvironment`` and XML autoescaping: a value is always text in the
  document (``<`` and ``&`` come out literally), never markup; a missing value is an error, not a silent gap;
- every render of an uploaded template happens in a child process (``portal.dpa.render_worker``) with an
  address-space limit, a CPU-time limit and a deadline, started with an empty environment; the parent reads only
  bytes and JSON back (never unpickles what the child sends), kills the child when the deadline passes, and always
  answers with DOCX bytes or a ``RenderError`` saying what stopped it;
- parts other than the body, headers, footers and notes are copied unchanged.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import portal
from portal.dpa.render_worker import render_in_process, template_environment
from portal.dpa.wordml import document_paragraphs, parse_xml
from portal.errors import PortalError

__all__ = ["RenderError", "RenderLimits", "docx_text", "render_docx", "render_docx_async", "render_in_process",
           "template_environment"]

MiB = 1 << 20
_SOURCE_ROOT = str(Path(portal.__file__).resolve().parent.parent)


@dataclass(frozen=True)
class RenderLimits:
    seconds: float = 10.0
    memory_bytes: int = 512 * MiB


class RenderError(PortalError):
    status = 422
    code = "render_failed"
    default_message = "The document could not be rendered."

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason  # "timeout", "memory", "template" or "crashed"


def docx_text(data: bytes) -> list[str]:
    """The text of every paragraph of the document body, table cells included, in reading order."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return document_paragraphs(parse_xml(archive.read("word/document.xml")))


def _command(limits: RenderLimits) -> list[str]:
    cpu_seconds = int(limits.seconds) + 1  # a second stop, should the parent be unable to kill the child
    return [sys.executable, "-m", "portal.dpa.render_worker", str(limits.memory_bytes), str(cpu_seconds)]


def _environment() -> dict[str, str]:
    """Only what Python needs to find the portal: no database URL, secret key or credentials reach the child."""
    return {"PYTHONPATH": _SOURCE_ROOT, "PATH": os.defpath, "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


def _timeout(limits: RenderLimits) -> RenderError:
    return RenderError(f"Rendering was stopped after {limits.seconds:g} seconds: the template loops or repeats "
                       "too much.", reason="timeout")


def _result(returncode: int, stdout: bytes, stderr: bytes, limits: RenderLimits) -> bytes:
    if returncode == 0 and stdout.startswith(b"K"):
        return stdout[1:]
    if returncode == 0 and stdout.startswith(b"E"):
        error = json.loads(stdout[1:])
        raise RenderError(str(error["message"]), reason=str(error["reason"]))
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        raise _timeout(limits)
    if b"MemoryError" in stderr:
        raise RenderError("Rendering was stopped: the template needs more memory than allowed "
                          f"({limits.memory_bytes // MiB} MiB).", reason="memory")
    raise RenderError(f"The rendering process ended unexpectedly (exit code {returncode}).", reason="crashed")


def render_docx(template: bytes, context: dict[str, Any], *, limits: RenderLimits = RenderLimits()) -> bytes:
    """Render ``template`` with ``context`` in a resource-limited child process: a DOCX, or a ``RenderError``."""
    payload = pickle.dumps((template, context, limits.memory_bytes))
    try:
        done = subprocess.run(_command(limits), input=payload, capture_output=True, timeout=limits.seconds,  # noqa: S603
                              env=_environment(), cwd=_SOURCE_ROOT, check=False)
    except subprocess.TimeoutExpired:
        raise _timeout(limits) from None  # run() has killed the child
    return _result(done.returncode, done.stdout, done.stderr, limits)


async def render_docx_async(template: bytes, context: dict[str, Any], *,
                            limits: RenderLimits = RenderLimits()) -> bytes:
    """``render_docx`` for the event loop: the child is awaited, never waited for, and killed if cancelled."""
    payload = pickle.dumps((template, context, limits.memory_bytes))
    child = await asyncio.create_subprocess_exec(
        *_command(limits), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=_environment(), cwd=_SOURCE_ROOT)
    try:
        stdout, stderr = await asyncio.wait_for(child.communicate(payload), limits.seconds)
    except TimeoutError:
        raise _timeout(limits) from None
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode is not None
    return _result(child.returncode, stdout, stderr, limits)
