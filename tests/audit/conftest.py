"""Audit fixtures: the ``portal`` command run against the test database, and events recorded directly."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import Organisation
from portal.actors import Actor
from portal.cli import main


@dataclass(frozen=True)
class CommandResult:
    code: int
    out: str
    err: str


@pytest.fixture
def portal_command(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                   capsys: pytest.CaptureFixture[str]) -> Callable[..., Awaitable[CommandResult]]:
    """``await portal_command("audit", "verify")`` runs the real command line on the test database."""
    monkeypatch.setenv("PORTAL_DATABASE_URL", database_url)
    monkeypatch.setenv("PORTAL_DATA_DIR", str(tmp_path / "cli-data"))

    def run(argv: list[str]) -> int:
        try:
            main(argv)
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    async def command(*argv: str) -> CommandResult:
        capsys.readouterr()
        # The command runs its own event loop (asyncio.run), so it gets a thread of its own.
        code = await asyncio.to_thread(run, list(argv))
        captured = capsys.readouterr()
        return CommandResult(code, captured.out, captured.err)

    return command


async def record_events(session: AsyncSession, org: Organisation | None, count: int, *, tag: str = "test:event",
                        actor: str = "system", **data: Any) -> None:
    """Record ``count`` events about ``org`` and commit them."""
    for n in range(count):
        await audit.record(session, actor=Actor.system(actor), tag=tag, subject=org,
                           org_id=org.id if org else None, data={"n": n, **data})
    await session.commit()


# The browser fixtures (live server, Chromium page) for this folder's browser test.
from tests.browser.conftest import browser, context, live_server, live_settings, page  # noqa: E402, F401
