"""Declarative base, shared column types, engine and session factory.

Invariants:
- every timestamp is stored and returned as an aware UTC datetime, on SQLite as on PostgreSQL;
- constraint names follow one convention, so migrations can name what they drop;
- on SQLite a transaction that will write starts with ``BEGIN IMMEDIATE`` (see ``write_intent``), so two writers
  wait for each other instead of failing with "database is locked" half way through a request.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import enum
import importlib
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from sqlalchemy import JSON, DateTime, MetaData, String, TypeDecorator, event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, mapped_column
from sqlalchemy.pool import NullPool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """``timestamptz`` that refuses naive datetimes and hands back aware UTC ones (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class StrEnumColumn(TypeDecorator[Any]):
    """A ``StrEnum`` stored by value in a VARCHAR and read back as the enum member."""

    impl = String
    cache_ok = True

    def __init__(self, enum_class: type[enum.StrEnum], length: int = 40) -> None:
        super().__init__(length)
        self.enum_class = enum_class

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum_class(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.enum_class(value)


class JSONDocument(TypeDecorator[Any]):
    """JSON everywhere, stored as JSONB on PostgreSQL."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())


uuid_pk = Annotated[uuid.UUID, mapped_column(primary_key=True, default=uuid.uuid4)]
created_at = Annotated[dt.datetime, mapped_column(UTCDateTime(), default=utcnow)]
timestamp = Annotated[dt.datetime, mapped_column(UTCDateTime())]
optional_timestamp = Annotated[dt.datetime | None, mapped_column(UTCDateTime(), nullable=True)]
short_text = Annotated[str, mapped_column(String(200))]
email_address = Annotated[str, mapped_column(String(320))]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSONDocument(), list[str]: JSONDocument()}


# Set to True by the request edge (and CLI commands) for work that will write, so SQLite takes its write lock first.
write_intent: contextvars.ContextVar[bool] = contextvars.ContextVar("write_intent", default=False)


def async_url(url: str) -> str:
    """Map the plain URLs people write (``postgresql://``, ``sqlite:///``) to the async drivers the portal uses."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, *, pool: bool = True, sqlite_autocommit: bool = False) -> AsyncEngine:
    """The async engine for ``url``. ``sqlite_autocommit`` (tests only) makes every SQLite statement its own
    transaction, so a test's inspecting session never holds a snapshot or a lock while the app works."""
    url = async_url(url)
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine, autocommit=sqlite_autocommit)
        return engine
    if not pool:
        return create_async_engine(url, poolclass=NullPool)
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


def _configure_sqlite(engine: AsyncEngine, *, autocommit: bool) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT; take it over (SQLAlchemy's recipe).
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA busy_timeout = 30000")
        cursor.close()

    if autocommit:
        return

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write_intent.get() else "BEGIN")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


AfterCommitJob = Callable[[], Awaitable[None]]


def after_commit(session: AsyncSession, job: AfterCommitJob) -> None:
    """Run ``job`` once ``session``'s transaction has committed (never if it rolls back)."""
    session.info.setdefault("after_commit", []).append(job)


async def commit_and_run_jobs(session: AsyncSession) -> None:
    """Commit, then run what was queued with ``after_commit``; the request edge and the CLI both end here."""
    await session.commit()
    for job in session.info.pop("after_commit", []):
        await job()


MODEL_MODULES = (
    "portal.accounts.models",
    "portal.agreements.models",
    "portal.ai_commitments.models",
    "portal.accounts.sso.models",
    "portal.accounts.tokens.models",
    "portal.audit.models",
    "portal.breaches.models",
    "portal.dpa.models",
    "portal.notifications.models",
    "portal.subprocessors.models",
)


def load_models() -> MetaData:
    """Import every domain's models so ``Base.metadata`` knows all tables (for Alembic and tests)."""
    for module in MODEL_MODULES:
        importlib.import_module(module)
    return Base.metadata

