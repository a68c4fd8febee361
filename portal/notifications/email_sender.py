"""The email channel: a notice rendered per recipient from ``templates/email/<type>/`` and handed to SMTP.

Invariants:
- every message carries ``From`` (``PORTAL_MAIL_FROM``), ``To``, ``Date`` and a ``Message-ID`` made from the
  delivery id, so a message sent again after a crash is recognisably the same message;
- a client recipient's message links to ``/ack/<token>`` to acknowledge it; a public subscriber's carries
  ``List-Unsubscribe`` and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058);
- the SMTP server's reply is the attempt's response. Every failure, a refused connection, a 4xx or a 5xx, is
  retried on the outbox schedule: a 5xx (unknown mailbox, relay refused, bad credentials) is often a
  configuration a person fixes within the three days, and a notice the law requires should not be given up after
  one answer; when the schedule ends the delivery is dead and shown to the vendor with that reply;
- without ``PORTAL_SMTP_URL`` each message is written as an ``.eml`` file under ``<data dir>/mail`` and the file's
  name is the response: nothing is silently dropped.

A message is written straight to bytes (``compose``): one ``multipart/alternative`` of a text and an HTML part,
7-bit when the text is plain ASCII, quoted-printable UTF-8 otherwise. In a fan-out to thousands of recipients
``email.message`` costs four times as much for the same bytes, and the bytes are what both transports take. The
headers are the portal's own values; any that could break the format (a line break, a non-ASCII address) makes
the message fail to compose rather than go out malformed.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import datetime as dt
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from email.charset import QP, Charset
from email.header import Header
from email.utils import formataddr, formatdate, parseaddr
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import jinja2

from portal.db import utcnow
from portal.notifications.catalog import NoticeType
from portal.notifications.outbox import AttemptResult
from portal.notifications.senders import Job
from portal.notifications.service import ack_token, unsubscribe_token
from portal.settings import Settings
from portal.web import templates as page_templates

log = logging.getLogger("portal.notifications.email")


class _OptionalUndefined(jinja2.StrictUndefined):
    """A value the notice does not have: false in a test (``{% if c.replaces %}``, for a payload's optional field),
    an error anywhere else, so a template naming something no notice provides fails loudly."""

    def __bool__(self) -> bool:  # type: ignore[override]  # StrictUndefined's raises; this one answers
        return False


_templates = jinja2.Environment(
    loader=page_templates.loader,
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=_OptionalUndefined,
    keep_trailing_newline=True,
    auto_reload=False,  # the templates ship with the portal; checking their files per message costs a stat each
)


def _utc_time(value: object) -> str:
    """An ISO timestamp from a notice's payload as people read it: ``2026-12-04 08:48 UTC``."""
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


_templates.filters["utc"] = _utc_time


_MAX_LINE = 998  # RFC 5322: longer lines need an encoding
_UTF8_QP = Charset("utf-8")
_UTF8_QP.header_encoding = QP


class Transport(Protocol):
    async def deliver(self, message: bytes, *, envelope_from: str, to: str, key: str) -> AttemptResult:
        """Hand the serialised ``message`` over; ``key`` names it uniquely (the delivery id)."""
        ...

    async def idle(self) -> None: ...


class EmailSender:
    """Renders a delivery's message and hands it to the transport (SMTP, or ``.eml`` files)."""

    def __init__(self, settings: Settings, transport: Transport) -> None:
        self.settings = settings
        self.transport = transport
        name, address = parseaddr(settings.mail_from)
        self.envelope_from = address or settings.mail_from
        self.from_header = formataddr((name, self.envelope_from), charset="utf-8")
        self.domain = _message_id_domain(settings)

    @classmethod
    def from_settings(cls, settings: Settings, *, tls_context: ssl.SSLContext | None = None) -> EmailSender:
        transport: Transport = (SMTPTransport(settings.smtp_url, tls_context=tls_context) if settings.smtp_url
                                else FileTransport(settings.mail_dir))
        return cls(settings, transport)

    def message_id(self, job: Job) -> str:
        return job.delivery.message_id or f"<notice.{job.delivery.id.hex}@{self.domain}>"

    def context(self, job: Job) -> dict[str, Any]:
        """The template context: the notice's own, plus who this copy is for and their links."""
        delivery, base = job.delivery, self.settings.base_url
        confirmation = job.notice.type == NoticeType.SUBSCRIPTION_CONFIRMATION
        return {
            **job.notice.context,
            "recipient_name": job.recipient_name,
            "reason": delivery.reason,
            "org_name": job.org_name,
            "vendor_name": job.vendor_name,
            "base_url": base,
            "ack_link": "" if confirmation else f"{base}/ack/{ack_token(self.settings.secret_key, delivery.id)}",
            "unsubscribe_link": self.unsubscribe_link(job) or "",
        }

    def unsubscribe_link(self, job: Job) -> str | None:
        subscriber_id = job.delivery.subscriber_id
        if subscriber_id is None or job.notice.type == NoticeType.SUBSCRIPTION_CONFIRMATION:
            return None
        return f"{self.settings.base_url}/unsubscribe/{unsubscribe_token(self.settings.secret_key, subscriber_id)}"

    def compose(self, job: Job) -> bytes:
        """The message for ``job``'s recipient: text and HTML alternatives with the headers above."""
        to = job.delivery.email or ""
        if not to or not to.isascii() or any(c.isspace() for c in to):
            raise ValueError(f"cannot address a message to {to!r}")
        context = self.context(job)
        folder = f"email/{job.notice.type}"
        subject = " ".join(_templates.get_template(f"{folder}/subject.txt").render(context).split())
        headers = [
            ("Subject", subject if subject.isascii() else Header(subject, _UTF8_QP).encode()),
            ("From", self.from_header),
            ("To", to),
            ("Date", formatdate(usegmt=True)),
            ("Message-ID", self.message_id(job)),
            ("Auto-Submitted", "auto-generated"),  # RFC 3834: no vacation replies to notices
        ]
        unsubscribe = self.unsubscribe_link(job)
        if unsubscribe:
            headers += [("List-Unsubscribe", f"<{unsubscribe}>"),
                        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")]
        # The delivery id cannot occur in a body as a whole line after "--=_", and "=_" cannot occur in QP text.
        boundary = f"=_notice_{job.delivery.id.hex}"
        headers += [("MIME-Version", "1.0"), ("Content-Type", f'multipart/alternative; boundary="{boundary}"')]
        if any("\n" in value or "\r" in value for name, value in headers if name != "Subject"):
            raise ValueError("a header value contains a line break")  # the Subject's are folds of its encoding
        head = "".join(f"{name}: {value}\n" for name, value in headers)
        text = _templates.get_template(f"{folder}/body.txt").render(context)
        html = _templates.get_template(f"{folder}/body.html").render(context)
        return b"".join([
            head.encode("ascii"), b"\n",
            f"--{boundary}\n".encode(), _part(text, "plain"),
            f"\n--{boundary}\n".encode(), _part(html, "html"),
            f"\n--{boundary}--\n".encode(),
        ])

    async def send(self, job: Job) -> AttemptResult:
        message_id = self.message_id(job)
        try:
            raw = self.compose(job)
        except (jinja2.TemplateError, ValueError) as exc:
            return AttemptResult(ok=False, error=f"The message could not be composed: {exc}", message_id=message_id)
        assert job.delivery.email is not None  # compose checked it
        result = await self.transport.deliver(raw, envelope_from=self.envelope_from, to=job.delivery.email,
                                              key=job.delivery.id.hex)
        return AttemptResult(ok=result.ok, response=result.response, error=result.error, message_id=message_id)

    async def idle(self) -> None:
        await self.transport.idle()

    async def aclose(self) -> None:
        await self.transport.idle()


def _part(text: str, subtype: str) -> bytes:
    """One body part: 7-bit as it is when it can be, else quoted-printable UTF-8."""
    if text.isascii() and all(len(line) <= _MAX_LINE for line in text.split("\n")):
        return f'Content-Type: text/{subtype}; charset="us-ascii"\nContent-Transfer-Encoding: 7bit\n\n{text}'.encode()
    encoded = binascii.b2a_qp(text.encode(), istext=True)
    return f'Content-Type: text/{subtype}; charset="utf-8"\nContent-Transfer-Encoding: quoted-printable\n\n'.encode() \
        + encoded


def _message_id_domain(settings: Settings) -> str:
    address = parseaddr(settings.mail_from)[1]
    domain = address.rpartition("@")[2] if "@" in address else ""
    return domain or urlsplit(settings.base_url).hostname or "dpa-portal"


# ---------------------------------------------------------------- transports

class FileTransport:
    """Writes each message to ``<directory>/<UTC time>-<key>.eml`` (whole files only: written, then renamed)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def deliver(self, message: bytes, *, envelope_from: str, to: str, key: str) -> AttemptResult:
        name = f"{utcnow().strftime('%Y%m%dT%H%M%S%fZ')}-{key}.eml"
        try:
            await asyncio.to_thread(self._write, name, message)
        except OSError as exc:
            return AttemptResult(ok=False, error=f"The message could not be written to {self.directory}: {exc}")
        return AttemptResult(ok=True, response=name)

    def _write(self, name: str, content: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        partial = self.directory / f".{name}.partial"
        partial.write_bytes(content)
        os.replace(partial, self.directory / name)

    async def idle(self) -> None:
        return None


@dataclass
class _Connection:
    client: aiosmtplib.SMTP
    sent: int = 0


class SMTPTransport:
    """SMTP from a URL: ``smtp://[user:pass@]host[:port][?starttls=1]``, or ``smtps://`` for implicit TLS.

    Connections are kept for the next message (up to ``messages_per_connection``) while the worker is busy, and
    closed when it goes idle; a kept connection the server has dropped is replaced once, transparently.
    """

    def __init__(self, url: str, *, timeout: float = 15.0, tls_context: ssl.SSLContext | None = None,
                 keep: int = 32, messages_per_connection: int = 100) -> None:
        parts = urlsplit(url)
        self.scheme = parts.scheme
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if parts.scheme == "smtps" else 25)
        self.starttls = parse_qs(parts.query).get("starttls", ["0"])[0].lower() in {"1", "true", "yes", "on"}
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password or "") if parts.username else None
        self.timeout = timeout
        self.tls_context = tls_context
        self.keep = keep
        self.messages_per_connection = messages_per_connection
        self._idle: list[_Connection] = []
        self._local_hostname: str | None = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def _connect(self) -> _Connection:
        if self._local_hostname is None:
            self._local_hostname = await asyncio.to_thread(socket.getfqdn)
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port, use_tls=self.scheme == "smtps",
                                 start_tls=self.starttls, username=self.username, password=self.password,
                                 timeout=self.timeout, tls_context=self.tls_context,
                                 local_hostname=self._local_hostname)
        await client.connect()
        return _Connection(client)

    async def deliver(self, message: bytes, *, envelope_from: str, to: str, key: str) -> AttemptResult:
        if self.scheme not in {"smtp", "smtps"}:
            return AttemptResult(ok=False, error="PORTAL_SMTP_URL must start with smtp:// or smtps://.")
        connection = self._take()
        try:
            try:
                if connection is None:
                    connection = await self._connect()
                _errors, reply = await connection.client.sendmail(envelope_from, [to], message)
            except aiosmtplib.SMTPServerDisconnected:
                if connection is None or connection.sent == 0:
                    raise
                # The server dropped a connection we kept; nothing was accepted on it, so try a fresh one.
                connection.client.close()
                connection = None
                connection = await self._connect()
                _errors, reply = await connection.client.sendmail(envelope_from, [to], message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            self._discard(connection)
            refused = exc.recipients[0] if exc.recipients else None
            response = f"{refused.code} {refused.message}" if refused else ""
            return AttemptResult(ok=False, response=response, error=f"The server refused the recipient {to}.")
        except aiosmtplib.SMTPResponseException as exc:
            self._discard(connection)
            return AttemptResult(ok=False, response=f"{exc.code} {exc.message}",
                                 error=f"The SMTP server at {self.where} refused the message "
                                       f"({type(exc).__name__}).")
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._discard(connection)
            return AttemptResult(ok=False, error=f"The SMTP server at {self.where} could not be reached or "
                                                 f"dropped the connection: {type(exc).__name__}: {exc}")
        await self._give_back(connection)
        # aiosmtplib raises unless the end of DATA was answered 250, and returns that reply's text.
        return AttemptResult(ok=True, response=f"250 {reply}")

    def _take(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.client.is_connected:
                return connection
            connection.client.close()
        return None

    async def _give_back(self, connection: _Connection) -> None:
        connection.sent += 1
        if connection.sent < self.messages_per_connection and len(self._idle) < self.keep:
            self._idle.append(connection)
        else:
            await _quit(connection.client)

    @staticmethod
    def _discard(connection: _Connection | None) -> None:
        if connection is not None:
            connection.client.close()

    async def idle(self) -> None:
        connections, self._idle = self._idle, []
        await asyncio.gather(*(_quit(c.client) for c in connections))


async def _quit(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
        await asyncio.wait_for(client.quit(), timeout=5)
    client.close()
