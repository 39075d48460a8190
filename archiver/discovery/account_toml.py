"""An ``[[accounts]]`` table for discovered settings, as TOML text, and adding it to a config file.

The config file is the operator's: its comments, order and layout stay as they are.  So the
table is *appended* as text, never produced by re-serialising parsed TOML; and the file is
replaced only once the new whole has passed the config reader (a duplicate name, a clash with
what the file already holds) and is durable (temp file in the same directory, fsync, rename,
the old file's permissions kept).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from archiver.config import config_from_toml_text
from archiver.discovery.model import Discovery
from archiver.discovery.presets import PRESETS
from archiver.errors import ConfigError


@dataclass(frozen=True)
class AccountEntry:
    """What goes into the table besides the discovered server: name and where the secret comes from.

    ``secret`` is one ``(key, value)`` such as ``("password_command", "pass show mail")`` or
    ``("password_file", "bob.password")``, or None (OAuth2 accounts); ``extra`` are further
    ``(key, value)`` pairs (``tls_ca_file``, ``oauth2_client_id``…), written in order.
    """

    name: str
    secret: tuple[str, str] | None = None
    auth: str | None = None  # "password" to override an OAuth2 preset (an app password)
    extra: tuple[tuple[str, object], ...] = ()


def render_account(discovery: Discovery, entry: AccountEntry) -> str:
    """The ``[[accounts]]`` table, preceded by a comment saying where its settings came from.

    With a preset only ``provider`` and what differs from it are written, so a provider moving
    a server is followed by editing one table in this project, not every config.
    """
    server = discovery.server
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    lines = [
        f"# Added by `archiver account add` on {stamp}; settings from {_comment(discovery.origin)}.",
        "[[accounts]]",
        f"name = {_toml(entry.name)}",
        f"protocol = {_toml(server.protocol)}",
    ]
    preset = PRESETS.get(discovery.preset or "")
    if preset is not None:
        lines.insert(3, f"provider = {_toml(preset.name)}")
        if entry.auth and entry.auth != preset.auth:
            lines.append(f"auth = {_toml(entry.auth)}")
    else:
        lines += [f"host = {_toml(server.host)}", f"port = {server.port}", f"security = {_toml(server.security)}"]
        if server.auth != "password":
            lines.append(f"auth = {_toml(server.auth)}")
            if server.oauth2_provider:
                lines.append(f"oauth2_provider = {_toml(server.oauth2_provider)}")
    lines.append(f"username = {_toml(server.username)}")
    for key, value in ((entry.secret,) if entry.secret else ()) + entry.extra:
        lines.append(f"{key} = {_toml(value)}")
    return "\n".join(lines) + "\n"


def append_account(config_path: Path, table: str) -> None:
    """Append ``table`` to the config file, atomically, after checking the result loads (:func:`appended`)."""
    path = config_path.resolve()  # a symlinked config: replace the file, not the link
    new_text = appended(path, table)
    _replace(path, new_text.encode("utf-8"), path.stat().st_mode & 0o7777)


def appended(config_path: Path, table: str) -> str:
    """The config file's text with ``table`` appended, checked by the project's own reader.

    Whatever the reader would refuse at the next run (a second account of the same name…) is
    refused now, before a password is asked for or anything is written.
    """
    try:
        text = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{config_path}: config file not found (use --print to see the table instead)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read the config file ({exc})") from None
    separator = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
    new_text = f"{text}{separator}{table}"
    config_from_toml_text(new_text, config_path)
    return new_text


def write_secret_file(path: Path, secret: str) -> None:
    """Create ``path`` holding ``secret`` and a newline, mode 0600 from the first byte; never overwrite."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path} already exists; not overwritten (choose another --name)") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {path}: {exc.strerror or exc}") from None
    try:
        os.write(fd, secret.encode("utf-8") + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes, mode: int) -> None:
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ConfigError(f"{path}: cannot write the config file: {exc.strerror or exc}") from None
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _toml(value: object) -> str:
    """A TOML value: JSON's string escapes are valid TOML basic-string escapes."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def _comment(text: str) -> str:
    return " ".join(text.split())
