"""The delivery worker: takes due deliveries from the outbox, sends them, and records what happened.

Invariants:
- a claim leases rows to this worker and commits at once; the rows are then loaded in a read transaction and sent
  with no transaction open; each outcome is recorded in a short transaction of its own (outcomes that finish
  together share one), only while this worker still holds the lease;
- at most ``batch`` rows are leased by a worker at a time and at most ``concurrency`` messages are in flight; the
  next claim is made while half the batch is still to send, so sending never waits for the database;
- a running worker renews its leases every third of the lease, so rows waiting their turn stay its own;
- several workers may run at once: PostgreSQL's ``SKIP LOCKED`` (or SQLite's single writer) keeps their claims
  apart, and a worker that dies loses nothing: its rows are claimed again one lease after its last renewal;
- on SIGTERM or SIGINT a worker stops claiming, lets the sends in flight finish (for ``grace`` seconds), records
  them, and gives its remaining leases back;
- a delivery whose endpoint was disabled, whose public subscriber left or whose account was disabled is cancelled,
  not sent; a delivery whose retries ran out is dead (``dead_at``), logged and audited, for a person to act on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import logging
import os
import secrets
import signal
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portal import audit
from portal.actors import Actor
from portal.db import make_engine, make_sessionmaker, utcnow, write_intent
from portal.notifications import outbox
from portal.notifications.models import Delivery, DeliveryStatus
from portal.notifications.outbox import AttemptResult
from portal.notifications.senders import Job, Senders, load_jobs
from portal.notifications.webhook_service import disable_gone_endpoint
from portal.scheduled import run_due_jobs
from portal.settings import Settings

log = logging.getLogger("portal.notifications.worker")

RECORD_GROUP = 500  # outcomes recorded in one transaction at most
RECORD_PAUSE = 0.05  # seconds an outcome waits for others to share its transaction (leases are renewed meanwhile)


@dataclass(frozen=True)
class WorkerOptions:
    batch: int = 128  # rows leased at once, at most
    concurrency: int = 16  # messages in flight at once, at most
    lease: dt.timedelta = dt.timedelta(seconds=60)  # renewed every third of it while the worker lives
    poll_interval: float = 1.0  # seconds between looks at the outbox while nothing is due
    grace: float = 30.0  # seconds the sends in flight may take to finish on shutdown
    schedule_interval: float = 30.0  # seconds between runs of the scheduled jobs (deadlines passing)


@dataclass
class WorkerStats:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    cancelled: int = 0
    lost: int = 0  # outcomes not recorded because another worker had taken the lease over

    @property
    def attempts(self) -> int:
        return self.sent + self.failed


@dataclass(frozen=True)
class _Outcome:
    delivery_id: uuid.UUID
    started_at: dt.datetime
    result: AttemptResult | None = None
    cancel_reason: str = ""


def worker_identity() -> str:
    """``host:pid:random``: unique per worker run, readable in the evidence of each attempt."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


