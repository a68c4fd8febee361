"""Email: a catalog of notices rendered from ``templates/email/<notice>/``, and swappable senders.

Mail is queued on the database session and sent only after the transaction commits, so an invitation that was
rolled back is never mailed. Every message is written as an ``.eml`` file under ``<data dir>/mail`` (the record of
what was sent and the way to read mail in development) and, when ``PORTAL_SMTP_URL`` is set, sent over SMTP.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import jinja2
from sqlalchemy.ext.asyncio import AsyncSession

from portal.db import after_commit
from portal.settings import Settings
from portal.web import templates as page_templates

log = logging.getLogger("portal.mail")


class MailSender(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class FileMailSender:
    """Writes each message to ``<directory>/<time>-<id>.eml``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def send(self, message: EmailMessage) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{formatdate(usegmt=True).replace(' ', '_').replace(',', '')}-{uuid.uuid4().hex[:12]}.eml"
        await asyncio.to_thread((self.directory / name).write_bytes, bytes(message))


@dataclass(frozen=True)
class SMTPMailSender:
    """SMTP from a URL: ``smtp://[user:pass@]host[:port][?starttls=1]`` or ``smtps://`` for implicit TLS."""

    url: str
    timeout: float = 15.0

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send_blocking, message)

    def _send_blocking(self, message: EmailMessage) -> None:
        parts = urlsplit(self.url)
        options = parse_qs(parts.query)
        host = parts.hostname or "localhost"
        if parts.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, parts.port or 465, timeout=self.timeout,
                                                    context=ssl.create_default_context())
        else:
            client = smtplib.SMTP(host, parts.port or 25, timeout=self.timeout)
        with client:
            if options.get("starttls", ["0"])[0] in {"1", "true", "yes"}:
                client.starttls(context=ssl.create_default_context())
            if parts.username:
                client.login(unquote(parts.username), unquote(parts.password or ""))
            client.send_message(message)


class FanOutSender:
    def __init__(self, *senders: MailSender) -> None:
        self.senders = senders

    async def send(self, message: EmailMessage) -> None:
        for sender in self.senders:
            await sender.send(message)


_email_templates = jinja2.Environment(
    loader=page_templates.loader,
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


class Mailer:
    """Renders notices and queues them for sending after commit."""

    def __init__(self, settings: Settings, sender: MailSender) -> None:
        self.settings = settings
        self.sender = sender

    @classmethod
    def from_settings(cls, settings: Settings) -> Mailer:
        senders: list[MailSender] = [FileMailSender(settings.mail_dir)]
        if settings.smtp_url:
            senders.append(SMTPMailSender(settings.smtp_url))
        return cls(settings, FanOutSender(*senders))

    def compose(self, *, to: str, notice: str, context: dict[str, Any]) -> EmailMessage:
        context = {"base_url": self.settings.base_url, **context}
        subject = _email_templates.get_template(f"email/{notice}/subject.txt").render(context).strip()
        message = EmailMessage()
        message["Subject"] = " ".join(subject.split())
        message["From"] = self.settings.mail_from
        message["To"] = to
        message["Date"] = formatdate(usegmt=True)
        message["Message-ID"] = make_msgid(domain="dpa-portal")
        message.set_content(_email_templates.get_template(f"email/{notice}/body.txt").render(context))
        message.add_alternative(_email_templates.get_template(f"email/{notice}/body.html").render(context),
                                subtype="html")
        return message

    def queue(self, session: AsyncSession, *, to: str, notice: str, context: dict[str, Any]) -> None:
        """Render now (so template errors fail the request) and send once the transaction commits."""
        message = self.compose(to=to, notice=notice, context=context)

        async def deliver() -> None:
            try:
                await self.sender.send(message)
            except (OSError, smtplib.SMTPException):
                # The change itself is committed; the .eml copy is written first and the failure is logged.
                log.exception("sending %s mail failed", notice)

        after_commit(session, deliver)
