"""``portal demo``: a realistic vendor with three client organisations (filled in as capabilities land)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


async def load_demo(session: AsyncSession) -> list[str]:
    return []