class DeliveryWorker:
    """Sends due deliveries until stopped (``run``) or until nothing is due (``run(once=True)``)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: Settings, *,
                 senders: Senders | None = None, options: WorkerOptions | None = None,
                 identity: str | None = None) -> None:
        self.sessions = sessions
        self.settings = settings
        self.options = options or WorkerOptions()
        self.identity = identity or worker_identity()
        self.owns_senders = senders is None
        self.senders = senders or Senders.from_settings(settings)
        self.actor = Actor.system(f"worker:{self.identity}")
        self.stats = WorkerStats()
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._hurry = asyncio.Event()
        self._winding_down = False

    def hurry(self) -> None:
        """Stop waiting for the sends in flight when shutting down (their deliveries are given back)."""
        self._hurry.set()

    # ------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event | None = None, *, once: bool = False) -> WorkerStats:
        """Deliver until ``stop`` is set; with ``once``, until nothing more is due, then return."""
        stop = stop or asyncio.Event()
        outcomes: asyncio.Queue[_Outcome | None] = asyncio.Queue()
        recorder = asyncio.create_task(self._record_outcomes(outcomes), name="delivery outcomes")
        sending: set[asyncio.Task[None]] = set()
        stopping = asyncio.create_task(stop.wait(), name="delivery worker stop")
        renewing = asyncio.create_task(self._renew_leases(), name="delivery lease renewal")
        if once:  # what became due by time (deadlines) is recorded before the notices it may queue are sent
            await run_due_jobs(self.sessions, settings=self.settings)
        scheduling = None if once else asyncio.create_task(self._run_scheduled(), name="scheduled jobs")
        log.info("delivery worker %s started (batch %d, concurrency %d, lease %s)", self.identity,
                 self.options.batch, self.options.concurrency, self.options.lease)
        try:
            await self._loop(stop, stopping, sending, outcomes, once=once)
            if sending and not stop.is_set():  # once: everything claimed is sent before returning
                await asyncio.wait(sending)
        finally:
            if scheduling is not None:
                scheduling.cancel()
            await self._wind_down(sending, outcomes, recorder, renewing)
            stopping.cancel()
            if self.owns_senders:
                await self.senders.aclose()
            else:
                await self.senders.idle()
            log.info("delivery worker %s stopped: %s", self.identity, self.stats)
        return self.stats

    async def _loop(self, stop: asyncio.Event, stopping: asyncio.Task[bool], sending: set[asyncio.Task[None]],
                    outcomes: asyncio.Queue[_Outcome | None], *, once: bool) -> None:
        batch = self.options.batch
        threshold = max(1, batch // 2)
        room_made = asyncio.Event()

        def sent(task: asyncio.Task[None]) -> None:
            sending.discard(task)
            if batch - len(sending) >= threshold:
                room_made.set()

        while not stop.is_set():
            room = batch - len(sending)
            more_due = True
            if room >= threshold or not sending:
                try:
                    jobs, claimed = await self._claim(room, outcomes)
                except Exception:
                    if once:
                        raise
                    # The database may be restarting: keep the loop alive and look again after the poll interval.
                    log.exception("claiming deliveries failed; trying again shortly")
                    jobs, claimed = [], 0
                more_due = claimed == room
                for job in jobs:
                    task = asyncio.create_task(self._send(job, outcomes))
                    sending.add(task)
                    task.add_done_callback(sent)
                if once and not more_due:
                    return
            if more_due:  # wait for room (sends finishing), then claim again at once
                room_made.clear()
                if batch - len(sending) < threshold:
                    waiting = asyncio.create_task(room_made.wait())
                    await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                    waiting.cancel()
            else:
                if not sending:
                    await self.senders.idle()
                await asyncio.wait({stopping}, timeout=self.options.poll_interval)

    async def _wind_down(self, sending: set[asyncio.Task[None]], outcomes: asyncio.Queue[_Outcome | None],
                         recorder: asyncio.Task[None], renewing: asyncio.Task[None]) -> None:
        self._winding_down = True  # claimed rows not being sent yet stay unsent and are given back below
        if sending:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.options.grace
            hurry = asyncio.create_task(self._hurry.wait())
            while sending and not self._hurry.is_set() and loop.time() < deadline:
                await asyncio.wait({*sending, hurry}, timeout=deadline - loop.time(),
                                   return_when=asyncio.FIRST_COMPLETED)
            hurry.cancel()
            pending = set(sending)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        outcomes.put_nowait(None)
        await recorder
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)
        try:
            async with self._writing() as session:
                released = await outbox.release_expired_leases_of(session, self.identity)
                await session.commit()
        except (SQLAlchemyError, OSError):
            log.exception("giving back the leases of %s failed; they end by themselves", self.identity)
        else:
            if released:
                log.info("gave back %d unsent deliveries", released)

    async def _run_scheduled(self) -> None:
        while True:
            await run_due_jobs(self.sessions, settings=self.settings)
            await asyncio.sleep(self.options.schedule_interval)

    async def _renew_leases(self) -> None:
        interval = self.options.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._writing() as session:
                    await outbox.extend_leases(session, worker=self.identity, lease=self.options.lease)
                    await session.commit()
            except (SQLAlchemyError, OSError):
                log.exception("renewing the leases of %s failed; trying again", self.identity)

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction will write (on SQLite it takes the write lock at BEGIN)."""
        token = write_intent.set(True)
        try:
            async with self.sessions() as session:
                yield session
        finally:
            write_intent.reset(token)

    # ------------------------------------------------------------ claim and load

    async def _claim(self, room: int, outcomes: asyncio.Queue[_Outcome | None]) -> tuple[list[Job], int]:
        """Lease up to ``room`` due deliveries; the jobs to send, and how many rows were claimed."""
        async with self._writing() as session:
            ids = await outbox.claim(session, worker=self.identity, batch=room, lease=self.options.lease)
            await session.commit()
        if not ids:
            return [], 0
        async with self.sessions() as session:
            jobs, withdrawn = await load_jobs(session, ids, self.settings)
        # Closing the read-only session ends its transaction and leaves the loaded rows usable while sending.
        now = utcnow()
        for delivery_id, reason in withdrawn:
            outcomes.put_nowait(_Outcome(delivery_id, now, cancel_reason=reason))
        return jobs, len(ids)

    # ------------------------------------------------------------ send

    async def _send(self, job: Job, outcomes: asyncio.Queue[_Outcome | None]) -> None:
        async with self._slots:
            if self._winding_down:
                return
            started_at = utcnow()
            clock = time.perf_counter()
            try:
                result = await self.senders.send(job)
            except Exception as exc:  # a sender's bug still leaves a failed attempt on record
                log.exception("sending delivery %s failed unexpectedly", job.delivery.id)
                result = AttemptResult(ok=False, error=f"{type(exc).__name__}: {exc}")
            if not result.duration_ms:
                result = dataclasses.replace(result, duration_ms=round((time.perf_counter() - clock) * 1000))
        outcomes.put_nowait(_Outcome(job.delivery.id, started_at, result))

    # ------------------------------------------------------------ record

    async def _record_outcomes(self, outcomes: asyncio.Queue[_Outcome | None]) -> None:
        """Record outcomes as they come, many per transaction; a group that fails is tried again (its rows stay
        leased meanwhile), so a database that is briefly away costs nothing but time."""
        finished = False
        ready: list[_Outcome] = []
        failures = 0
        while True:
            if not finished and not ready:
                item = await outcomes.get()
                finished = item is None
                ready = [] if item is None else [item]
                if not finished:
                    await asyncio.sleep(RECORD_PAUSE)  # let the outcomes of the sends in flight join this one
            while not finished and not outcomes.empty() and len(ready) < RECORD_GROUP:
                item = outcomes.get_nowait()
                if item is None:
                    finished = True
                else:
                    ready.append(item)
            if not ready:
                return
            try:
                await self._record(ready)
            except (SQLAlchemyError, OSError):
                failures += 1
                if finished and failures > 3:
                    # Stopping with the database away: the rows stay leased and are sent again later.
                    log.exception("recording %d outcomes failed; those deliveries will be sent again", len(ready))
                    return
                log.exception("recording %d outcomes failed; trying again", len(ready))
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))
            else:
                ready, failures = [], 0

    async def _record(self, group: list[_Outcome]) -> None:
        async with self._writing() as session:
            for outcome in group:
                if outcome.result is None and await outbox.cancel(
                        session, delivery_id=outcome.delivery_id, worker=self.identity,
                        reason=outcome.cancel_reason) is not None:
                    self.stats.cancelled += 1
            results = {o.delivery_id: o.result for o in group if o.result is not None}
            sent = await outbox.record_sent(
                session, worker=self.identity,
                attempts=[(o.delivery_id, o.started_at, o.result) for o in group if o.result and o.result.ok])
            failed = await outbox.record_attempts(
                session, worker=self.identity,
                attempts=[(o.delivery_id, o.started_at, o.result) for o in group if o.result and not o.result.ok])
            self.stats.sent += len(sent)
            for delivery_id in results.keys() - sent - {d.id for d in failed}:
                self.stats.lost += 1
                log.warning("delivery %s: the lease ran out before its outcome was recorded", delivery_id)
            for delivery in failed:
                result = results[delivery.id]
                self.stats.failed += 1
                log.warning("delivery %s attempt %d failed: %s %s", delivery.id, delivery.attempts, result.response,
                            result.error)
                if delivery.status is DeliveryStatus.DEAD:
                    await self._dead(session, delivery, result)
            await session.commit()

    async def _dead(self, session: AsyncSession, delivery: Delivery, result: AttemptResult) -> None:
        self.stats.dead += 1
        log.error("delivery %s of notice %s is dead after %d attempts: %s", delivery.id, delivery.notice_id,
                  delivery.attempts, delivery.last_error)
        await audit.record(session, actor=self.actor, tag="delivery:dead", subject=delivery, org_id=delivery.org_id,
                           data={"notice_id": str(delivery.notice_id), "channel": delivery.channel.value,
                                 "attempts": delivery.attempts, "response": result.response,
                                 "error": delivery.last_error, "gone": result.gone})
        if result.gone and delivery.endpoint_id is not None:
            await self._endpoint_gone(session, delivery)

    async def _endpoint_gone(self, session: AsyncSession, delivery: Delivery) -> None:
        """An endpoint that answered 410 Gone is disabled and its queued deliveries cancelled."""
        if delivery.endpoint_id is not None:
            await disable_gone_endpoint(session, delivery.endpoint_id, "The endpoint answered 410 Gone.",
                                        actor=self.actor)


