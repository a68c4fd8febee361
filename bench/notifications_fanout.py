"""Fan-out benchmark: one notice to 10,000 client organisations, 3 recipients each, on PostgreSQL.

Each organisation has two privacy contacts (email to an aiosmtpd sink) and one webhook endpoint (a local HTTP
receiver), so one sub-processor change notice makes 30,000 deliveries. The script measures

1. enqueue: ``notify(...)`` for every organisation and the commit, i.e. the business transaction's extra cost;
2. the floor: the 30,000 messages rendered and signed beforehand, then pushed to the same sinks by
   ``--concurrency`` lanes with the same client libraries (aiosmtplib, httpx2), no database;
3. the baseline, a minimal sender: the same lanes rendering each message (the portal's templates) and signing each
   webhook as they push it, still no database;
4. the portal: one worker as ``portal worker --once`` runs it (claim, load, render, send, record each attempt),

and prints the worker's throughput as a ratio of the baseline's (and of the floor's). The sinks run in their own
processes. Everything happens in a scratch database that is dropped at the end.

    python bench/notifications_fanout.py [--orgs 10000] [--concurrency 16] [--batch 128]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from loopback import free_port, wait_for_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PG_ADMIN_URL = os.environ.get("PORTAL_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET_KEY = "bench-secret-key"  # noqa: S105 - a throwaway database's key


# ---------------------------------------------------------------- sinks (child processes)

def serve_smtp(port: int) -> None:
    """An aiosmtpd sink that accepts everything and counts it; prints the count when stopped."""
    from aiosmtpd.controller import Controller

    class Count:
        received = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            Count.received += 1
            return "250 2.0.0 Ok: queued"

    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    _wait_for_signal()
    controller.stop()
    print(f"smtp {Count.received}", flush=True)


def serve_http(port: int) -> None:
    """A bare ASGI webhook receiver answering 204 to every POST; prints the count when stopped."""
    import uvicorn

    received = 0

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal received
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        received += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    # Served from a thread, so that uvicorn leaves signals alone and the count can be printed at the end.
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                           access_log=False))
    thread = threading.Thread(target=server.run)
    thread.start()
    _wait_for_signal()
    server.should_exit = True
    thread.join()
    print(f"http {received}", flush=True)


def _wait_for_signal() -> None:
    stop = False

    def handler(signum: int, frame: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop:
        time.sleep(0.1)


# ---------------------------------------------------------------- scratch database

def on_server(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql://", "postgres://", 1))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


async def populate(url: str, orgs: int, webhook_url: str) -> None:
    """Organisations, people and endpoints written in bulk (this is set-up, not measured)."""
    from sqlalchemy import insert

    from portal.accounts.models import Membership, MembershipRole, Organisation, User
    from portal.accounts.roles import OrgKind, Role
    from portal.db import make_engine, utcnow
    from portal.notifications.models import WebhookEndpoint
    from portal.notifications.webhooks import new_secret
    from portal.security import encrypt_field

    engine = make_engine(url)
    now = utcnow()
    secret = encrypt_field(SECRET_KEY, new_secret())
    org_rows, user_rows, member_rows, role_rows, endpoint_rows = [], [], [], [], []
    org_rows.append({"id": uuid.uuid4(), "kind": OrgKind.VENDOR, "name": "Lumen AI GmbH", "slug": "lumen-ai",
                     "sso_enforced": False, "created_at": now})
    for n in range(orgs):
        org_id = uuid.uuid4()
        org_rows.append({"id": org_id, "kind": OrgKind.CLIENT, "name": f"Client {n:05d} GmbH",
                         "slug": f"client-{n:05d}", "sso_enforced": False, "created_at": now})
        for k in range(2):
            user_id, member_id = uuid.uuid4(), uuid.uuid4()
            user_rows.append({"id": user_id, "email": f"privacy{k}@client-{n:05d}.example",
                              "name": f"Privacy Contact {k}", "password_hash": None, "created_at": now})
            member_rows.append({"id": member_id, "org_id": org_id, "user_id": user_id, "created_at": now})
            role_rows.append({"membership_id": member_id, "role": Role.PRIVACY_CONTACT})
        endpoint_rows.append({"id": uuid.uuid4(), "org_id": org_id, "url": f"{webhook_url}/hooks/{n:05d}",
                              "description": "GRC tool", "topics": ["subprocessors"], "secret_encrypted": secret,
                              "enabled": True, "created_at": now})
    async with engine.begin() as connection:
        for model, rows in ((Organisation, org_rows), (User, user_rows), (Membership, member_rows),
                            (MembershipRole, role_rows), (WebhookEndpoint, endpoint_rows)):
            for start in range(0, len(rows), 5000):
                await connection.execute(insert(model), rows[start:start + 5000])
    async with engine.connect() as connection:
        await connection.exec_driver_sql("ANALYZE")
    await engine.dispose()


# ---------------------------------------------------------------- the three measurements

@dataclass
class Figures:
    cpu: ClassVar[dict[str, float]] = {}  # CPU seconds of this process in each phase
    deliveries: int = 0
    enqueue_s: float = 0.0
    floor_s: float = 0.0
    baseline_s: float = 0.0
    worker_s: float = 0.0


def content() -> Any:
    from portal.notifications import catalog

    return catalog.subprocessor_change(
        version=12, effective_date=dt.date(2027, 1, 15), objection_deadline=dt.date(2027, 1, 10),
        changes=[{"kind": "added", "name": "Kestrel Vector GmbH", "purpose": "Embedding search",
                  "locations": ["DE", "NL"], "transfer_mechanism": ""},
                 {"kind": "removed", "name": "Old Mail Relay Ltd"}],
        link="https://portal.lumen.example/subprocessors")


async def enqueue(url: str) -> tuple[float, int]:
    from sqlalchemy import func, select

    from portal.accounts.models import Organisation
    from portal.accounts.roles import OrgKind
    from portal.actors import Actor
    from portal.db import make_engine, make_sessionmaker
    from portal.notifications.models import Delivery
    from portal.notifications.service import notify

    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        orgs = (await session.execute(select(Organisation).where(Organisation.kind == OrgKind.CLIENT)
                                      .order_by(Organisation.slug))).scalars().all()
        await session.commit()
        started = time.perf_counter()
        await notify(session, actor=Actor.system("bench"), content=content(), orgs=orgs)
        await session.commit()
        elapsed = time.perf_counter() - started
        count = await session.scalar(select(func.count()).select_from(Delivery))
    await engine.dispose()
    return elapsed, int(count or 0)


async def baseline(url: str, settings: Any, smtp_port: int, concurrency: int, *, prepared: bool) -> float:
    """The same messages pushed by ``concurrency`` lanes with no database: rendered and signed as each is pushed
    (the minimal sender), or all beforehand (``prepared``: the floor, pushing bytes only)."""
    import aiosmtplib
    import httpx2
    from sqlalchemy import select

    from portal.db import make_engine, make_sessionmaker
    from portal.notifications.email_sender import EmailSender, FileTransport
    from portal.notifications.models import Channel, Delivery
    from portal.notifications.senders import Job, load_jobs
    from portal.notifications.webhooks import WebhookSender, signed_headers, signing_secrets

    composer = EmailSender(settings, FileTransport(Path(tempfile.gettempdir())))
    bodies = WebhookSender(settings)

    def email(job: Job) -> tuple[str, Any, Any]:
        return "email", job.delivery.email, composer.compose(job)

    def webhook(job: Job) -> tuple[str, Any, Any]:
        assert job.endpoint is not None
        now = dt.datetime.now(dt.UTC)
        body = bodies.body(job.delivery, job.notice)
        headers = signed_headers(job.delivery.webhook_id, int(now.timestamp()), body,
                                 signing_secrets(job.endpoint, settings.secret_key, now))
        return "webhook", job.endpoint.url, (body, headers)

    def message(job: Job) -> tuple[str, Any, Any]:
        return email(job) if job.delivery.channel is Channel.EMAIL else webhook(job)

    engine = make_engine(url)  # the recipients, in memory before the clock starts
    jobs: list[Job] = []
    async with make_sessionmaker(engine)() as session:
        ids = (await session.execute(select(Delivery.id))).scalars().all()
        for start in range(0, len(ids), 2000):
            jobs += (await load_jobs(session, ids[start:start + 2000], settings))[0]
    await engine.dispose()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(message(job) if prepared else job)
    client = httpx2.AsyncClient(timeout=15, follow_redirects=False, trust_env=False)

    async def lane() -> None:
        smtp: aiosmtplib.SMTP | None = None
        sent_on_connection = 0
        while not queue.empty():
            item = queue.get_nowait()
            kind, to, payload = item if prepared else message(item)
            if kind == "email":
                if smtp is None or sent_on_connection >= 100:
                    if smtp is not None:
                        await smtp.quit()
                    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, local_hostname="bench")
                    await smtp.connect()
                    sent_on_connection = 0
                await smtp.sendmail("notices@lumen.example", [to], payload)
                sent_on_connection += 1
            else:
                body, headers = payload
                answer = await client.post(to, content=body, headers={**headers, "content-type": "application/json"})
                assert answer.status_code == 204
        if smtp is not None:
            await smtp.quit()

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    Figures.cpu["floor" if prepared else "baseline"] = time.process_time() - cpu
    await client.aclose()
    await bodies.aclose()
    return elapsed


async def worker(url: str, settings: Any, concurrency: int, batch: int) -> float:
    """One worker as `portal worker --once` runs it, in this process."""
    from sqlalchemy import func, select

    from portal.db import make_engine, make_sessionmaker
    from portal.notifications.models import Delivery, DeliveryStatus
    from portal.notifications.worker import WorkerOptions, run_worker

    started, cpu = time.perf_counter(), time.process_time()
    stats = await run_worker(settings, WorkerOptions(batch=batch, concurrency=concurrency), once=True)
    elapsed = time.perf_counter() - started
    Figures.cpu["worker"] = time.process_time() - cpu
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        unsent = await session.scalar(select(func.count()).select_from(Delivery)
                                      .where(Delivery.status != DeliveryStatus.SENT))
    await engine.dispose()
    if unsent or stats.failed:
        raise RuntimeError(f"the worker left {unsent} deliveries unsent ({stats})")
    return elapsed


# ---------------------------------------------------------------- main

def run(coroutine: Any) -> Any:
    """The event loop `portal worker` uses (uvloop when installed, as uvicorn does), for every measured phase."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def machine() -> str:
    memory = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({cpu}), {memory}, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--serve-smtp", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-http", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_smtp:
        serve_smtp(args.serve_smtp)
        return
    if args.serve_http:
        serve_http(args.serve_http)
        return

    from portal.migrations.config import upgrade
    from portal.settings import Settings

    name = f"portal_bench_{uuid.uuid4().hex[:8]}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    smtp_port, http_port = free_port(), free_port()
    sinks = [subprocess.Popen([sys.executable, __file__, f"--serve-{kind}", str(port)],  # noqa: S603 - this script
                              stdout=subprocess.PIPE, text=True)
             for kind, port in (("smtp", smtp_port), ("http", http_port))]
    on_server(f'CREATE DATABASE "{name}"')
    figures = Figures()
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            settings = Settings(data_dir=Path(data_dir), database_url=url, secret_key=SECRET_KEY,
                                base_url="https://portal.lumen.example", vendor_name="Lumen AI",
                                smtp_url=f"smtp://127.0.0.1:{smtp_port}", webhook_allow_private=True,
                                mail_from="Lumen AI notices <notices@lumen.example>")
            upgrade(url)
            wait_for_port(smtp_port)
            wait_for_port(http_port)
            print(f"machine: {machine()}")
            print(f"populating {args.orgs} client organisations ...", flush=True)
            asyncio.run(populate(url, args.orgs, f"http://127.0.0.1:{http_port}"))
            figures.enqueue_s, figures.deliveries = run(enqueue(url))

            def report(label: str, what: str, seconds: float, phase: str) -> None:
                print(f"{label + ':':9} {figures.deliveries / seconds:6,.0f} messages/s in {seconds:5.1f} s, "
                      f"{Figures.cpu[phase] / figures.deliveries * 1000:.2f} ms CPU per message ({what})",
                      flush=True)

            print(f"enqueue: {figures.deliveries} deliveries in {figures.enqueue_s:.2f} s "
                  f"({figures.deliveries / figures.enqueue_s:,.0f}/s; target under 5 s)", flush=True)
            figures.floor_s = run(baseline(url, settings, smtp_port, args.concurrency, prepared=True))
            report("floor", "bytes prepared beforehand, pushed", figures.floor_s, "floor")
            figures.baseline_s = run(baseline(url, settings, smtp_port, args.concurrency, prepared=False))
            report("baseline", "minimal sender: render, sign, push", figures.baseline_s, "baseline")
            figures.worker_s = run(worker(url, settings, args.concurrency, args.batch))
            report("worker", "one `portal worker`", figures.worker_s, "worker")
            print(f"ratio worker/baseline: {figures.baseline_s / figures.worker_s:.2f} (target at least 0.5); "
                  f"worker/floor: {figures.floor_s / figures.worker_s:.2f}")
    finally:
        for sink in sinks:
            sink.send_signal(signal.SIGTERM)
        for sink in sinks:
            out, _ = sink.communicate(timeout=30)
            print(f"sink received: {out.strip()}")
        on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
