"""What a config file is: the frozen dataclasses the rest of archiver reads, and every table and key.

The dataclasses are what crosses into the code (``Config`` and its parts); they hold validated
values only, never a resolved password (see :class:`archiver.config.secrets.PasswordSource`).

:data:`KEYS_BY_TABLE` is the one list of the tables a config file may hold and the keys each
accepts.  The reader (:mod:`archiver.config.reader`) takes a table's keys from it and from nowhere
else, so an unknown key is refused, a declared key can be read, and the manual's test
(``tests/unit/test_docs.py``) enumerates the same list: they cannot drift apart.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path

from archiver.config.oauth import OAUTH_KEYS, OAuthConfig
from archiver.config.secrets import PASSPHRASE_KEYS, PASSWORD_KEYS, PasswordSource
from archiver.config.storage import STORE_KEYS, S3Location
from archiver.errors import ConfigError

PROTOCOLS = ("imap", "pop3", "local")
SECURITY_MODES = ("tls", "starttls", "none")
POP3_AUTH_MODES = ("auto", "user", "apop")  # auto: APOP when the greeting offers it, else USER/PASS
DEFAULT_PORTS = {("imap", True): 993, ("imap", False): 143, ("pop3", True): 995, ("pop3", False): 110}
DEFAULT_MAX_MESSAGE_BYTES = 256 * 2**20
MIN_INDEX_MEMORY_MB = 64
INDEX_UPDATES = ("background", "wait")  # [index] update

#: Every table a config file may hold, by dotted path without array indexes ("" is the top level),
#: with the keys it accepts in the order error messages list them.
KEYS_BY_TABLE: dict[str, tuple[str, ...]] = {
    "": ("archive", "accounts", "index", "web", "scheduler", "alerts", "metrics"),
    "archive": (
        "path", "compression_level", "batch_bytes", "batch_messages", "max_run_time", "reconnect_attempts",
        "throttle_patience", "group_readable", "max_message_bytes",
        "encryption", *PASSPHRASE_KEYS, "key_file",  # archiver.store.keys
        *STORE_KEYS,  # archiver.config.storage: blobs in an S3-compatible object store
    ),
    "accounts": (
        "name", "protocol", "host", "port", "security", "username", *PASSWORD_KEYS,
        "tls_ca_file", "tls_verify", "timeout", "folders", "schedule", "pop3_auth",
        *OAUTH_KEYS,  # archiver.config.oauth
        "provider",  # archiver.config.provider
    ),
    "accounts.folders": ("include", "exclude"),
    "index": ("memory_mb", "update"),
    "web": (
        "listen", "secret_key_file", "secure_cookies", "session_idle_timeout", "session_lifetime", "trusted_proxy",
        "users",
    ),
    "web.users": ("name", "password_hash", "admin", "accounts"),
    "scheduler": ("default_schedule", "jitter", "max_concurrent", "misfire_grace", "stale_after"),
    "alerts": ("webhook_url", "healthcheck_url", "on_failure", "on_recovery", "timeout", "email"),
    "alerts.email": (
        "to", "from", "host", "port", "security", "username", *PASSWORD_KEYS, "tls_ca_file", "tls_verify",
        "provider",  # archiver.config.provider: the preset's SMTP server
        "oauth2_account",  # log in with that auth = "oauth2" account's grant
    ),
    "metrics": ("enabled", "token", "token_file"),
}  # fmt: skip
#: The tables written ``[[name]]``: arrays whose every element has the keys above.
ARRAY_TABLES = frozenset({"accounts", "web.users"})


@dataclass(frozen=True)
class FolderFilter:
    """Which folders of an account are backed up, by glob patterns on decoded folder names.

    A folder is backed up when it matches any ``include`` pattern and no
    ``exclude`` pattern.  Patterns are plain :func:`fnmatch.fnmatchcase` globs,
    case-sensitive, with no knowledge of the hierarchy delimiter: ``*`` also
    matches ``/`` or ``.``, so ``"Work*"`` matches ``Work``, ``Work/2023`` and
    ``Workshop``, while ``"Work"`` matches only ``Work`` itself (list
    ``"Work"`` and ``"Work/*"`` for a folder and its subfolders).
    """

    include: tuple[str, ...] = ("*",)
    exclude: tuple[str, ...] = ()

    def matches(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, p) for p in self.include) and not any(
            fnmatch.fnmatchcase(name, p) for p in self.exclude
        )


@dataclass(frozen=True)
class AccountConfig:
    """One ``[[accounts]]`` table.  ``host``, ``port``, ``username`` and ``password`` are None for ``local``."""

    name: str
    protocol: str
    host: str | None
    port: int | None
    security: str
    username: str | None
    password: PasswordSource | None
    tls_ca_file: Path | None
    tls_verify: bool
    timeout: float
    folders: FolderFilter
    schedule: str | None
    pop3_auth: str = "auto"  # POP3 only: "auto", "user" (USER/PASS) or "apop"
    oauth2: OAuthConfig | None = None  # auth = "oauth2" (then ``password`` is None): archiver.config.oauth
    provider: str | None = None  # the preset named by ``provider`` (archiver.discovery.presets), for its quirks


@dataclass(frozen=True)
class ArchiveConfig:
    """The ``[archive]`` table: where the archive lives and how big a fetch batch may grow."""

    path: Path
    compression_level: int = 3
    batch_bytes: int = 8 * 2**20
    batch_messages: int = 500
    max_run_time: int | None = 24 * 3600  # seconds; a run stops after the batch that crosses it (None: no limit)
    reconnect_attempts: int = 5  # after a dropped connection, waiting 1 s, 2 s, 4 s… (archiver.backup.faults)
    # Seconds a run waits out a throttling server (Microsoft 365) in a row before it stops ``partial``
    # (archiver.backup.throttle); 0: stop at the first throttled answer.
    throttle_patience: int = 15 * 60
    group_readable: bool = False  # archive files 0640/0750 for a backup operator group (archiver.permissions)
    # A message bigger than this is skipped and reported, never read; 256 MB is far past any mail server's own limit.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    # Encryption at rest (archiver.store.keys, docs/encryption.md): blobs sealed under the key in ``keys.json``,
    # unlocked by exactly one of ``passphrase`` (its four sources) or ``key_file`` when ``encryption`` is on.
    encryption: bool = False
    passphrase: PasswordSource | None = None
    key_file: Path | None = None
    # Where the blobs live: None is the local disk under ``path``; else a bucket (the catalog and index stay local).
    store: S3Location | None = None


@dataclass(frozen=True)
class IndexConfig:
    """The ``[index]`` table: the search index update that follows every backup (not ``archiver reindex``)."""

    #: MB for the whole backup process tree while it updates the index (it picks worker processes and
    #: posting-pool sizes to fit); more is faster (two cores, fewer segments), down to ``MIN_INDEX_MEMORY_MB``.
    memory_mb: int = 150
    #: When ``archiver backup`` updates the index: ``"background"`` (it returns once the mail is durable and a
    #: detached worker indexes) or ``"wait"`` (it returns once the mail is searchable); ``--wait-index`` overrides.
    update: str = "background"


@dataclass(frozen=True)
class WebUser:
    """One ``[[web.users]]`` entry: who may log in to the web UI and which accounts they see."""

    name: str
    password_hash: str = field(repr=False)  # argon2 (``archiver serve --hash-password``)
    admin: bool = False
    accounts: tuple[str, ...] = ()  # ignored for admins: they see every account


@dataclass(frozen=True)
class WebConfig:
    """The ``[web]`` table: where ``archiver serve`` listens and who may log in."""

    listen: str = "127.0.0.1:8080"
    secret_key_file: Path | None = None  # default: <archive>/web-secret.key, made 0600 at first start
    secure_cookies: bool | None = None  # None: Secure only when the request came over TLS
    users: tuple[WebUser, ...] = ()
    session_idle_timeout: int = 2 * 3600  # seconds without a request after which a login session ends
    session_lifetime: int = 12 * 3600  # seconds after login when a session ends however busy
    trusted_proxy: str | None = None  # the reverse proxy's address: its X-Forwarded-For/-Proto are believed


@dataclass(frozen=True)
class SchedulerConfig:
    """The ``[scheduler]`` table of ``archiver daemon``; durations are in seconds."""

    default_schedule: str = "every 6h"  # for accounts without ``schedule``
    jitter: int = 300  # up to this many seconds added to every fire time (no thundering herd)
    max_concurrent: int = 2  # accounts backed up at the same time
    misfire_grace: int = 86400  # a run late by more than this (machine suspended) is skipped
    stale_after: int | None = None  # None: 2 x the schedule's interval, or 48 h without a schedule


@dataclass(frozen=True)
class EmailAlertConfig:
    """The ``[alerts.email]`` table: where failure/recovery mails go and the SMTP server that sends them."""

    to: tuple[str, ...]
    sender: str
    host: str
    port: int
    security: str  # "starttls" (587), "tls" (465) or "none" (25)
    username: str | None
    password: PasswordSource | None
    tls_ca_file: Path | None
    tls_verify: bool
    oauth2_account: str | None = None  # log in with this auth = "oauth2" account's grant (SASL XOAUTH2/OAUTHBEARER)


@dataclass(frozen=True)
class AlertsConfig:
    """The ``[alerts]`` table: notifications on failure and recovery, and a health-check ping on success."""

    webhook_url: str | None = None
    healthcheck_url: str | None = None
    on_failure: bool = True
    on_recovery: bool = True
    timeout: float = 10.0
    email: EmailAlertConfig | None = None


@dataclass(frozen=True)
class MetricsConfig:
    """The ``[metrics]`` table: ``/metrics`` needs ``Authorization: Bearer <token>`` when a token is set,
    else it answers loopback clients only."""

    enabled: bool = True
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None


@dataclass(frozen=True)
class Config:
    """A whole, validated config file.  ``warnings`` are non-fatal problems (already logged)."""

    source: Path
    archive: ArchiveConfig
    accounts: tuple[AccountConfig, ...]
    warnings: tuple[str, ...] = ()
    web: WebConfig = field(default_factory=lambda: WebConfig())
    scheduler: SchedulerConfig = field(default_factory=lambda: SchedulerConfig())
    alerts: AlertsConfig = field(default_factory=lambda: AlertsConfig())
    metrics: MetricsConfig = field(default_factory=lambda: MetricsConfig())
    index: IndexConfig = field(default_factory=lambda: IndexConfig())

    def account(self, name: str) -> AccountConfig:
        for account in self.accounts:
            if account.name == name:
                return account
        configured = ", ".join(a.name for a in self.accounts) or "none"
        raise ConfigError(f"no account named {name!r} (configured: {configured})")