# ---------------------------------------------------------------- `portal worker`

def run_worker_process(settings: Settings, options: WorkerOptions, *, once: bool = False) -> WorkerStats:
    """``portal worker``: this process becomes one delivery worker (on uvloop when it is installed, as uvicorn
    does for ``portal serve``)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return asyncio.run(run_worker(settings, options, once=once))
    return uvloop.run(run_worker(settings, options, once=once))


async def run_worker(settings: Settings, options: WorkerOptions, *, once: bool = False) -> WorkerStats:
    """Run one worker on its own engine until SIGTERM/SIGINT (a second signal stops without waiting)."""
    engine = make_engine(settings.database_url)
    worker = DeliveryWorker(make_sessionmaker(engine), settings, options=options)
    # A worker makes and drops many short-lived objects per message; the cyclic collector's full passes over
    # everything loaded at start-up cost more than the sending itself in a fan-out. Start-up objects are frozen
    # out of its sight and its passes made rarer (measured: about a sixth of the CPU per message).
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    run = asyncio.create_task(worker.run(stop, once=once))

    def on_signal(signum: int) -> None:
        if stop.is_set():
            log.warning("second %s: stopping without waiting for sends in flight", signal.Signals(signum).name)
            worker.hurry()
        else:
            log.info("%s: finishing the sends in flight, then stopping", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        return await run
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await engine.dispose()
