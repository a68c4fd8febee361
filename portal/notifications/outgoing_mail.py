"""The vendor's outgoing-mail page: the ``.eml`` copy of every message, for when no SMTP server is configured.

Invariants: files are listed by name from the mail directory only (no path from the request is ever opened), a
capped number of bytes is read, and only the text part is shown, never the HTML.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import re
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from portal.accounts.roles import Role
from portal.actors import Actor
from portal.errors import Forbidden, NotFound

MAIL_READERS = frozenset({Role.OWNER, Role.LEGAL, Role.SECURITY})
MAIL_LISTED = 100
MAIL_HEADER_BYTES = 64 * 1024
MAIL_MAX_BYTES = 2 * 1024 * 1024
MAIL_MAX_TEXT = 100_000
_MAIL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:+,=@-]{0,250}\.eml$")


def can_read_mail(actor: Actor) -> bool:
    return actor.org is not None and actor.org.is_vendor and (
        actor.trusted or (actor.membership is not None and bool(actor.membership.roles & MAIL_READERS)))


def require_mail_reader(actor: Actor) -> None:
    """Vendor owners, legal and security staff read outgoing mail; other vendor staff get 403, others 404."""
    if actor.org is None or not actor.org.is_vendor:
        raise NotFound()
    if not can_read_mail(actor):
        raise Forbidden()


@dataclass(frozen=True)
class MailFile:
    name: str
    modified: dt.datetime
    size: int
    date: str
    sender: str
    to: str
    subject: str


@dataclass(frozen=True)
class MailMessage:
    file: MailFile
    headers: list[tuple[str, str]]
    text: str
    truncated: bool


def _header(message: EmailMessage, name: str) -> str:
    try:
        return " ".join(str(message.get(name, "")).split())[:500]
    except (ValueError, TypeError, IndexError, LookupError):
        return "(unreadable)"


def _parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _mail_file(path: Path) -> MailFile:
    stat = path.stat()
    with path.open("rb") as handle:
        message = _parse(handle.read(MAIL_HEADER_BYTES))
    return MailFile(path.name, dt.datetime.fromtimestamp(stat.st_mtime, dt.UTC), stat.st_size,
                    _header(message, "Date"), _header(message, "From"), _header(message, "To"),
                    _header(message, "Subject"))


def _mail_paths(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    paths = [p for p in directory.iterdir() if _MAIL_NAME.match(p.name) and p.is_file() and not p.is_symlink()]
    return sorted(paths, key=lambda p: (p.stat().st_mtime, p.name), reverse=True)


def _list_mail(directory: Path, limit: int) -> tuple[list[MailFile], int]:
    paths = _mail_paths(directory)
    return [_mail_file(p) for p in paths[:limit]], len(paths)


def _text_of(message: EmailMessage) -> str:
    try:
        part = message.get_body(preferencelist=("plain",))
        if part is None:
            return "(This message has no plain-text part.)"
        return str(part.get_content())
    except Exception:  # a damaged or exotic message is shown as unreadable, never rendered otherwise
        return "(The text of this message could not be decoded.)"


def _read_mail(directory: Path, name: str) -> MailMessage:
    if not _MAIL_NAME.match(name):
        raise NotFound()
    by_name = {p.name: p for p in _mail_paths(directory)}  # only files the listing itself would show
    path = by_name.get(name)
    if path is None:
        raise NotFound()
    with path.open("rb") as handle:
        data = handle.read(MAIL_MAX_BYTES + 1)
    message = _parse(data[:MAIL_MAX_BYTES])
    text = _text_of(message)
    headers = [(key, _header(message, key)) for key in
               ("Date", "From", "To", "Subject", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post")
               if key in message]
    truncated = len(data) > MAIL_MAX_BYTES or len(text) > MAIL_MAX_TEXT
    return MailMessage(_mail_file(path), headers, text[:MAIL_MAX_TEXT], truncated)


async def outgoing_mail(*, actor: Actor, directory: Path, limit: int = MAIL_LISTED) -> tuple[list[MailFile], int]:
    """The newest ``.eml`` files in the mail directory (and how many there are in all)."""
    require_mail_reader(actor)
    return await asyncio.to_thread(_list_mail, directory, limit)


async def outgoing_message(*, actor: Actor, directory: Path, name: str) -> MailMessage:
    """One ``.eml`` file of the listing, by name, with its headers and text part (capped)."""
    require_mail_reader(actor)
    return await asyncio.to_thread(_read_mail, directory, name)
