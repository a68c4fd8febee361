"""Public sub-processor list benchmark: `/subprocessors` and `/subprocessors.json` against a bare Starlette app.

Seeds a registry of 200 entries published over 50 versions (the last three announced and not yet in force, some
entries engaged by others, some outside the EEA with a transfer mechanism) in a fresh SQLite database under a
temporary directory, or in the empty PostgreSQL database given with ``--database-url``. Then, in the same run, on
the same machine, with the same HTTP client and the same concurrency:

1. the baseline: a bare Starlette app (one uvicorn worker) answering each path with the portal's bytes, fixed;
2. the portal: ``create_app`` under one uvicorn worker, exactly the routes anonymous readers hit.

Each is measured ``--rounds`` times, alternating, with ``--requests`` requests over ``--concurrency`` keep-alive
connections each time; the best round of each counts. It prints requests per second and the ratio portal/baseline
(target at least 0.5). The client is a minimal HTTP/1.1 keep-alive client on asyncio streams: httpx tops out near
1,000 requests per second with concurrency (see the engineering notes), which would measure the client, not the
servers; ``--client httpx`` runs the same measurement through ``httpx.AsyncClient`` for comparison.

    python bench/subprocessors_public.py [--database-url URL] [--requests 3000] [--concurrency 16] [--rounds 3]
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
import time
from pathlib import Path
from typing import Any

from loopback import free_port, wait_for_port

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PATHS = ("/subprocessors", "/subprocessors.json")
SECRET_KEY = "bench-secret-key"  # noqa: S105 - a throwaway database's key
COUNTRIES = ("DE", "IE", "FR", "NL", "US", "JP", "GB", "IN", "SE", "CH")  # US and IN need a transfer mechanism


# ---------------------------------------------------------------- seeding (not measured)

def entry(n: int, parent_id: str = "", revision: int = 0) -> dict[str, Any]:
    name = f"Subprocessor {n:03d} {'AI Models' if n % 9 == 0 else 'Cloud'} GmbH"
    codes = sorted({COUNTRIES[n % len(COUNTRIES)], COUNTRIES[(n * 7 + revision) % len(COUNTRIES)], "DE"})
    outside = any(code in ("US", "IN") for code in codes)
    return {
        "name": name, "legal_entity": f"{name} (registered entity)", "address": f"Musterstrasse {n}, 10115 Berlin",
        "contact_name": f"Privacy Officer {n}", "contact_position": "Data protection officer",
        "contact_email": f"privacy{n}@subprocessor{n}.example",
        "purpose": f"Service {n}: processing for the platform (revision {revision})",
        "processing": "Stores and processes customer data on the vendor's instructions; responsible for the "
                      "security of its own infrastructure. " * 3,
        "data_categories": "Account data, Usage data, Prompts and outputs", "locations": ", ".join(codes),
        "transfer_mechanism": "scc_module_3" if outside else "", "transfer_details": "",
        "parent_id": parent_id, "ai_model_provider": "on" if n % 9 == 0 else "",
        "flow_down_reference": f"Sub-processing agreement {n}", "flow_down_date": "2025-01-15", "services": "",
    }


async def seed(url: str, *, entries: int, versions: int) -> None:
    """``entries`` entries over ``versions`` versions, published through the portal's own services, a week apart;
    the newest three are announced and not yet in force, so the page shows upcoming changes."""
    from sqlalchemy import func, select

    from portal.actors import Actor
    from portal.db import commit_and_run_jobs, make_engine, make_sessionmaker, utcnow
    from portal.subprocessors import publishing
    from portal.subprocessors.models import ListVersion

    engine = make_engine(url)
    actor = Actor.system("bench")
    first = entries - (versions - 1)  # then one addition and one change per version
    now = utcnow()
    async with make_sessionmaker(engine)() as session:
        if await session.scalar(select(func.count()).select_from(ListVersion)):
            raise SystemExit(f"{url} already holds a sub-processor list: give an empty database")
        ids: list[str] = []

        async def add(n: int) -> None:
            parent = ids[n - 5] if n % 10 == 5 and n >= 5 else ""  # every tenth entry is engaged by another
            draft = await publishing.draft_entry(session, actor=actor, raw=entry(n, parent))
            ids.append(str(draft.entry_id))

        for k in range(1, versions + 1):
            if k == 1:
                for n in range(first):
                    await add(n)
            else:
                await add(len(ids))
                changed = (k * 13) % len(ids)
                parent = ids[changed - 5] if changed % 10 == 5 and changed >= 5 else ""
                await publishing.draft_entry(session, actor=actor, entry_id=ids[changed],
                                             raw=entry(changed, parent, revision=k))
            announced = now - dt.timedelta(days=7 * (versions + 2 - k))
            await publishing.publish(session, actor=actor, summary=f"Bench version {k}",
                                     effective_date=(announced.date() + dt.timedelta(days=31)).isoformat(),
                                     default_notice_days=30, base_url="http://127.0.0.1", now=announced)
            await commit_and_run_jobs(session)
    await engine.dispose()


# ---------------------------------------------------------------- servers (child processes)

def serve_portal(port: int, url: str, data_dir: str) -> None:
    import uvicorn

    from portal.app import create_app
    from portal.settings import Settings

    settings = Settings(data_dir=Path(data_dir), database_url=url, secret_key=SECRET_KEY,
                        base_url=f"http://127.0.0.1:{port}", vendor_name="Lumen AI")
    uvicorn.run(create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                server_header=False, workers=1)


def serve_bare(port: int, fixtures: str) -> None:
    """A bare Starlette app answering each path with the bytes (and content type) the portal gave."""
    import json

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    answers = {path: (bytes.fromhex(body), media_type) for path, (body, media_type)
               in json.loads(Path(fixtures).read_text()).items()}

    def endpoint(path: str) -> Any:
        body, media_type = answers[path]

        async def answer(request: Request) -> Response:
            return Response(body, media_type=media_type)

        return answer

    app = Starlette(routes=[Route(path, endpoint(path), methods=["GET"]) for path in answers])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, server_header=False,
                workers=1)


# ---------------------------------------------------------------- the client

async def fetch(port: int, path: str) -> tuple[int, bytes, str]:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        response = await client.get(path)
    return response.status_code, response.content, response.headers["content-type"]


class RawConnection:
    """One HTTP/1.1 keep-alive connection: GET, read the head, read Content-Length bytes. Nothing else."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=2**20)
        return cls(reader, writer)

    async def get(self, path: str) -> tuple[int, int]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        await self.reader.readexactly(length)
        return status, length

    def close(self) -> None:
        self.writer.close()


