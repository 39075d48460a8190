"""Where a password lives and how it is fetched.

:class:`PasswordSource` is what the config holds for a password: it says where the
password lives (:func:`read_password_keys` reads it from the ``password*`` keys, or
from other keys of the same four kinds such as an OAuth2 client secret), and
:meth:`PasswordSource.resolve` fetches it when a connection is made, so a rotated
secret is picked up by the next run and a broken password command does not stop
``archiver status``.  The fetching itself, bounded in size and time, is
:mod:`archiver.secret_io`.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from archiver.config.reader import Table, describe
from archiver.errors import SecretError
from archiver.logs import register_secret

#: Far above any password or token; far below anything that could hurt memory.
#: The keys that say where a password lives (exactly one per account) and the PasswordSource kind of each.
PASSWORD_KEYS = {"password": "value", "password_file": "file", "password_command": "command", "password_env": "env"}
#: The keys of ``[archive]`` that say where the encryption passphrase lives (archiver.store.keys).
PASSPHRASE_KEYS = {
    "passphrase": "value",
    "passphrase_file": "file",
    "passphrase_command": "command",
    "passphrase_env": "env",
}
#: How long a ``password_command`` may run (a module attribute so tests can shorten it).
PASSWORD_COMMAND_TIMEOUT = 30.0


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
            what = "passphrase" if "passphrase" in self.key else "password"
            raise SecretError(f"{self._where()}: the {what} is empty")
        register_secret(secret)
        return secret

    def _where(self) -> str:
        if not self.account:  # a secret of no account (the archive's passphrase, the object store's keys)
            return self.key or "secret"
        return f"account {self.account!r}: {self.key or 'password'}"

    def _from_file(self) -> str:
        from archiver.secret_io import read_secret_file  # subprocess and selectors: only once a secret is read

        data = read_secret_file(Path(self.file or ""), self._where())
        try:
            return _strip_newline(data.decode("utf-8"))
        except UnicodeDecodeError:
            raise SecretError(f"{self._where()}: {self.file} is not valid UTF-8") from None

    def _from_command(self) -> str:
        from archiver.secret_io import run_secret_command  # subprocess and selectors: only once a secret is read

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


def read_password_keys(
    table: Table, account: str, required: bool, keys: Mapping[str, str] = PASSWORD_KEYS
) -> PasswordSource | None:
    """The one secret a config table gives by one of ``keys`` (key -> kind: value, file, command, env).

    Checked now (one key at most, a command line that splits), fetched later by
    :meth:`PasswordSource.resolve`; ``account`` and the key path name it in every error.
    """
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
            key, f"expected a command line split like a shell's (no shell is run), got {describe(value)} ({exc})"
        ) from None
    if not argv:
        raise table.error(key, "a command line", value)
    return PasswordSource("command", command=value, **where)


def _strip_newline(text: str) -> str:
    """Remove exactly one trailing newline (``\\n`` or ``\\r\\n``): a password may end in spaces."""
    if text.endswith("\r\n"):
        return text[:-2]
    return text[:-1] if text.endswith("\n") else text
