"""The render child processes, seen from the portal: limits, errors, and a small pool of persistent workers.

Invariants:
- every child (one-shot or persistent) is started with an empty environment (``child_environment``) and an
  address-space limit; the portal writes pickled requests to it and reads back only raw bytes and JSON, never a
  pickle;
- the parent's per-render deadline is the time limit: a worker that passes it is killed, and so is one that answers
  with an error, crashes, or has served ``RENDERS_PER_WORKER`` renders; the next render starts a fresh one;
- each worker serves one render at a time; a render waits for an idle worker (the most recently used first, so its
  compiled templates are warm), and a worker is only started when a render needs it;
- workers are killed when the portal process exits (``atexit``), or earlier by ``close_render_workers``.
"""

from __future__ import annotations

import atexit
import json
import os
import pickle
import queue
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import portal
from portal.dpa.render_worker import FRAME_HEADER, frame
from portal.errors import PortalError

MiB = 1 << 20
SOURCE_ROOT = str(Path(portal.__file__).resolve().parent.parent)
POOL_SIZE = 2
RENDERS_PER_WORKER = 200  # bounds whatever a long-lived process accumulates, and RLIMIT_CPU's lifetime count
EXIT_GRACE_SECONDS = 2.0


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


def child_environment() -> dict[str, str]:
    """Only what Python needs to find the portal: no database URL, secret key or credentials reach the child."""
    return {"PYTHONPATH": SOURCE_ROOT, "PATH": os.defpath, "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


def once_command(limits: RenderLimits) -> list[str]:
    cpu_seconds = int(limits.seconds) + 1  # a second stop, should the parent be unable to kill the child
    return [sys.executable, "-m", "portal.dpa.render_worker", "once", str(limits.memory_bytes), str(cpu_seconds)]


def serve_command(memory_bytes: int) -> list[str]:
    return [sys.executable, "-m", "portal.dpa.render_worker", "serve", str(memory_bytes)]


def request(template: bytes, context: dict[str, Any], limits: RenderLimits) -> bytes:
    return pickle.dumps((template, context, limits.memory_bytes, int(limits.seconds) + 1))


def timeout_error(limits: RenderLimits) -> RenderError:
    return RenderError(f"Rendering was stopped after {limits.seconds:g} seconds: the template loops or repeats "
                       "too much.", reason="timeout")


def memory_error(limits: RenderLimits) -> RenderError:
    return RenderError("Rendering was stopped: the template needs more memory than allowed "
                       f"({limits.memory_bytes // MiB} MiB).", reason="memory")


def answer_of(data: bytes) -> bytes:
    """The DOCX of a ``K`` answer; a ``RenderError`` for an ``E`` answer (its JSON, never a pickle)."""
    if data.startswith(b"K"):
        return data[1:]
    if data.startswith(b"E"):
        error = json.loads(data[1:])
        raise RenderError(str(error["message"]), reason=str(error["reason"]))
    raise RenderError("The rendering process answered with something unreadable.", reason="crashed")


def exit_error(returncode: int | None, stderr: bytes, limits: RenderLimits) -> RenderError:
    """Why a child ended without answering: its CPU limit, its memory limit, or anything else."""
    if returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return timeout_error(limits)
    if b"MemoryError" in stderr:
        return memory_error(limits)
    return RenderError(f"The rendering process ended unexpectedly (exit code {returncode}).", reason="crashed")


class _Ended(Exception):
    """The worker closed its stdout (it exited) before a whole answer arrived."""


class _Late(Exception):
    """The deadline passed before a whole answer arrived."""


class Worker:
    """One persistent child. Only the thread holding its slot talks to it; ``interrupt`` may come from anywhere."""

    def __init__(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self.renders = 0
        # A file, not a pipe: a crashing child can write its traceback without ever blocking on a full pipe.
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed module
            serve_command(memory_bytes), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            env=child_environment(), cwd=SOURCE_ROOT, bufsize=0)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def render(self, payload: bytes, limits: RenderLimits) -> bytes:
        """Send one request; its answer's DOCX, or a ``RenderError`` (the caller then closes this worker)."""
        deadline = time.monotonic() + limits.seconds
        try:
            self._write(frame(payload))
            (length,) = FRAME_HEADER.unpack(self._read(FRAME_HEADER.size, deadline))
            if length > limits.memory_bytes:
                raise RenderError("The rendering process answered with something unreadable.", reason="crashed")
            data = self._read(length, deadline)
        except _Late:
            raise timeout_error(limits) from None
        except (_Ended, OSError):
            raise self._exit_error(limits) from None
        self.renders += 1
        return answer_of(data)

    def _write(self, data: bytes) -> None:
        assert self.process.stdin is not None
        view = memoryview(data)
        while view:
            view = view[os.write(self.process.stdin.fileno(), view):]

    def _read(self, size: int, deadline: float) -> bytes:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        chunks: list[bytes] = []
        while size:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise _Late()
            chunk = os.read(fd, min(size, 1 << 20))
            if not chunk:
                raise _Ended()
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def _exit_error(self, limits: RenderLimits) -> RenderError:
        try:
            self.process.wait(EXIT_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.seek(0)
        return exit_error(self.process.returncode, self._stderr.read(64 * 1024), limits)

    def interrupt(self) -> None:
        """Kill the child now (safe from any thread): the render in progress ends with an error."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)

    def close(self) -> None:
        """Kill the child, reap it and close its pipes (only by the thread holding its slot, or at exit)."""
        if self.alive():
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self._stderr):
            if stream is not None:
                stream.close()


class Job:
    """One render handed to the pool, which an abandoning caller (a cancelled request) can stop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._worker: Worker | None = None
        self._abandoned = False

    def attach(self, worker: Worker) -> bool:
        with self._lock:
            if not self._abandoned:
                self._worker = worker
            return not self._abandoned

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            if self._worker is not None:
                self._worker.interrupt()


class _Slot:
    def __init__(self) -> None:
        self.worker: Worker | None = None


class RenderPool:
    """``size`` slots, each holding at most one worker; a render holds a slot for its whole duration."""

    def __init__(self, size: int = POOL_SIZE, renders_per_worker: int = RENDERS_PER_WORKER) -> None:
        self.renders_per_worker = renders_per_worker
        self._slots = [_Slot() for _ in range(size)]
        self._idle: queue.LifoQueue[_Slot] = queue.LifoQueue()
        for slot in self._slots:
            self._idle.put(slot)

    def render(self, template: bytes, context: dict[str, Any], limits: RenderLimits,
               job: Job | None = None) -> bytes:
        """Render in an idle worker, starting one if needed; a worker that fails in any way is replaced."""
        payload = request(template, context, limits)
        slot = self._idle.get()
        try:
            worker = slot.worker
            if worker is None or not worker.alive() or worker.memory_bytes != limits.memory_bytes:
                if worker is not None:
                    worker.close()
                worker = slot.worker = Worker(limits.memory_bytes)
            if job is not None and not job.attach(worker):
                raise RenderError("The render was abandoned.", reason="crashed")
            try:
                document = worker.render(payload, limits)
            except RenderError:
                slot.worker = None
                worker.close()
                raise
            if worker.renders >= self.renders_per_worker:
                slot.worker = None
                worker.close()
            return document
        finally:
            self._idle.put(slot)

    def pids(self) -> list[int]:
        return sorted(slot.worker.pid for slot in self._slots if slot.worker is not None and slot.worker.alive())

    def close(self) -> None:
        """Kill every worker: idle ones are closed here, busy ones interrupted (their render closes them)."""
        idle: list[_Slot] = []
        while True:
            try:
                idle.append(self._idle.get_nowait())
            except queue.Empty:
                break
        for slot in self._slots:
            if slot.worker is None:
                continue
            if slot in idle:
                slot.worker.close()
                slot.worker = None
            else:
                slot.worker.interrupt()
        for slot in idle:
            self._idle.put(slot)


_pool: RenderPool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def render_pool() -> RenderPool:
    """This process's pool (a forked process gets its own: workers belong to the process that started them)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            if _pool is None:
                atexit.register(close_render_workers)
            _pool, _pool_pid = RenderPool(), os.getpid()
        return _pool


def close_render_workers() -> None:
    """Kill this process's render workers (at exit, or from the app's shutdown); the next render starts anew."""
    with _pool_lock:
        pool = _pool if _pool_pid == os.getpid() else None
    if pool is not None:
        pool.close()


def render_worker_pids() -> list[int]:
    """The process ids of the live render workers, for tests and diagnostics."""
    with _pool_lock:
        pool = _pool if _pool_pid == os.getpid() else None
    return pool.pids() if pool is not None else []