async def measure(port: int, path: str, *, requests: int, concurrency: int, expected: int, client: str) -> float:
    """Requests per second for ``requests`` GETs of ``path`` over ``concurrency`` connections."""
    left = requests

    async def raw_lane() -> None:
        nonlocal left
        connection = await RawConnection.open(port)
        while left > 0:
            left -= 1
            status, length = await connection.get(path)
            if status != 200 or length != expected:
                raise RuntimeError(f"{path}: {status}, {length} bytes (expected {expected})")
        connection.close()

    if client == "raw":
        started = time.perf_counter()
        await asyncio.gather(*(raw_lane() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)

    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as http:

        async def httpx_lane() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                response = await http.get(path)
                if response.status_code != 200 or len(response.content) != expected:
                    raise RuntimeError(f"{path}: {response.status_code}, {len(response.content)} bytes")

        started = time.perf_counter()
        await asyncio.gather(*(httpx_lane() for _ in range(concurrency)))
        return requests / (time.perf_counter() - started)


# ---------------------------------------------------------------- main

def machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, {platform.system()}; "
            f"client, portal and baseline on the same machine")


def run(coroutine: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def start(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, *args])  # noqa: S603 - this script


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def compare(args: argparse.Namespace, portal_port: int, bare_port: int,
                  sizes: dict[str, int]) -> dict[str, tuple[float, float]]:
    best: dict[str, tuple[float, float]] = {}
    for path in PATHS:
        options = {"requests": args.requests, "concurrency": args.concurrency, "expected": sizes[path],
                   "client": args.client}
        for port in (bare_port, portal_port):  # warm-up: connections, caches, the first render
            await measure(port, path, **{**options, "requests": min(500, args.requests)})
        bare, portal = 0.0, 0.0
        for round_ in range(1, args.rounds + 1):
            b = await measure(bare_port, path, **options)
            p = await measure(portal_port, path, **options)
            print(f"  {path:22} round {round_}: baseline {b:7,.0f} req/s, portal {p:7,.0f} req/s, ratio {p / b:.2f}",
                  flush=True)
            bare, portal = max(bare, b), max(portal, p)
        best[path] = (bare, portal)
    # A reference for reading the ratio: the portal's own floor for any request that touches the database (the same
    # middleware, one session, ``SELECT 1``, a 15-byte body).
    options = {"requests": args.requests, "concurrency": args.concurrency, "expected": sizes["/healthz"],
               "client": args.client}
    best["/healthz"] = (0.0, max([await measure(portal_port, "/healthz", **options) for _ in range(args.rounds)]))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: SQLite in a temp dir)")
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--versions", type=int, default=50)
    parser.add_argument("--requests", type=int, default=3000, help="requests per measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--serve-portal", nargs=3, metavar=("PORT", "URL", "DATA_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-bare", nargs=2, metavar=("PORT", "FIXTURES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_portal:
        serve_portal(int(args.serve_portal[0]), args.serve_portal[1], args.serve_portal[2])
        return
    if args.serve_bare:
        serve_bare(int(args.serve_bare[0]), args.serve_bare[1])
        return

    import json

    from portal.migrations.config import upgrade

    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory() as data_dir:
        url = args.database_url or f"sqlite:///{Path(data_dir) / 'bench.sqlite3'}"
        upgrade(url)
        started = time.perf_counter()
        asyncio.run(seed(url, entries=args.entries, versions=args.versions))
        print(f"seeded {args.entries} entries over {args.versions} versions in {time.perf_counter() - started:.1f} s "
              f"({'PostgreSQL' if url.startswith('postgresql') else 'SQLite'})", flush=True)
        portal_port, bare_port = free_port(), free_port()
        servers = [start("--serve-portal", str(portal_port), url, data_dir)]
        try:
            wait_for_port(portal_port)
            fixtures: dict[str, tuple[str, str]] = {}
            sizes: dict[str, int] = {}
            for path in PATHS:
                status, body, media_type = run(fetch(portal_port, path))
                assert status == 200, (path, status)
                fixtures[path], sizes[path] = (body.hex(), media_type), len(body)
                print(f"{path}: {len(body):,} bytes ({media_type})", flush=True)
            sizes["/healthz"] = len(run(fetch(portal_port, "/healthz"))[1])
            fixture_file = Path(data_dir) / "fixtures.json"
            fixture_file.write_text(json.dumps(fixtures))
            servers.append(start("--serve-bare", str(bare_port), str(fixture_file)))
            wait_for_port(bare_port)
            print(f"{args.requests} requests per measurement over {args.concurrency} connections "
                  f"({args.client} client), best of {args.rounds} rounds:", flush=True)
            best = run(compare(args, portal_port, bare_port, sizes))
        finally:
            for server in servers:
                stop(server)
    for path in PATHS:
        bare, portal = best[path]
        print(f"{path:22} baseline {bare:7,.0f} req/s  portal {portal:7,.0f} req/s  ratio {portal / bare:.2f} "
              "(target at least 0.5)")
    print(f"{'/healthz':22} portal {best['/healthz'][1]:7,.0f} req/s (reference: the same middleware and one "
          "SELECT 1 per request)")


if __name__ == "__main__":
    main()
