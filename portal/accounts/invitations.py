"""Invitations by email link.

Invariants:
- a link is single use, expires after ``PORTAL_INVITATION_DAYS`` and only ever makes the invited address a member;
- one open invitation per address and organisation (resending replaces the link);
- accepting as an existing user requires that user's password, so a link cannot take over an account.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload

from portal import audit
from portal.accounts.models import Invitation, Organisation, User
from portal.accounts.roles import parse_roles
from portal.accounts.service import (
    add_membership,
    checked_name,
    checked_password,
    create_user,
    membership_of,
    normalise_email,
    require_manage_people,
    user_by_email,
)
from portal.actors import Actor
from portal.db import utcnow
from portal.errors import InvalidInput
from portal.notifications.mail import Mailer
from portal.security import hash_token, new_token, verify_password
from portal.tenancy import get_scoped, scoped

INVALID_LINK = ("This invitation link is not valid: it may have been used already, withdrawn or replaced by a newer "
                "one. Ask the person who invited you to send a new invitation.")
EXPIRED_LINK = "This invitation expired. Ask the person who invited you to send a new one."


async def open_invitations(session: AsyncSession, *, org: Organisation) -> list[Invitation]:
    now = utcnow()
    rows = (await session.execute(
        scoped(select(Invitation), Invitation, org)
        .where(Invitation.accepted_at.is_(None), Invitation.revoked_at.is_(None))
        .order_by(Invitation.created_at.desc())
    )).scalars().all()
    return [row for row in rows if row.expires_at > now]


async def invite(session: AsyncSession, *, actor: Actor, org: Organisation, email: str, name: str,
                 roles: Iterable[str], mailer: Mailer) -> Invitation:
    """Invite ``email`` to ``org`` with ``roles`` and mail the link (after commit)."""
    require_manage_people(actor, org)
    email = normalise_email(email)
    try:
        role_set = parse_roles(roles, org.kind)
    except ValueError as exc:
        raise InvalidInput(str(exc), fields={"roles": str(exc)}) from None
    existing_user = await user_by_email(session, email)
    if existing_user is not None and await membership_of(session, org=org, user_id=existing_user.id):
        raise InvalidInput(f"{email} is already a member of {org.name}.", fields={"email": "Already a member."})
    pending = [inv for inv in await open_invitations(session, org=org) if inv.email == email]
    if pending:
        raise InvalidInput(f"{email} already has an open invitation. Use “Resend” in the list of invitations to "
                           "send a new link.", fields={"email": "Already invited."})
    token = new_token()
    invitation = Invitation(
        id=uuid.uuid4(), org_id=org.id, email=email, name=" ".join(name.split())[:200],
        roles=sorted(role_set), token_hash=hash_token(token), invited_by_id=actor.user_id,
        expires_at=utcnow() + dt.timedelta(days=mailer.settings.invitation_days),
    )
    session.add(invitation)
    await session.flush()
    await audit.record(session, actor=actor, tag="invitation:created", subject=invitation,
                       data={"email": email, "roles": invitation.roles})
    _mail_link(session, mailer, invitation, org, token, inviter=actor)
    return invitation


async def resend(session: AsyncSession, *, actor: Actor, org: Organisation, invitation_id: str,
                 mailer: Mailer) -> Invitation:
    """Replace an open invitation's link with a fresh one (the old link stops working) and mail it."""
    require_manage_people(actor, org)
    invitation = await get_scoped(session, Invitation, invitation_id, org)
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise InvalidInput("This invitation was already accepted or withdrawn.")
    token = new_token()
    invitation.token_hash = hash_token(token)
    invitation.expires_at = utcnow() + dt.timedelta(days=mailer.settings.invitation_days)
    await session.flush()
    await audit.record(session, actor=actor, tag="invitation:resent", subject=invitation,
                       data={"email": invitation.email})
    _mail_link(session, mailer, invitation, org, token, inviter=actor)
    return invitation


async def revoke(session: AsyncSession, *, actor: Actor, org: Organisation, invitation_id: str) -> None:
    require_manage_people(actor, org)
    invitation = await get_scoped(session, Invitation, invitation_id, org)
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        await audit.record(session, actor=actor, tag="invitation:revoked", subject=invitation,
                           data={"email": invitation.email})


def _mail_link(session: AsyncSession, mailer: Mailer, invitation: Invitation, org: Organisation, token: str,
               *, inviter: Actor) -> None:
    mailer.queue(session, to=invitation.email, notice="invitation", context={
        "org_name": org.name,
        "inviter": inviter.user.name if inviter.user else mailer.settings.vendor_name or "The portal team",
        "roles": [r.replace("_", " ") for r in invitation.roles],
        "link": f"{mailer.settings.base_url}/invitations/{token}",
        "expires_at": invitation.expires_at,
    })


async def invitation_for_token(session: AsyncSession, token: str) -> Invitation:
    """The open invitation behind a link, or InvalidInput saying why it cannot be used."""
    invitation = (await session.execute(
        select(Invitation).where(Invitation.token_hash == hash_token(token)).options(joinedload(Invitation.org))
    )).scalar_one_or_none()
    if invitation is None or invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise InvalidInput(INVALID_LINK)
    if invitation.expires_at <= utcnow():
        raise InvalidInput(EXPIRED_LINK)
    return invitation


async def accept(session: AsyncSession, *, token: str, name: str, password: str, password_confirm: str | None,
                 ip: str) -> tuple[User, Invitation]:
    """Accept the invitation: create the account (or confirm the existing one by its password) and join."""
    invitation = await invitation_for_token(session, token)
    org = invitation.org
    user = await user_by_email(session, invitation.email)
    if user is None:
        name = checked_name(name or invitation.name)
        if org.sso_enforced:
            user = await create_user(session, email=invitation.email, name=name, password=None)
        else:
            checked_password(password, password_confirm, email=invitation.email, name=name)
            user = await create_user(session, email=invitation.email, name=name, password=password)
    elif not org.sso_enforced and not verify_password(user.password_hash, password):
        raise InvalidInput(f"An account for {user.email} already exists. Enter its password to join {org.name}.",
                           fields={"password": "Wrong password."})
    actor = Actor(label=f"user:{user.email}", org=org, user=user, ip=ip)
    await add_membership(session, actor=actor, org=org, user=user, roles=invitation.roles)
    invitation.accepted_at = utcnow()
    await audit.record(session, actor=actor, tag="invitation:accepted", subject=invitation,
                       data={"email": user.email, "roles": invitation.roles})
    return user, invitation
