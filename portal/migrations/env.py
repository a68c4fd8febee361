"""Alembic environment: runs migrations through the portal's async engine."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection

from portal.db import StrEnumColumn, load_models, make_engine

config = context.config
target_metadata = load_models()


def _render_item(kind: str, item: Any, autogen_context: Any) -> str | Literal[False]:
    # An enum column is a plain VARCHAR in the schema; the enum class is the model's business.
    if kind == "type" and isinstance(item, StrEnumColumn):
        return f"sa.String(length={item.impl.length})"
    return False


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_item=_render_item,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = make_engine(config.attributes["database_url"], pool=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run `portal db upgrade`")
asyncio.run(_run_online())
