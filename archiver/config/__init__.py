"""Load ``config.toml`` and validate it into frozen dataclasses.

Why so strict: a backup tool that silently ignores ``pasword_file`` or a
misspelt ``[acounts]`` table backs up nothing and says nothing.  So every key
is declared, unknown keys are errors (with the closest valid key suggested),
and every error names the file, the key path and what was expected versus
found, e.g. ``config.toml: accounts[1].port: expected an integer from 1 to
65535, got "abc"``.  Array indexes in key paths are 0-based, like Python lists:
the first ``[[accounts]]`` table is ``accounts[0]``.

Passwords are never read at load time: :class:`PasswordSource` says where the
password lives and :meth:`PasswordSource.resolve` fetches it when a connection
is made, so a rotated secret is picked up by the next run and a broken password
command does not stop ``archiver status``.

Validation is built on :class:`_Table`, a reader that knows its key path and
its declared keys.  Adding a top-level section (``[web]``, ``[scheduler]``…)
means adding its name to ``_TOP_KEYS``, a dataclass and a ``_read_…`` function
of a few lines.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import json
import logging
import os
import re
import shlex
import stat
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from archiver.config.oauth import CLIENT_SECRET_KEYS, OAUTH_KEYS, OAuthConfig, read_oauth
from archiver.config.secrets import read_secret_file, run_secret_command
from archiver.errors import ConfigError, SecretError
from archiver.logs import register_secret
from archiver.oauth.providers import default_scopes

log = logging.getLogger("archiver.config")

#: Where :func:`find_config_path` looks last (a module attribute so tests can point it elsewhere).
SYSTEM_CONFIG_PATH = Path("/etc/archiver/config.toml")
LOCAL_CONFIG_NAME = "archiver.toml"
PASSWORD_COMMAND_TIMEOUT = 30.0

PROTOCOLS = ("imap", "pop3", "local")
SECURITY_MODES = ("tls", "starttls", "none")
POP3_AUTH_MODES = ("auto", "user", "apop")  # auto: APOP when the greeting offers it, else USER/PASS
DEFAULT_PORTS = {("imap", True): 993, ("imap", False): 143, ("pop3", True): 995, ("pop3", False): 110}
PASSWORD_KEYS = {"password": "value", "password_file": "file", "password_command": "command", "password_env": "env"}
_T = TypeVar("_T")
DEFAULT_MAX_MESSAGE_BYTES = 256 * 2**20
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9._-]+")

_TOP_KEYS = ("archive", "accounts", "index", "web", "scheduler", "alerts", "metrics")
_ARCHIVE_KEYS = (
    "path", "compression_level", "batch_bytes", "batch_messages", "max_run_time", "reconnect_attempts",
    "group_readable",
    "max_message_bytes",
)  # fmt: skip
_ACCOUNT_KEYS = (
    "name", "protocol", "host", "port", "security", "username", *PASSWORD_KEYS,
    "tls_ca_file", "tls_verify", "timeout", "folders", "schedule", "pop3_auth",
    *OAUTH_KEYS,  # archiver.config.oauth
)  # fmt: skip
_FOLDER_KEYS = ("include", "exclude")
_WEB_KEYS = (
    "listen", "secret_key_file", "secure_cookies", "session_idle_timeout", "session_lifetime", "trusted_proxy", "users",
)  # fmt: skip
_WEB_USER_KEYS = ("name", "password_hash", "admin", "accounts")
_SCHEDULER_KEYS = ("default_schedule", "jitter", "max_concurrent", "misfire_grace", "stale_after")
_ALERTS_KEYS = ("webhook_url", "healthcheck_url", "on_failure", "on_recovery", "timeout", "email")
_EMAIL_KEYS = (
    "to", "from", "host", "port", "security", "username", *PASSWORD_KEYS, "tls_ca_file", "tls_verify", "oauth2_account",
)  # fmt: skip
_METRICS_KEYS = ("enabled", "token", "token_file")
_INDEX_KEYS = ("memory_mb",)


@dataclass(frozen=True, repr=False)
class PasswordSource:
    """Where an account's password comes from; :meth:`resolve` fetches it, late.

    ``kind`` is ``"value"`` (literal ``password``), ``"file"``, ``"command"`` or
    ``"env"``, and exactly the matching field is set.  ``account`` and ``key``
    (the key path, e.g. ``accounts[0].password_file``) only serve error
    messages.  ``repr`` and ``str`` never show a literal password, and errors
    never include the secret or a command's output.
    """

    kind: str
    value: str | None = None
    file: Path | None = None
    command: str | None = None
    env: str | None = None
    account: str = ""
    key: str = ""

    def __repr__(self) -> str:
        shown = {"value": "<hidden>", "file": repr(self.file), "command": repr(self.command), "env": repr(self.env)}
        return f"PasswordSource(kind={self.kind!r}, account={self.account!r}, {self.kind}={shown[self.kind]})"

    def __str__(self) -> str:
        return {
            "value": "literal password (hidden)",
            "file": f"password_file {self.file}",
            "command": f"password_command {self.command!r}",
            "env": f"password_env {self.env}",
        }[self.kind]

    def resolve(self) -> str:
        """Return the password, raising :class:`SecretError` naming account and key (never the value).

        Files and command output lose one trailing newline; an empty result is
        an error because it is always a misconfiguration in practice.  The
        result is registered with :mod:`archiver.logs` so log lines mask it.
        """
        if self.kind == "value":
            secret = self.value or ""
        elif self.kind == "file":
            secret = self._from_file()
        elif self.kind == "command":
            secret = self._from_command()
        elif self.kind == "env":
            secret = self._from_env()
        else:
            raise SecretError(f"{self._where()}: unknown password source kind {self.kind!r}")
        if not secret:
            raise SecretError(f"{self._where()}: the password is empty")
        register_secret(secret)
        return secret

    def _where(self) -> str:
        return f"account {self.account!r}: {self.key or 'password'}"

    def _from_file(self) -> str:
        data = read_secret_file(Path(self.file or ""), self._where())
        try:
            return _strip_newline(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise SecretError(f"{self._where()}: {self.file} is not valid UTF-8") from None

    def _from_command(self) -> str:
        argv = shlex.split(self.command or "")
        where = f"{self._where()}: command {argv[0]!r}" if argv else self._where()
        output = run_secret_command(argv, where, PASSWORD_COMMAND_TIMEOUT)
        try:
            return _strip_newline(output.decode("utf-8"))
        except UnicodeDecodeError:
            raise SecretError(f"{where}: its output is not valid UTF-8") from None

    def _from_env(self) -> str:
        value = os.environ.get(self.env or "")
        if value is None:
            raise SecretError(f"{self._where()}: environment variable {self.env} is not set")
        return value


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


@dataclass(frozen=True)
class ArchiveConfig:
    """The ``[archive]`` table: where the archive lives and how big a fetch batch may grow."""

    path: Path
    compression_level: int = 3
    batch_bytes: int = 8 * 2**20
    batch_messages: int = 500
    max_run_time: int | None = 24 * 3600  # seconds; a run stops after the batch that crosses it (None: no limit)
    reconnect_attempts: int = 5  # after a dropped connection, waiting 1 s, 2 s, 4 s… (archiver.backup.faults)
    group_readable: bool = False  # archive files 0640/0750 for a backup operator group (archiver.permissions)
    # A message bigger than this is skipped and reported, never read; 256 MB is far past any mail server's own limit.
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class IndexConfig:
    """The ``[index]`` table: the search index update that follows every backup (not ``archiver reindex``)."""

    #: MB for the whole backup process tree while it updates the index (it picks worker processes and
    #: posting-pool sizes to fit); more is faster (two cores, fewer segments), down to ``MIN_INDEX_MEMORY_MB``.
    memory_mb: int = 150


MIN_INDEX_MEMORY_MB = 64


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


# -- entry points ------------------------------------------------------------------------------


def find_config_path(explicit: str | None) -> Path:
    """The config file to use: ``explicit``, else ``$ARCHIVER_CONFIG``, else ``./archiver.toml``, else /etc.

    An explicit path or the environment variable is returned even if the file
    is missing (so :func:`load_config` reports that file); otherwise the first
    existing default wins and a :class:`ConfigError` lists where we looked.
    """
    if explicit:
        return Path(explicit).expanduser()
    from_env = os.environ.get("ARCHIVER_CONFIG")
    if from_env:
        return Path(from_env).expanduser()
    candidates = [Path(LOCAL_CONFIG_NAME), SYSTEM_CONFIG_PATH]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigError(
        f"no config file found (looked at --config, $ARCHIVER_CONFIG, {looked}); "
        "pass --config PATH or set ARCHIVER_CONFIG (see config.example.toml)"
    )


def load_config(path: Path) -> Config:
    """Read and validate the config file at ``path``; every problem is a :class:`ConfigError`."""
    source = Path(path)
    try:
        data = source.read_bytes()
        mode = source.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"{source}: config file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{source}: is a directory, expected a TOML config file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the config file: {exc.strerror or exc}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not valid UTF-8 (byte offset {exc.start})") from None
    return _build(text, source, file_mode=mode)


def config_from_toml_text(text: str, source: Path) -> Config:
    """Validate TOML ``text`` as if read from ``source`` (relative paths resolve against its directory)."""
    return _build(text, Path(source), file_mode=None)


def _build(text: str, source: Path, file_mode: int | None) -> Config:
    label = str(source)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: {_syntax_error(str(exc))}") from None
    top = _Table(data, "", label, source.absolute().parent, _TOP_KEYS)
    archive_table = top.table("archive", _ARCHIVE_KEYS, required=True)
    assert archive_table is not None
    archive = _read_archive(archive_table)
    accounts = tuple(_read_account(t) for t in top.tables("accounts", _ACCOUNT_KEYS))
    _check_unique_names(accounts, label)
    web_table = top.table("web", _WEB_KEYS)
    web = _read_web(web_table, {a.name for a in accounts}) if web_table is not None else WebConfig()
    warnings = _permission_warnings(accounts, label, file_mode)
    for warning in warnings:
        log.warning("%s", warning)
    appliance = _read_appliance(top)  # [index], [scheduler], [alerts], [metrics]
    alerts = appliance.get("alerts")
    if alerts is not None and alerts.email is not None and alerts.email.oauth2_account is not None:
        alerts, accounts = _with_alert_account(alerts, accounts, label)
        appliance["alerts"] = alerts
    return Config(
        source=source.absolute(), archive=archive, accounts=accounts, warnings=tuple(warnings), web=web, **appliance
    )


def _syntax_error(message: str) -> str:
    """Turn tomllib's "Invalid value (at line 3, column 8)" into "line 3, column 8: invalid TOML: Invalid value"."""
    match = re.fullmatch(r"(.*) \(at (line \d+, column \d+|end of document)\)", message, re.DOTALL)
    if not match:
        return f"invalid TOML: {message}"
    return f"{match.group(2)}: invalid TOML: {match.group(1)}"


