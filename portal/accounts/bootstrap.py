"""Creating the vendor organisation and its first owner from the command line."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from portal.accounts.models import User
from portal.accounts.roles import Role
from portal.accounts.service import (
    add_membership,
    checked_password,
    create_user,
    create_vendor_org,
    user_by_email,
    vendor_org,
)
from portal.actors import Actor
from portal.errors import Conflict


async def create_first_owner(session: AsyncSession, *, org_name: str, email: str, name: str,
                             password: str) -> User:
    """Create the vendor organisation (once) and an owner in it; also how a locked-out vendor gets back in."""
    cli = Actor.system("cli")
    org = await vendor_org(session)
    if org is None:
        org = await create_vendor_org(session, actor=cli, name=org_name)
    if await user_by_email(session, email) is not None:
        raise Conflict(f"An account for {email.strip().lower()} already exists.")
    checked_password(password, None, email=email, name=name)
    user = await create_user(session, email=email, name=name, password=password)
    await add_membership(session, actor=cli, org=org, user=user, roles=[Role.OWNER])
    return user
