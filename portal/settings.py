"""The one module that reads ``PORTAL_*`` environment variables.

Every setting is declared once in ``SETTINGS`` with its default and a help string; the README lists them all and a
test keeps the two in step. ``Settings`` is frozen: code receives it, never reads the environment itself.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit


class SettingSpec(NamedTuple):
    name: str
    default: str
    help: str


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("PORTAL_DATA_DIR", "./var", "Directory for the embedded SQLite database, the secret key and mail."),
    SettingSpec(
        "PORTAL_DATABASE_URL",
        "sqlite:///<PORTAL_DATA_DIR>/portal.sqlite3",
        "Database URL. `postgresql://user@host/db` for production; SQLite file in the data dir by default.",
    ),
    SettingSpec(
        "PORTAL_SECRET_KEY",
        "(generated into <PORTAL_DATA_DIR>/secret_key)",
        "Key for CSRF tokens, OAuth state cookies and encrypting stored SSO client secrets. Never logged.",
    ),
    SettingSpec("PORTAL_BASE_URL", "http://127.0.0.1:8000", "Public URL of the portal, used in links and emails."),
    SettingSpec("PORTAL_HOST", "127.0.0.1", "Address `portal serve` listens on."),
    SettingSpec("PORTAL_PORT", "8000", "Port `portal serve` listens on."),
    SettingSpec("PORTAL_SMTP_URL", "", "SMTP server, e.g. `smtp://user:pass@mail.example:587?starttls=1`. Empty: mail "
                "is only written as .eml files under <PORTAL_DATA_DIR>/mail."),
    SettingSpec("PORTAL_MAIL_FROM", "DPA portal <portal@localhost>", "Sender address of every email."),
    SettingSpec("PORTAL_VENDOR_NAME", "", "Display name of the vendor; defaults to the vendor organisation's name."),
    SettingSpec("PORTAL_REQUIRE_VENDOR_MFA", "false", "Require TOTP for vendor owners, legal and security staff."),
    SettingSpec("PORTAL_SESSION_HOURS", "12", "Absolute lifetime of a login session, in hours."),
    SettingSpec("PORTAL_SESSION_IDLE_MINUTES", "120", "A session unused for this long ends."),
    SettingSpec("PORTAL_INVITATION_DAYS", "7", "How long an invitation link stays valid."),
    SettingSpec("PORTAL_WEBHOOK_ALLOW_PRIVATE", "false", "Allow webhook endpoints on private, loopback and "
                "link-local addresses (for tests and closed networks; refused by default against SSRF)."),
    SettingSpec("PORTAL_INPROCESS_WORKER", "auto", "Run the delivery worker inside `portal serve`: `auto` does "
                "so on the embedded SQLite database, `on`/`off` decide explicitly (run `portal worker` otherwise)."),
    SettingSpec("PORTAL_SUBPROCESSOR_NOTICE_DAYS", "30", "Days of notice before a sub-processor change takes effect, "
                "for clients whose agreement sets no period of its own (their objection window)."),
    SettingSpec("PORTAL_SEAL_KEY_FILE", "(generated into <PORTAL_DATA_DIR>/seal_key.pem)", "The vendor's ECDSA "
                "P-256 private key (unencrypted PKCS#8 PEM) that seals executed agreements; it must exist when set."),
    SettingSpec("PORTAL_SEAL_CERT_FILE", "(self-signed, <PORTAL_DATA_DIR>/seal_cert.pem)", "The certificate (PEM) "
                "for that key; when unset, a self-signed certificate is created in the data dir."),
    SettingSpec("PORTAL_BREACH_TARGET_HOURS", "48", "Hours after becoming aware of a personal data breach within which "
                "the vendor aims to notify each client, for agreements that set no target of their own."),
    SettingSpec("PORTAL_BREACH_ESCALATION_MINUTES", "30", "Minutes after a breach notice is sent by which at least "
                "one delivery must have succeeded before the vendor dashboard flags it."),
    SettingSpec("PORTAL_NEGOTIABLE_TERMS", "false", "Let client admins set their agreement's notice period, breach "
                "notice target and sub-processor authorisation option when they fill in its details."),
    SettingSpec("PORTAL_AUTO_COUNTERSIGN", "", "`Full name, Title` of the vendor's signatory to countersign every "
                "agreement as soon as the client has signed; empty: vendor legal countersigns each one by hand."),
    SettingSpec("PORTAL_RESIGN_REMINDER_DAYS", "7", "Days between reminders to clients that have not signed a new "
                "DPA version of a re-signing campaign."),
    SettingSpec("PORTAL_LOGIN_MAX_FAILURES", "5", "Failed logins per account (or per address) in 15 minutes before "
                "further attempts are refused."),
)

_TRUE = {"1", "true", "yes", "on"}


class SettingsError(ValueError):
    """A setting has a value the portal cannot use."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    secret_key: str = field(repr=False)
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    smtp_url: str = field(default="", repr=False)
    mail_from: str = "DPA portal <portal@localhost>"
    vendor_name: str = ""
    require_vendor_mfa: bool = False
    session_hours: int = 12
    session_idle_minutes: int = 120
    invitation_days: int = 7
    login_max_failures: int = 5
    subprocessor_notice_days: int = 30
    webhook_allow_private: bool = False
    inprocess_worker: str = "auto"
    seal_key_file: Path | None = None
    seal_cert_file: Path | None = None
    breach_target_hours: int = 48
    breach_escalation_minutes: int = 30
    negotiable_terms: bool = False
    auto_countersign: str = ""
    resign_reminder_days: int = 7

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def https(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def runs_inprocess_worker(self) -> bool:
        return self.inprocess_worker == "on" or (self.inprocess_worker == "auto" and self.is_sqlite)

    @property
    def auto_countersignatory(self) -> tuple[str, str] | None:
        """(full name, title) of the vendor's signatory who countersigns automatically, or None."""
        if not self.auto_countersign:
            return None
        name, _, title = self.auto_countersign.partition(",")
        return name.strip(), title.strip()

    @property
    def mail_dir(self) -> Path:
        return self.data_dir / "mail"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read the environment; create the data dir and the secret key file when they do not exist yet."""
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("PORTAL_DATA_DIR", "./var")).resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        database_url = env.get("PORTAL_DATABASE_URL") or f"sqlite:///{data_dir / 'portal.sqlite3'}"
        base_url = env.get("PORTAL_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
        if urlsplit(base_url).scheme not in {"http", "https"}:
            raise SettingsError("PORTAL_BASE_URL must start with http:// or https://")
        return cls(
            data_dir=data_dir,
            database_url=database_url,
            secret_key=env.get("PORTAL_SECRET_KEY") or _stored_secret_key(data_dir),
            base_url=base_url,
            host=env.get("PORTAL_HOST", "127.0.0.1"),
            port=_int(env, "PORTAL_PORT", 8000),
            smtp_url=env.get("PORTAL_SMTP_URL", ""),
            mail_from=env.get("PORTAL_MAIL_FROM", "DPA portal <portal@localhost>"),
            vendor_name=env.get("PORTAL_VENDOR_NAME", ""),
            require_vendor_mfa=env.get("PORTAL_REQUIRE_VENDOR_MFA", "false").strip().lower() in _TRUE,
            session_hours=_int(env, "PORTAL_SESSION_HOURS", 12),
            session_idle_minutes=_int(env, "PORTAL_SESSION_IDLE_MINUTES", 120),
            invitation_days=_int(env, "PORTAL_INVITATION_DAYS", 7),
            login_max_failures=_int(env, "PORTAL_LOGIN_MAX_FAILURES", 5),
            subprocessor_notice_days=_int(env, "PORTAL_SUBPROCESSOR_NOTICE_DAYS", 30),
            webhook_allow_private=env.get("PORTAL_WEBHOOK_ALLOW_PRIVATE", "false").strip().lower() in _TRUE,
            inprocess_worker=_choice(env, "PORTAL_INPROCESS_WORKER", ("auto", "on", "off")),
            seal_key_file=_path(env, "PORTAL_SEAL_KEY_FILE"),
            seal_cert_file=_path(env, "PORTAL_SEAL_CERT_FILE"),
            breach_target_hours=_int(env, "PORTAL_BREACH_TARGET_HOURS", 48),
            breach_escalation_minutes=_int(env, "PORTAL_BREACH_ESCALATION_MINUTES", 30),
            negotiable_terms=env.get("PORTAL_NEGOTIABLE_TERMS", "false").strip().lower() in _TRUE,
            auto_countersign=_countersignatory(env.get("PORTAL_AUTO_COUNTERSIGN", "")),
            resign_reminder_days=_int(env, "PORTAL_RESIGN_REMINDER_DAYS", 7),
        )


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive")
    return value


def _path(env: dict[str, str], name: str) -> Path | None:
    raw = env.get(name, "").strip()
    return Path(raw).resolve() if raw else None


def _choice(env: dict[str, str], name: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name, allowed[0]).strip().lower() or allowed[0]
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _countersignatory(raw: str) -> str:
    value = raw.strip()
    if value and not all(part.strip() for part in value.partition(",")[::2]):
        raise SettingsError("PORTAL_AUTO_COUNTERSIGN must be `Full name, Title` (or empty)")
    return value


def _stored_secret_key(data_dir: Path) -> str:
    """The key kept in the data dir, created (mode 0600) the first time it is needed."""
    path = data_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it a moment ago
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key
