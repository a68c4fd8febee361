"""Fixtures: the database (SQLite and PostgreSQL), the app, an SMTP sink, test data and logged-in clients.

Every test runs once per database backend (``[sqlite]`` / ``[postgresql]`` in its id). Data is committed for real
(the command line, a live server and concurrent writers must all see it) and every table is emptied after each
test. Under ``CI=true`` a skipped test counts as a failure: a missing browser or database must not pass silently.
"""

from __future__ import annotations

import asyncio
import email
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from argon2 import PasswordHasher
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from portal.accounts.models import Membership, Organisation, User
from portal.accounts.roles import OrgKind, Role
from portal.accounts.service import add_membership, create_client_org, create_user, create_vendor_org
from portal.accounts.sessions import SESSION_COOKIE, start_session
from portal.actors import Actor
from portal.app import create_app
from portal.audit.models import GENESIS_HASH, AuditHead
from portal.db import commit_and_run_jobs, load_models, make_engine, make_sessionmaker
from portal.migrations.config import upgrade
from portal.notifications.mail import Mailer
from portal.security import CSRF_COOKIE, csrf_token_for, use_password_hasher
from portal.settings import Settings

BACKENDS = [b for b in os.environ.get("PORTAL_TEST_DATABASES", "sqlite,postgresql").split(",") if b]
PG_ADMIN_URL = os.environ.get("PORTAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TEST_SECRET = "test-secret-key-not-for-production"
PASSWORD = "correct horse battery staple"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Still argon2id, with cheap parameters: each test creates people, and the default cost is meant to be slow.
use_password_hasher(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


# ---------------------------------------------------------------- CI: a skip is a failure

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


# ---------------------------------------------------------------- databases

def _on_postgres_server(sql: str) -> None:
    """Run one statement on the PostgreSQL server's maintenance database (CREATE/DROP DATABASE)."""
    import asyncpg

    async def run() -> None:
        connection = await asyncpg.connect(PG_ADMIN_URL.replace("postgresql://", "postgres://", 1))
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run())


def _create_pg_database() -> str:
    name = f"portal_test_{uuid.uuid4().hex[:10]}"
    _on_postgres_server(f'CREATE DATABASE "{name}"')
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_pg_database(url: str) -> None:
    _on_postgres_server(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A freshly migrated database of each backend, for the whole run."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'portal.sqlite3'}"
        upgrade(url)
        yield url
        return
    try:
        url = _create_pg_database()
    except OSError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    try:
        upgrade(url)
        yield url
    finally:
        _drop_pg_database(url)


@pytest.fixture(scope="session")
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture(scope="session")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(database_url)
    yield engine
    await engine.dispose()


async def empty_database(engine: AsyncEngine) -> None:
    """Delete every row (children first) and reset the audit chain to its genesis."""
    metadata = load_models()
    async with engine.begin() as connection:
        for table in reversed(metadata.sorted_tables):
            await connection.execute(delete(table))
        await connection.execute(insert(AuditHead).values(id=1, last_seq=0, last_hash=GENESIS_HASH))


@pytest.fixture(scope="session")
async def test_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The engine behind the ``db`` fixture (on SQLite each of its statements commits at once)."""
    engine = make_engine(database_url, sqlite_autocommit=True)
    yield engine
    await engine.dispose()


@pytest.fixture
async def db(engine: AsyncEngine, test_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for arranging and inspecting data; the database is emptied after the test.

    Commit (``world.commit()``) what you arrange before calling the app: on PostgreSQL an open transaction of
    the test would hold its locks while the app waits for them.
    """
    try:
        async with make_sessionmaker(test_engine)() as session:
            yield session
    finally:
        await empty_database(engine)


# ---------------------------------------------------------------- SMTP sink

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SMTPSink:
    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd API)
        message = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]

    def last_to(self, address: str) -> EmailMessage:
        found = self.to(address)
        assert found, f"no mail to {address}; mail went to {[m['To'] for m in self.messages]}"
        return found[-1]

    @staticmethod
    def text_of(message: EmailMessage) -> str:
        part = message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    def link_in(self, message: EmailMessage, path_prefix: str) -> str:
        match = re.search(r"https?://\S+?(" + re.escape(path_prefix) + r"\S+)", self.text_of(message))
        assert match, f"no {path_prefix} link in: {self.text_of(message)}"
        return match.group(1)


