"""Password login with rate limiting, TOTP second factor, password reset and password change.

Invariants:
- a failed login says the same thing whether the account exists or not, and costs the same time;
- after ``PORTAL_LOGIN_MAX_FAILURES`` failures in 15 minutes for an address (four times that for a client address)
  further attempts are refused without checking the password;
- members of an organisation that enforces single sign-on cannot log in or reset with a password;
- a TOTP code is accepted once (the step is remembered);
- resetting or changing a password ends the user's other sessions.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pyotp
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from portal import audit
from portal.accounts.models import LoginFailure, Organisation, PasswordReset, User
from portal.accounts.service import checked_password, memberships_of_user, user_by_email
from portal.accounts.sessions import end_sessions_of
from portal.actors import Actor
from portal.db import utcnow
from portal.errors import InvalidInput, TooManyRequests
from portal.notifications.mail import Mailer
from portal.security import decrypt_field, encrypt_field, hash_password, hash_token, new_token, verify_password
from portal.settings import Settings

LOGIN_FAILED = "That email address and password do not match an account. Check both and try again."
RATE_WINDOW = dt.timedelta(minutes=15)
RESET_VALID_FOR = dt.timedelta(hours=1)
TOTP_ISSUER = "DPA portal"


def user_actor(user: User, ip: str, org: Organisation | None = None) -> Actor:
    return Actor(label=f"user:{user.email}", user=user, org=org, ip=ip)


async def _failures_since(session: AsyncSession, key: str, since: dt.datetime) -> int:
    return int((await session.execute(
        select(func.count()).select_from(LoginFailure).where(LoginFailure.key == key, LoginFailure.at > since)
    )).scalar_one())


async def check_rate_limit(session: AsyncSession, *, email: str, ip: str, settings: Settings) -> None:
    since = utcnow() - RATE_WINDOW
    if (await _failures_since(session, f"email:{email}", since) >= settings.login_max_failures
            or await _failures_since(session, f"ip:{ip}", since) >= settings.login_max_failures * 4):
        raise TooManyRequests("Too many failed attempts. Wait 15 minutes and try again, or reset your password.")


async def record_failure(session: AsyncSession, *, email: str, ip: str) -> None:
    now = utcnow()
    session.add_all([LoginFailure(id=uuid.uuid4(), key=f"email:{email}", at=now),
                     LoginFailure(id=uuid.uuid4(), key=f"ip:{ip}", at=now)])
    # Old failures are of no use to the limit; keep the table small.
    await session.execute(delete(LoginFailure).where(LoginFailure.at < now - RATE_WINDOW * 4))
    await session.flush()


async def authenticate(session: AsyncSession, *, email: str, password: str, ip: str,
                       settings: Settings) -> User:
    """The user whose password this is, or InvalidInput with one generic message (and the failure recorded)."""
    email = email.strip().lower()
    await check_rate_limit(session, email=email, ip=ip, settings=settings)
    user = await user_by_email(session, email) if email else None
    if user is None or user.disabled_at is not None or not verify_password(user.password_hash, password):
        await record_failure(session, email=email, ip=ip)
        if user is not None:
            await audit.record(session, actor=user_actor(user, ip), tag="user:login_failed", subject=user,
                               data={"reason": "password"})
        raise InvalidInput(LOGIN_FAILED)
    if any(m.org.sso_enforced for m in await memberships_of_user(session, user)):
        raise InvalidInput("Your organisation signs in with single sign-on: enter only your work email address "
                           "and choose “Log in” to continue at your identity provider.")
    return user


# ---------------------------------------------------------------- TOTP

def new_totp_secret() -> str:
    return str(pyotp.random_base32())


def totp_uri(secret: str, email: str) -> str:
    return str(pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER))


def _matching_step(secret: str, code: str, now: dt.datetime) -> int | None:
    code = "".join(code.split())
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    step = int(now.timestamp()) // totp.interval
    for candidate in (step, step - 1, step + 1):  # one step of clock drift either way
        if totp.at(candidate * totp.interval) == code:
            return candidate
    return None


async def enable_totp(session: AsyncSession, *, user: User, secret: str, code: str, settings: Settings,
                      ip: str) -> None:
    """Turn on TOTP once the user proves their authenticator shows the right code for ``secret``."""
    step = _matching_step(secret, code, utcnow())
    if step is None:
        raise InvalidInput("That code is not right. Check the time on your phone and enter the current 6-digit "
                           "code.", fields={"code": "Wrong code."})
    user.totp_secret = encrypt_field(settings.secret_key, secret)
    user.totp_enabled_at = utcnow()
    user.totp_last_step = step
    await audit.record(session, actor=user_actor(user, ip), tag="user:totp_enabled", subject=user)


async def check_totp(session: AsyncSession, *, user: User, code: str, settings: Settings, ip: str) -> None:
    """Accept a fresh code for ``user`` or raise InvalidInput (failures count towards the rate limit)."""
    await check_rate_limit(session, email=user.email, ip=ip, settings=settings)
    secret = decrypt_field(settings.secret_key, user.totp_secret or "")
    step = _matching_step(secret, code, utcnow())
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        await record_failure(session, email=user.email, ip=ip)
        await audit.record(session, actor=user_actor(user, ip), tag="user:login_failed", subject=user,
                           data={"reason": "totp"})
        raise InvalidInput("That code is not right, or was already used. Enter the current code from your "
                           "authenticator app.", fields={"code": "Wrong code."})
    user.totp_last_step = step


async def disable_totp(session: AsyncSession, *, user: User, code: str, settings: Settings, ip: str) -> None:
    await check_totp(session, user=user, code=code, settings=settings, ip=ip)
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    await audit.record(session, actor=user_actor(user, ip), tag="user:totp_disabled", subject=user)


# ---------------------------------------------------------------- passwords

async def request_reset(session: AsyncSession, *, email: str, mailer: Mailer, ip: str) -> None:
    """Mail a reset link when the address has a password account; say nothing either way."""
    user = await user_by_email(session, email)
    if user is None or user.disabled_at is not None:
        return
    if any(m.org.sso_enforced for m in await memberships_of_user(session, user)):
        mailer.queue(session, to=user.email, notice="password_reset_sso", context={"name": user.name})
        return
    token = new_token()
    reset = PasswordReset(id=uuid.uuid4(), user_id=user.id, token_hash=hash_token(token),
                          expires_at=utcnow() + RESET_VALID_FOR)
    session.add(reset)
    await session.flush()
    await audit.record(session, actor=user_actor(user, ip), tag="user:password_reset_requested", subject=user)
    mailer.queue(session, to=user.email, notice="password_reset", context={
        "name": user.name, "link": f"{mailer.settings.base_url}/password/reset/{token}",
        "valid_minutes": int(RESET_VALID_FOR.total_seconds() // 60),
    })


async def reset_for_token(session: AsyncSession, token: str) -> PasswordReset:
    reset = (await session.execute(
        select(PasswordReset).where(PasswordReset.token_hash == hash_token(token))
    )).scalar_one_or_none()
    if reset is None or reset.used_at is not None or reset.expires_at <= utcnow():
        raise InvalidInput("This reset link is not valid any more: links work once and for one hour. "
                           "Ask for a new one.")
    return reset


async def reset_password(session: AsyncSession, *, token: str, password: str, password_confirm: str,
                         ip: str) -> User:
    """Set a new password from a reset link; the link is used up and every session of the user ends."""
    reset = await reset_for_token(session, token)
    user = await session.get_one(User, reset.user_id)
    checked_password(password, password_confirm, email=user.email, name=user.name)
    user.password_hash = hash_password(password)
    reset.used_at = utcnow()
    await end_sessions_of(session, user)
    await audit.record(session, actor=user_actor(user, ip), tag="user:password_reset", subject=user)
    return user


async def change_password(session: AsyncSession, *, user: User, current: str, password: str,
                          password_confirm: str, keep_session: str, ip: str) -> None:
    """Change the password (the current one is required); the user's other sessions end."""
    if not verify_password(user.password_hash, current):
        raise InvalidInput("Your current password is not right.", fields={"current_password": "Wrong password."})
    checked_password(password, password_confirm, email=user.email, name=user.name)
    user.password_hash = hash_password(password)
    await end_sessions_of(session, user, keep=keep_session)
    await audit.record(session, actor=user_actor(user, ip), tag="user:password_changed", subject=user)
