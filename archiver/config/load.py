"""Load ``config.toml`` and validate it into the dataclasses of :mod:`archiver.config.model`.

Why so strict: a backup tool that silently ignores ``pasword_file`` or a
misspelt ``[acounts]`` table backs up nothing and says nothing.  So every key
is declared (:data:`~archiver.config.model.KEYS_BY_TABLE`), unknown keys are
errors with the closest valid key suggested, and every error names the file,
the key path and what was expected versus found (:mod:`archiver.config.reader`).

Passwords are never read at load time: the config holds a
:class:`~archiver.config.secrets.PasswordSource` that fetches the password when
a connection is made.

Adding a top-level section (``[web]``, ``[scheduler]``…) means adding its
tables to ``KEYS_BY_TABLE``, a dataclass and a ``_read_…`` function of a few
lines here.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import stat
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from archiver.config.model import (
    ARRAY_TABLES,
    DEFAULT_MAX_MESSAGE_BYTES,
    DEFAULT_PORTS,
    INDEX_UPDATES,
    KEYS_BY_TABLE,
    MIN_INDEX_MEMORY_MB,
    POP3_AUTH_MODES,
    PROTOCOLS,
    SECURITY_MODES,
    AccountConfig,
    AlertsConfig,
    ArchiveConfig,
    Config,
    EmailAlertConfig,
    FolderFilter,
    IndexConfig,
    MetricsConfig,
    SchedulerConfig,
    WebConfig,
    WebUser,
)
from archiver.config.oauth import CLIENT_SECRET_KEYS, read_oauth
from archiver.config.provider import check_preset_auth, provider_endpoint, provider_port, read_provider
from archiver.config.reader import Schema, Table
from archiver.config.schedule import parse_duration, parse_schedule
from archiver.config.secrets import PASSPHRASE_KEYS, PASSWORD_KEYS, PasswordSource, read_password_keys
from archiver.config.storage import read_store_location
from archiver.errors import ConfigError
from archiver.logs import register_secret
from archiver.oauth.providers import default_scopes

log = logging.getLogger("archiver.config")

#: Where :func:`find_config_path` looks last (a module attribute so tests can point it elsewhere).
SYSTEM_CONFIG_PATH = Path("/etc/archiver/config.toml")
LOCAL_CONFIG_NAME = "archiver.toml"
SCHEMA = Schema(KEYS_BY_TABLE, ARRAY_TABLES)
_T = TypeVar("_T")
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9._-]+")


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
    top = Table.top(data, label, source.absolute().parent, SCHEMA)
    archive_table = top.table("archive", required=True)
    assert archive_table is not None
    archive = _read_archive(archive_table)
    accounts = tuple(_read_account(t) for t in top.tables("accounts"))
    _check_unique_names(accounts, label)
    web_table = top.table("web")
    web = _read_web(web_table, {a.name for a in accounts}) if web_table is not None else WebConfig()
    warnings = _permission_warnings(accounts, label, file_mode, archive.passphrase)
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


def _read_archive(table: Table) -> ArchiveConfig:
    path = table.path("path", required=True)
    assert path is not None
    return ArchiveConfig(
        path=path,
        compression_level=table.integer("compression_level", 3, low=1, high=22),
        batch_bytes=table.integer("batch_bytes", 8 * 2**20, low=1),
        batch_messages=table.integer("batch_messages", 500, low=1),
        max_run_time=_duration(table, "max_run_time", 24 * 3600) or None,  # 0: no limit
        reconnect_attempts=table.integer("reconnect_attempts", 5, low=0, high=20),
        throttle_patience=_duration(table, "throttle_patience", 15 * 60),
        group_readable=table.boolean("group_readable", False),
        max_message_bytes=table.integer("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES, low=1024),
        **_read_encryption(table),
        store=read_store_location(table),
    )


def _read_encryption(table: Table) -> dict[str, Any]:
    """``encryption`` and what unlocks the key: exactly one passphrase source or ``key_file`` when it is on."""
    encryption = table.boolean("encryption", False)
    passphrase = read_password_keys(table, "", required=False, keys=PASSPHRASE_KEYS)
    key_file = table.path("key_file")
    given = [key for key in (*PASSPHRASE_KEYS, "key_file") if table.has(key)]
    if encryption and len(given) != 1:
        raise table.fail(
            "", f"encryption = true needs exactly one of {', '.join((*PASSPHRASE_KEYS, 'key_file'))}, got {len(given)}"
        )
    if not encryption and given:
        raise table.fail(given[0], "only used with encryption = true (set it, or remove this key)")
    return {"encryption": encryption, "passphrase": passphrase, "key_file": key_file}


def _read_web(table: Table, account_names: set[str]) -> WebConfig:
    listen = table.string("listen") or "127.0.0.1:8080"
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise table.error("listen", 'an address "HOST:PORT" such as "127.0.0.1:8080"', listen)
    users: list[WebUser] = []
    for user in table.tables("users"):
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


def _schedule(table: Table, key: str) -> str | None:
    """A schedule string, parsed now so a typo fails at load time, naming the key."""
    value = table.string(key)
    if value is None:
        return None
    try:
        parse_schedule(value)
    except ValueError as exc:
        raise table.fail(key, str(exc)) from None
    return value


def _duration(table: Table, key: str, default: _T) -> int | _T:
    """Seconds, as an integer or a string like "30m", "2h", "1d"."""
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


def _url(table: Table, key: str) -> str | None:
    value = table.string(key)
    if value is not None and not re.match(r"https?://[^/\s]+", value):
        raise table.error(key, "an http:// or https:// URL", value)
    return value


def _read_appliance(top: Table) -> dict[str, Any]:
    """The optional sections ([index] and the daemon's); each absent section takes its defaults."""
    result: dict[str, Any] = {}
    index = top.table("index")
    if index is not None:
        result["index"] = IndexConfig(
            index.integer("memory_mb", IndexConfig.memory_mb, low=MIN_INDEX_MEMORY_MB),
            index.choice("update", INDEX_UPDATES, IndexConfig.update),
        )
    scheduler = top.table("scheduler")
    if scheduler is not None:
        result["scheduler"] = SchedulerConfig(
            default_schedule=_schedule(scheduler, "default_schedule") or SchedulerConfig.default_schedule,
            jitter=_duration(scheduler, "jitter", SchedulerConfig.jitter),
            max_concurrent=scheduler.integer("max_concurrent", 2, low=1, high=64),
            misfire_grace=_duration(scheduler, "misfire_grace", SchedulerConfig.misfire_grace),
            stale_after=_duration(scheduler, "stale_after", None),
        )
    alerts = top.table("alerts")
    if alerts is not None:
        email = alerts.table("email")
        result["alerts"] = AlertsConfig(
            webhook_url=_url(alerts, "webhook_url"),
            healthcheck_url=_url(alerts, "healthcheck_url"),
            on_failure=alerts.boolean("on_failure", True),
            on_recovery=alerts.boolean("on_recovery", True),
            timeout=alerts.number("timeout", 10.0),
            email=_read_email(email) if email is not None else None,
        )
    metrics = top.table("metrics")
    if metrics is not None:
        if metrics.has("token") and metrics.has("token_file"):
            raise metrics.fail("", "expected at most one of token, token_file, got both")
        token = metrics.string("token", secret=True)
        if token:
            register_secret(token)
        result["metrics"] = MetricsConfig(metrics.boolean("enabled", True), token, metrics.path("token_file"))
    return result


def _read_email(table: Table) -> EmailAlertConfig:
    to = table.strings("to", ())
    if not to:
        raise table.missing("to", "a non-empty array of e-mail addresses")
    sender = table.string("from", required=True)
    preset = read_provider(table)  # provider = "gmail": the preset's SMTP server (archiver.config.provider)
    smtp = preset.smtp if preset else None
    host = table.string("host", smtp.host if smtp else None, required=smtp is None)
    assert sender is not None and host is not None
    security = table.choice("security", SECURITY_MODES, smtp.security if smtp else "starttls")
    default_port = provider_port(smtp, security, {"tls": 465, "starttls": 587, "none": 25}[security])
    port = table.integer("port", default_port, low=1, high=65535)
    username = table.string("username")
    password = read_password_keys(table, "alerts.email", required=False)
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


def _read_account(table: Table) -> AccountConfig:
    name = table.string("name", required=True)
    assert name is not None
    if not _ACCOUNT_NAME.fullmatch(name):
        raise table.error("name", "letters, digits, '.', '_' or '-' only", name)
    preset = read_provider(table)  # provider = "gmail": defaults from a preset (archiver.config.provider)
    protocol = table.choice("protocol", PROTOCOLS, "imap", required=preset is None)
    local = protocol == "local"
    endpoint = provider_endpoint(table, preset, protocol)
    security = table.choice("security", SECURITY_MODES, endpoint.security if endpoint else "tls")
    host = table.string("host", endpoint.host if endpoint else None)
    username = table.string("username")
    if not local:
        for key, value in (("host", host), ("username", username)):
            if value is None:
                raise table.missing(key, f"a string (required for protocol {protocol!r})")
    default_port = None if local else provider_port(endpoint, security, DEFAULT_PORTS[protocol, security == "tls"])
    port = table.integer("port", default_port, low=1, high=65535)
    folders = table.table("folders")
    if protocol != "pop3" and table.has("pop3_auth"):  # would be silently ignored: a typo-level mistake
        raise table.fail("pop3_auth", f'only for protocol "pop3"; this account uses {protocol!r}')
    # -- auth = "oauth2" (archiver.config.oauth): its secrets are read like passwords, the password keys refused
    check_preset_auth(table, preset, PASSWORD_KEYS)
    oauth2 = read_oauth(
        table,
        name,
        protocol,
        read_password_keys(table, name, required=False, keys=CLIENT_SECRET_KEYS),
        read_password_keys(table, name, required=False, keys={"token_command": "command"}),
        default_auth=preset.auth if preset else "password",
        default_provider=preset.oauth2_provider if preset else None,
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
        password=read_password_keys(table, name, required=not local and oauth2 is None),
        tls_ca_file=table.path("tls_ca_file", must_exist=True),
        tls_verify=table.boolean("tls_verify", True),
        timeout=table.number("timeout", 60.0),
        folders=_read_folders(folders) if folders else FolderFilter(),
        schedule=_schedule(table, "schedule"),
        pop3_auth=table.choice("pop3_auth", POP3_AUTH_MODES, "auto"),
        oauth2=oauth2,
        provider=preset.name if preset else None,
    )


def _read_folders(table: Table) -> FolderFilter:
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


def _permission_warnings(
    accounts: tuple[AccountConfig, ...], label: str, file_mode: int | None, passphrase: PasswordSource | None
) -> list[str]:
    """Secrets readable by other users are worth a warning, not a refusal (a backup beats none)."""
    warnings = []
    secrets = [s for a in accounts for s in (a.password, a.oauth2 and a.oauth2.client_secret) if s]
    secrets += [passphrase] if passphrase else []
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
