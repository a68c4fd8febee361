"""Single sign-on per organisation through OpenID Connect."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from portal.accounts.sso.models import IdentityProvider, SSODomain


async def provider_for_email(session: AsyncSession, email: str) -> IdentityProvider | None:
    """The enabled identity provider covering ``email``'s domain, if any."""
    domain = email.rsplit("@", 1)[-1].strip().lower()
    return (await session.execute(
        select(IdentityProvider).join(SSODomain)
        .where(SSODomain.domain == domain, IdentityProvider.enabled.is_(True))
        .options(joinedload(IdentityProvider.org))
    )).scalar_one_or_none()