@pytest.fixture(scope="session")
def smtp_sink() -> Iterator[SMTPSink]:
    sink = SMTPSink("127.0.0.1", free_port())
    controller = Controller(sink, hostname=sink.host, port=sink.port)
    controller.start()
    yield sink
    controller.stop()


@pytest.fixture
def mail(smtp_sink: SMTPSink) -> Iterator[SMTPSink]:
    smtp_sink.messages.clear()
    yield smtp_sink
    smtp_sink.messages.clear()


# ---------------------------------------------------------------- the app

def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir, "database_url": database_url, "secret_key": TEST_SECRET,
        "base_url": "http://testserver", "vendor_name": "Lumen AI", **overrides,
    }
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path, smtp_sink: SMTPSink) -> Settings:
    return make_settings(database_url, tmp_path, smtp_url=smtp_sink.url)


@pytest.fixture
def app(settings: Settings, engine: AsyncEngine, db: AsyncSession) -> Any:
    return create_app(settings, engine=engine, mailer=Mailer.from_settings(settings))


@pytest.fixture
async def client(app: Any, mail: SMTPSink) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous browser-like client (cookies kept, redirects not followed)."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


async def csrf(client: httpx.AsyncClient) -> str:
    """The form token for ``client``'s CSRF cookie (fetching a page first if it has none)."""
    if CSRF_COOKIE not in client.cookies:
        await client.get("/login")
    return csrf_token_for(TEST_SECRET, client.cookies[CSRF_COOKIE])


async def post_form(client: httpx.AsyncClient, url: str, data: dict[str, Any] | None = None,
                    **kwargs: Any) -> httpx.Response:
    """POST a form the way the browser does, with its CSRF token."""
    return await client.post(url, data={"csrf_token": await csrf(client), **(data or {})}, **kwargs)


# ---------------------------------------------------------------- test data

class World:
    """Builds organisations and people through the real services and commits them."""

    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.system = Actor.system("test")
        self._vendor: Organisation | None = None

    async def commit(self) -> None:
        await commit_and_run_jobs(self.session)

    async def vendor(self) -> Organisation:
        if self._vendor is None:
            self._vendor = await create_vendor_org(self.session, actor=self.system, name="Lumen AI GmbH")
            await self.commit()
        return self._vendor

    async def client_org(self, name: str = "Acme Logistics") -> Organisation:
        await self.vendor()
        org = await create_client_org(self.session, actor=self.system, name=name)
        await self.commit()
        return org

    async def person(self, org: Organisation, *roles: Role | str, email: str | None = None,
                     name: str | None = None, password: str | None = PASSWORD) -> Membership:
        if not roles:
            roles = (Role.OWNER,) if org.kind is OrgKind.VENDOR else (Role.ADMIN,)
        email = email or f"{uuid.uuid4().hex[:8]}@{org.slug}.example"
        user = await create_user(self.session, email=email, name=name or email.split("@")[0].title(),
                                 password=password)
        membership = await add_membership(self.session, actor=self.system, org=org, user=user, roles=roles)
        await self.commit()
        return membership

    async def login_cookie(self, user: User, org: Organisation) -> str:
        token, _ = await start_session(self.session, user=user, org=org, method="password", ip="127.0.0.1",
                                       user_agent="pytest", settings=self.settings, second_factor_done=True)
        await self.commit()
        return token


@pytest.fixture
def world(db: AsyncSession, settings: Settings) -> World:
    return World(db, settings)


@pytest.fixture
async def login_as(app: Any, world: World, mail: SMTPSink) -> AsyncIterator[Any]:
    """``await login_as(membership)`` gives a new client logged in as that member (session made directly)."""
    clients: list[httpx.AsyncClient] = []

    async def make(membership: Membership) -> httpx.AsyncClient:
        user = await world.session.get_one(User, membership.user_id)
        org = await world.session.get_one(Organisation, membership.org_id)
        token = await world.login_cookie(user, org)
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                              cookies={SESSION_COOKIE: token})
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()
