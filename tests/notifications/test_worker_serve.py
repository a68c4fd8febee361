"""``portal serve`` on the embedded SQLite database is a complete portal: it delivers notices in-process."""

from __future__ import annotations

import asyncio
import time

from portal.accounts.roles import Role
from portal.accounts.service import add_membership, create_client_org, create_user, create_vendor_org
from portal.actors import Actor
from portal.db import commit_and_run_jobs, make_engine, make_sessionmaker, write_intent
from portal.notifications.service import notify
from tests.conftest import TEST_SECRET
from tests.notifications.worker_support import Sink, breach
from tests.test_cli_serve import portal_env, serving


async def _queue_a_breach_notice(database_url: str) -> None:
    """What a business transaction in the running portal does: a change and its notice, committed together."""
    engine = make_engine(database_url)
    token = write_intent.set(True)
    try:
        async with make_sessionmaker(engine)() as session:
            system = Actor.system("test")
            await create_vendor_org(session, actor=system, name="Lumen AI GmbH")
            org = await create_client_org(session, actor=system, name="Acme Logistics")
            user = await create_user(session, email="sec@acme.example", name="Sec", password=None)
            await add_membership(session, actor=system, org=org, user=user, roles=[Role.SECURITY_CONTACT])
            await notify(session, actor=system, content=breach(), orgs=[org])
            await commit_and_run_jobs(session)
    finally:
        write_intent.reset(token)
        await engine.dispose()


def test_portal_serve_on_sqlite_delivers_notices_with_its_in_process_worker(tmp_path):
    data_dir = tmp_path / "data"
    sink = Sink().start()
    try:
        env = portal_env(data_dir, PORTAL_SMTP_URL=sink.url, PORTAL_SECRET_KEY=TEST_SECRET)
        with serving(env, tmp_path) as served:  # it created and migrated the embedded database
            asyncio.run(_queue_a_breach_notice(f"sqlite:///{data_dir / 'portal.sqlite3'}"))
            deadline = time.monotonic() + 60  # a limit for a stuck test, not a timing claim
            while not sink.messages and time.monotonic() < deadline:
                time.sleep(0.1)
        output = served.output()
    finally:
        sink.stop()

    assert [m["To"] for m in sink.messages] == ["sec@acme.example"], output
    assert "Application shutdown complete" in output and "Traceback" not in output  # the loop ended with it
