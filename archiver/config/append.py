"""Adding an ``[[accounts]]`` table to the operator's config file, and reading such a table back.

The config file is the operator's: its comments, order and layout stay as they are.  So a table
is *appended* as text (``archiver account add``), never produced by re-serialising parsed TOML;
and the file is replaced only once the new whole has passed this package's reader (a duplicate
name, a clash with what the file already holds) and is durable (temp file in the same
directory, fsync, rename, the old file's permissions kept).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from archiver.config import AccountConfig, config_from_toml_text
from archiver.errors import ConfigError


def account_from_table(table: str, config_path: Path) -> AccountConfig:
    """The account an ``[[accounts]]`` table gives, read as the config file at ``config_path`` would read it."""
    text = f'[archive]\npath = "archive"\n\n{table}'
    return config_from_toml_text(text, config_path).accounts[0]


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