# -- sections ----------------------------------------------------------------------------------


def _read_archive(table: _Table) -> ArchiveConfig:
    path = table.path("path", required=True)
    assert path is not None
    return ArchiveConfig(
        path=path,
        compression_level=table.integer("compression_level", 3, low=1, high=22),
        batch_bytes=table.integer("batch_bytes", 8 * 2**20, low=1),
        batch_messages=table.integer("batch_messages", 500, low=1),
        max_run_time=_duration(table, "max_run_time", 24 * 3600) or None,  # 0: no limit
        reconnect_attempts=table.integer("reconnect_attempts", 5, low=0, high=20),
        group_readable=table.boolean("group_readable", False),
        max_message_bytes=table.integer("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES, low=1024),
    )


def _read_web(table: _Table, account_names: set[str]) -> WebConfig:
    listen = table.string("listen") or "127.0.0.1:8080"
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise table.error("listen", 'an address "HOST:PORT" such as "127.0.0.1:8080"', listen)
    users: list[WebUser] = []
    for user in table.tables("users", _WEB_USER_KEYS):
        name = user.string("name", required=True)
        password_hash = user.string("password_hash", required=True)
        assert name is not None and password_hash is not None
        if not password_hash.startswith("$argon2"):
            raise user.error("password_hash", "an argon2 hash (make one with: archiver serve --hash-password)", "…")
        accounts = user.strings("accounts", ())
        unknown = sorted(set(accounts) - account_names)
        if unknown:
            raise user.error("accounts", "names of configured accounts", ", ".join(unknown))
        users.append(WebUser(name, password_hash, user.boolean("admin", False), accounts))
    if len({u.name for u in users}) != len(users):
        raise table.fail("users", "two users share one name")
    secure = table.boolean("secure_cookies", False) if table.has("secure_cookies") else None
    idle = _duration(table, "session_idle_timeout", WebConfig.session_idle_timeout)
    lifetime = _duration(table, "session_lifetime", WebConfig.session_lifetime)
    for key, seconds in (("session_idle_timeout", idle), ("session_lifetime", lifetime)):
        if seconds < 60:
            raise table.error(key, 'a duration of at least a minute, such as "30m" or "12h"', table.data[key])
    trusted_proxy = table.string("trusted_proxy")
    if trusted_proxy is not None:
        try:
            ipaddress.ip_address(trusted_proxy)
        except ValueError:
            raise table.error("trusted_proxy", 'the IP address the reverse proxy connects from, such as "127.0.0.1"',
                              trusted_proxy) from None  # fmt: skip
    return WebConfig(listen, table.path("secret_key_file"), secure, tuple(users), idle, lifetime, trusted_proxy)


def _schedule(table: _Table, key: str) -> str | None:
    """A schedule string, parsed now so a typo fails at load time, naming the key."""
    from archiver.daemon.schedule import parse_schedule

    value = table.string(key)
    if value is None:
        return None
    try:
        parse_schedule(value)
    except ValueError as exc:
        raise table.fail(key, str(exc)) from None
    return value


def _duration(table: _Table, key: str, default: _T) -> int | _T:
    """Seconds, as an integer or a string like "30m", "2h", "1d"."""
    from archiver.daemon.schedule import parse_duration

    if not table.has(key):
        return default
    value = table.data[key]
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ValueError:
            pass
    elif isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise table.error(key, 'a duration: seconds (an integer) or a string like "30m", "2h", "1d"', value)


def _url(table: _Table, key: str) -> str | None:
    value = table.string(key)
    if value is not None and not re.match(r"https?://[^/\s]+", value):
        raise table.error(key, "an http:// or https:// URL", value)
    return value


def _read_appliance(top: _Table) -> dict[str, Any]:
    """The optional sections ([index] and the daemon's); each absent section takes its defaults."""
    result: dict[str, Any] = {}
    index = top.table("index", _INDEX_KEYS)
    if index is not None:
        result["index"] = IndexConfig(index.integer("memory_mb", IndexConfig.memory_mb, low=MIN_INDEX_MEMORY_MB))
    scheduler = top.table("scheduler", _SCHEDULER_KEYS)
    if scheduler is not None:
        result["scheduler"] = SchedulerConfig(
            default_schedule=_schedule(scheduler, "default_schedule") or SchedulerConfig.default_schedule,
            jitter=_duration(scheduler, "jitter", SchedulerConfig.jitter),
            max_concurrent=scheduler.integer("max_concurrent", 2, low=1, high=64),
            misfire_grace=_duration(scheduler, "misfire_grace", SchedulerConfig.misfire_grace),
            stale_after=_duration(scheduler, "stale_after", None),
        )
    alerts = top.table("alerts", _ALERTS_KEYS)
    if alerts is not None:
        email = alerts.table("email", _EMAIL_KEYS)
        result["alerts"] = AlertsConfig(
            webhook_url=_url(alerts, "webhook_url"),
            healthcheck_url=_url(alerts, "healthcheck_url"),
            on_failure=alerts.boolean("on_failure", True),
            on_recovery=alerts.boolean("on_recovery", True),
            timeout=alerts.number("timeout", 10.0),
            email=_read_email(email) if email is not None else None,
        )
    metrics = top.table("metrics", _METRICS_KEYS)
    if metrics is not None:
        if metrics.has("token") and metrics.has("token_file"):
            raise metrics.fail("", "expected at most one of token, token_file, got both")
        token = metrics.string("token", secret=True)
        if token:
            register_secret(token)
        result["metrics"] = MetricsConfig(metrics.boolean("enabled", True), token, metrics.path("token_file"))
    return result


def _read_email(table: _Table) -> EmailAlertConfig:
    to = table.strings("to", ())
    if not to:
        raise table.missing("to", "a non-empty array of e-mail addresses")
    sender = table.string("from", required=True)
    host = table.string("host", required=True)
    assert sender is not None and host is not None
    security = table.choice("security", SECURITY_MODES, "starttls")
    port = table.integer("port", {"tls": 465, "starttls": 587, "none": 25}[security], low=1, high=65535)
    username = table.string("username")
    password = _read_password(table, "alerts.email", required=False)
    oauth2_account = table.string("oauth2_account")
    if password is not None and oauth2_account is not None:
        raise table.fail("oauth2_account", "not used with a password: the login presents that account's OAuth2 token")
    if password is not None and username is None:
        raise table.missing("username", "a string (a password is given)")
    return EmailAlertConfig(
        to=to,
        sender=sender,
        host=host,
        port=port,
        security=security,
        username=username,
        password=password,
        tls_ca_file=table.path("tls_ca_file", must_exist=True),
        tls_verify=table.boolean("tls_verify", True),
        oauth2_account=oauth2_account,
    )


def _with_alert_account(
    alerts: AlertsConfig, accounts: tuple[AccountConfig, ...], label: str
) -> tuple[AlertsConfig, tuple[AccountConfig, ...]]:
    """Check that ``oauth2_account`` names an ``auth = "oauth2"`` account; its user name is the default login.

    That account's grant must also allow sending: where its scopes are the
    provider's defaults, they become the defaults for an account that sends
    mail too (Microsoft: ``SMTP.Send``), so ``archiver auth`` asks for it.
    """
    email = alerts.email
    assert email is not None and email.oauth2_account is not None
    account = next((a for a in accounts if a.name == email.oauth2_account), None)
    where = f"{label}: alerts.email.oauth2_account"
    if account is None:
        raise ConfigError(f"{where}: no account is named {email.oauth2_account!r}")
    if account.oauth2 is None:
        raise ConfigError(f'{where}: account {account.name!r} logs in with a password, not auth = "oauth2"')
    endpoints = account.oauth2.endpoints
    if endpoints is not None and endpoints.scopes == default_scopes(endpoints.provider, account.protocol):
        sending = replace(endpoints, scopes=default_scopes(endpoints.provider, account.protocol, smtp=True))
        sender = replace(account, oauth2=replace(account.oauth2, endpoints=sending))
        accounts = tuple(sender if a is account else a for a in accounts)
    alerts = replace(alerts, email=replace(email, username=email.username or account.username))
    return alerts, accounts


def _read_account(table: _Table) -> AccountConfig:
    name = table.string("name", required=True)
    assert name is not None
    if not _ACCOUNT_NAME.fullmatch(name):
        raise table.error("name", "letters, digits, '.', '_' or '-' only", name)
    protocol = table.choice("protocol", PROTOCOLS, required=True)
    local = protocol == "local"
    security = table.choice("security", SECURITY_MODES, "tls")
    host = table.string("host")
    username = table.string("username")
    if not local:
        for key, value in (("host", host), ("username", username)):
            if value is None:
                raise table.missing(key, f"a string (required for protocol {protocol!r})")
    port = table.integer("port", None if local else DEFAULT_PORTS[protocol, security == "tls"], low=1, high=65535)
    folders = table.table("folders", _FOLDER_KEYS)
    if protocol != "pop3" and table.has("pop3_auth"):  # would be silently ignored: a typo-level mistake
        raise table.fail("pop3_auth", f'only for protocol "pop3"; this account uses {protocol!r}')
    # -- auth = "oauth2" (archiver.config.oauth): its secrets are read like passwords, the password keys refused
    oauth2 = read_oauth(
        table,
        name,
        protocol,
        _read_password(table, name, required=False, keys=CLIENT_SECRET_KEYS),
        _read_password(table, name, required=False, keys={"token_command": "command"}),
    )
    for key in PASSWORD_KEYS if oauth2 else ():
        if table.has(key):
            raise table.fail(key, 'not used with auth = "oauth2" (the login presents an OAuth2 token); remove it')
    return AccountConfig(
        name=name,
        protocol=protocol,
        host=host,
        port=port,
        security=security,
        username=username,
        password=_read_password(table, name, required=not local and oauth2 is None),
        tls_ca_file=table.path("tls_ca_file", must_exist=True),
        tls_verify=table.boolean("tls_verify", True),
        timeout=table.number("timeout", 60.0),
        folders=_read_folders(folders) if folders else FolderFilter(),
        schedule=_schedule(table, "schedule"),
        pop3_auth=table.choice("pop3_auth", POP3_AUTH_MODES, "auto"),
        oauth2=oauth2,
    )


def _read_password(
    table: _Table, account: str, required: bool, keys: Mapping[str, str] = PASSWORD_KEYS
) -> PasswordSource | None:
    """The one secret given by one of ``keys`` (key -> kind: value, file, command, env)."""
    given = [key for key in keys if table.has(key)]
    choices = ", ".join(keys)
    if len(given) > 1:
        raise table.fail("", f"expected exactly one of {choices}, got {len(given)} ({', '.join(given)})")
    if not given:
        if required:
            raise table.fail("", f"expected one of {choices} (a password is required), got none")
        return None
    key = given[0]
    kind = keys[key]
    where = {"account": account, "key": table.key_path(key)}
    if kind == "file":
        return PasswordSource("file", file=table.path(key), **where)
    value = table.string(key, secret=kind == "value")
    if kind == "value":
        return PasswordSource("value", value=value, **where)
    if kind == "env":
        return PasswordSource("env", env=value, **where)
    try:
        argv = shlex.split(value or "")
    except ValueError as exc:
        raise table.fail(
            key, f"expected a command line split like a shell's (no shell is run), got {_describe(value)} ({exc})"
        ) from None
    if not argv:
        raise table.error(key, "a command line", value)
    return PasswordSource("command", command=value, **where)


def _read_folders(table: _Table) -> FolderFilter:
    include = table.strings("include", ("*",))
    if not include:
        raise table.error("include", 'a non-empty array of glob patterns (use ["*"] for all folders)', [])
    return FolderFilter(include=include, exclude=table.strings("exclude", ()))


def _check_unique_names(accounts: tuple[AccountConfig, ...], label: str) -> None:
    first_index: dict[str, int] = {}
    for index, account in enumerate(accounts):
        if account.name in first_index:
            raise ConfigError(
                f"{label}: accounts[{index}].name: duplicate account name {account.name!r} "
                f"(already used by accounts[{first_index[account.name]}]); names must be unique"
            )
        first_index[account.name] = index


def _permission_warnings(accounts: tuple[AccountConfig, ...], label: str, file_mode: int | None) -> list[str]:
    """Secrets readable by other users are worth a warning, not a refusal (a backup beats none)."""
    warnings = []
    secrets = [s for a in accounts for s in (a.password, a.oauth2 and a.oauth2.client_secret) if s]
    literal = [s.key for s in secrets if s.kind == "value"]
    if literal and file_mode is not None and file_mode & 0o077:
        warnings.append(
            f"{label}: holds a literal password ({', '.join(literal)}) but is accessible by group or others "
            f"(mode {file_mode & 0o777:04o}); run chmod 600 on it, or use password_file, password_command "
            "or password_env"
        )
    for source in secrets:
        if source.kind == "file" and source.file:
            try:
                mode = source.file.stat().st_mode
            except OSError:
                continue  # resolved late: a missing file is reported when the account connects
            if mode & 0o077 and stat.S_ISREG(mode):  # a FIFO or device is refused when resolved
                warnings.append(
                    f"{label}: {source.key}: {source.file} is accessible by group or others "
                    f"(mode {mode & 0o777:04o}); run chmod 600 on it"
                )
    return warnings


# -- the reader --------------------------------------------------------------------------------

_MISSING: Any = object()


class _Table:
    """One TOML table being validated: typed getters that know the key path and the declared keys.

    Unknown keys are reported as soon as the table is opened, before any
    cross-key check, because a typo ("pasword") is the likeliest cause of a
    later "no password given" and the suggestion is the more useful message.
    """

    def __init__(self, data: Mapping[str, Any], prefix: str, label: str, base_dir: Path, keys: Iterable[str]) -> None:
        self.data = data
        self.prefix = prefix
        self.label = label
        self.base_dir = base_dir
        self.keys = tuple(keys)
        self._check_unknown()

    def key_path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix and key else self.prefix or key

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.label}: {self.key_path(key) or '(top level)'}: {message}")

    def error(self, key: str, expected: str, value: Any, *, secret: bool = False) -> ConfigError:
        return self.fail(key, f"expected {expected}, got {_describe(value, secret)}")

    def missing(self, key: str, expected: str) -> ConfigError:
        return self.fail(key, f"missing required key (expected {expected})")

    def has(self, key: str) -> bool:
        assert key in self.keys, f"undeclared key {key!r}"
        return key in self.data

    def _get(self, key: str, required: bool, expected: str) -> Any:
        if not self.has(key):
            if required:
                raise self.missing(key, expected)
            return _MISSING
        return self.data[key]

    def string(
        self, key: str, default: str | None = None, *, required: bool = False, secret: bool = False
    ) -> str | None:
        value = self._get(key, required, "a string")
        if value is _MISSING:
            return default
        if not isinstance(value, str) or not value:
            raise self.error(key, "a non-empty string", value, secret=secret)
        return value

    def choice(self, key: str, options: tuple[str, ...], default: str = "", *, required: bool = False) -> str:
        expected = "one of " + ", ".join(json.dumps(o) for o in options)
        value = self._get(key, required, expected)
        if value is _MISSING:
            return default
        if value not in options:
            close = difflib.get_close_matches(str(value), options, n=1)
            hint = f"; did you mean {json.dumps(close[0])}?" if close else ""
            raise self.fail(key, f"expected {expected}, got {_describe(value)}{hint}")
        return value

    def integer(self, key: str, default: _T, *, low: int | None = None, high: int | None = None) -> int | _T:
        if high is not None:
            expected = f"an integer from {low} to {high}"
        else:
            expected = f"an integer of at least {low}" if low is not None else "an integer"
        value = self._get(key, False, expected)
        if value is _MISSING:
            return default
        # bool is a subclass of int: TOML `port = true` must not become port 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, expected, value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.error(key, expected, value)
        return value

    def number(self, key: str, default: float) -> float:
        expected = "a number greater than 0"
        value = self._get(key, False, expected)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
            raise self.error(key, expected, value)
        return float(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False, "true or false")
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            raise self.error(key, "true or false", value)
        return value

    def path(self, key: str, *, required: bool = False, must_exist: bool = False) -> Path | None:
        """A path: ``~`` expanded, relative paths taken relative to the config file's directory."""
        raw = self.string(key, required=required)
        if raw is None:
            return None
        path = Path(raw).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        if must_exist and not path.is_file():
            raise self.fail(key, f"expected an existing file, got {json.dumps(raw)} ({path} does not exist)")
        return path

    def strings(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(key, False, "an array of strings")
        if value is _MISSING:
            return default
        if not isinstance(value, list):
            raise self.error(key, "an array of strings", value)
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise self.error(f"{key}[{index}]", "a non-empty string", item)
        return tuple(value)

    def table(self, key: str, keys: Iterable[str], *, required: bool = False) -> _Table | None:
        value = self._get(key, required, f"a table [{self.key_path(key)}]")
        if value is _MISSING:
            return None
        if not isinstance(value, dict):
            raise self.error(key, f"a table [{self.key_path(key)}]", value)
        return _Table(value, self.key_path(key), self.label, self.base_dir, keys)

    def tables(self, key: str, keys: Iterable[str]) -> list[_Table]:
        """An array of tables (``[[key]]``); each element's path is ``key[i]``, 0-based."""
        expected = f"an array of tables [[{self.key_path(key)}]]"
        value = self._get(key, False, expected)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise self.error(key, expected, value)
        keys = tuple(keys)
        return [
            _Table(item, f"{self.key_path(key)}[{i}]", self.label, self.base_dir, keys) for i, item in enumerate(value)
        ]

    def _check_unknown(self) -> None:
        unknown = [key for key in self.data if key not in self.keys]
        if not unknown:
            return
        problems = []
        for key in unknown:
            close = difflib.get_close_matches(key, self.keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{self.key_path(key)}: unknown key{hint}")
        where = f" in [{self.prefix}]" if self.prefix else " at the top level"
        raise ConfigError(f"{self.label}: {', '.join(problems)}; valid keys{where}: {', '.join(self.keys)}")


def _describe(value: Any, secret: bool = False) -> str:
    """A found value as the user wrote it in TOML; for secrets only its type."""
    if isinstance(value, bool):
        return "a boolean" if secret else str(value).lower()
    if isinstance(value, int | float):
        return "a number" if secret else repr(value)
    if isinstance(value, str):
        if secret:
            return "an empty string" if not value else "a string"
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 80 else text[:76] + '..."'
    if isinstance(value, list):
        return "an empty array" if not value else "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}" if secret else f"a date/time ({value.isoformat()})"


def _strip_newline(text: str) -> str:
    """Remove exactly one trailing newline (``\\n`` or ``\\r\\n``): a password may end in spaces."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text
