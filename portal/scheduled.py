"""Jobs that act when a time passes rather than when someone acts: the worker runs each on a timer.

Each job takes a session and the current time, does a bounded amount of work in that transaction and returns how
many things it changed; it must be safe to run in several workers at once (row locks with SKIP LOCKED, or state
re-checked under the lock), because every ``portal worker`` and the in-process loop run them.
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from portal.db import utcnow, write_intent
from portal.settings import Settings

log = logging.getLogger("portal.scheduled")

Job = Callable[..., Awaitable[int]]

# (name, "module:function", whether it takes the settings), imported when run so the worker does not depend on every
# domain at import time.
JOBS: tuple[tuple[str, str, bool], ...] = (
    ("sub-processor objection deadlines", "portal.subprocessors.responses:apply_deadlines", False),
    ("re-signing reminders", "portal.signing.campaign:send_reminders", True),
)


def _load(path: str) -> Job:
    module, _, name = path.partition(":")
    job: Job = getattr(importlib.import_module(module), name)
    return job


async def run_due_jobs(sessions: async_sessionmaker[AsyncSession], *, settings: Settings,
                       now: dt.datetime | None = None) -> dict[str, int]:
    """Run every job once, each in its own transaction; a failing job is logged and the others still run."""
    now = now or utcnow()
    done: dict[str, int] = {}
    for name, path, takes_settings in JOBS:
        token = write_intent.set(True)
        try:
            async with sessions() as session:
                job = _load(path)
                done[name] = await (job(session, now=now, settings=settings) if takes_settings
                                    else job(session, now=now))
                await session.commit()
        except Exception:
            log.exception("scheduled job %r failed; it runs again at the next interval", name)
        finally:
            write_intent.reset(token)
        if done.get(name):
            log.info("scheduled job %r changed %d rows", name, done[name])
    return done
