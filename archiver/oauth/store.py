"""The token file: one account's refresh token (and current access token) on disk, owner-only.

Why a file per account and not the catalog: the refresh token is a credential
as strong as a password for as long as it lives, so it gets what a password
file gets: mode 0600 in a 0700 directory, a warning when someone widened it,
atomic replacement (temp + fsync + rename, then the directory fsynced) so a
crash never leaves half a token, and no way to reach logs, ``repr`` or an
error message.  Providers that rotate refresh tokens (Microsoft) hand out a new
one on every refresh: losing that write would lock the account out, hence the
care, and why refreshes hold ``<account>.json.lock`` (see :meth:`TokenFile.locked`).
The default place is ``<archive>/oauth/<account>.json``.

Format (JSON, version 1)::

    {"version": 1, "account": "work", "refresh_token": "...", "access_token": "...",
     "expires_at": 1767225600.0, "scope": "...", "saved_at": "2026-01-01T00:00:00Z"}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archiver.config.secrets import read_secret_file
from archiver.errors import AuthError, ConfigError, SecretError
from archiver.logs import register_secret

log = logging.getLogger("archiver.oauth")
FORMAT_VERSION = 1


def default_token_path(archive_root: Path, account: str) -> Path:
    return archive_root / "oauth" / f"{account}.json"


@dataclass(frozen=True, repr=False)
class StoredToken:
    """A token as the provider gave it; ``expires_at`` is epoch seconds (None: unknown, treat as expired)."""

    refresh_token: str | None
    access_token: str | None = None
    expires_at: float | None = None
    scope: str = ""

    def __repr__(self) -> str:
        return f"StoredToken(refresh_token={'<hidden>' if self.refresh_token else None}, expires_at={self.expires_at})"

    __str__ = __repr__

    @classmethod
    def from_answer(cls, answer: dict[str, Any], previous: StoredToken | None = None) -> StoredToken:
        """From a token endpoint's answer; keeps ``previous``'s refresh token when none is returned (Google)."""
        expires_at = answer.get("expires_at")
        if expires_at is None and isinstance(answer.get("expires_in"), int | float):
            expires_at = time.time() + float(answer["expires_in"])
        token = cls(
            refresh_token=answer.get("refresh_token") or (previous.refresh_token if previous else None),
            access_token=answer.get("access_token"),
            expires_at=float(expires_at) if isinstance(expires_at, int | float) else None,
            scope=str(answer.get("scope") or (previous.scope if previous else "")),
        )
        token.register()
        return token

    def register(self) -> None:
        """Mask both tokens in every later log line."""
        for value in (self.refresh_token, self.access_token):
            if value:
                register_secret(value)


class TokenFile:
    """One account's token file; ``load`` and ``save`` are the only ways in and out."""

    def __init__(self, path: Path, account: str) -> None:
        self.path = path
        self.account = account

    def __repr__(self) -> str:
        return f"TokenFile({str(self.path)!r})"

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> StoredToken:
        """The stored token; one clear line when there is none yet or the file is not ours."""
        where = f"account {self.account!r}: OAuth2 token file"
        if not self.path.exists():
            raise AuthError(
                f"account {self.account!r}: not authorised for OAuth2 yet (no {self.path}); "
                f"run `archiver auth {self.account}`"
            )
        try:
            data = read_secret_file(self.path, where)
        except SecretError as exc:
            raise ConfigError(str(exc)) from None
        self.warn_if_exposed()
        try:
            entry = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            entry = None
        if not isinstance(entry, dict) or entry.get("version") != FORMAT_VERSION:
            raise ConfigError(
                f"{where} {self.path} is not an archiver token file (damaged or edited?); "
                f"run `archiver auth {self.account}` to write a new one"
            )
        token = StoredToken(
            refresh_token=_text(entry.get("refresh_token")),
            access_token=_text(entry.get("access_token")),
            expires_at=entry["expires_at"] if isinstance(entry.get("expires_at"), int | float) else None,
            scope=_text(entry.get("scope")) or "",
        )
        token.register()
        return token

    def save(self, token: StoredToken) -> None:
        """Replace the file atomically with mode 0600 (its directory 0700 when we create it)."""
        entry = {
            "version": FORMAT_VERSION,
            "account": self.account,
            "refresh_token": token.refresh_token,
            "access_token": token.access_token,
            "expires_at": token.expires_at,
            "scope": token.scope,
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        directory = self.path.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=directory)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump(entry, out)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temp, self.path)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
            dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise ConfigError(
                f"account {self.account!r}: cannot write the OAuth2 token file {self.path}: {exc.strerror or exc}"
            ) from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock (``<file>.lock``, flock) across processes while a refresh reads and rewrites.

        Why: providers that rotate refresh tokens revoke the old one on use, so
        two processes refreshing from the same file at once (the daemon's run
        and a manual ``archiver backup``) would make one of them fail with a
        revoked grant.  Under the lock the second one re-reads the file and
        finds the first one's fresh token instead.
        """
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"account {self.account!r}: cannot lock the OAuth2 token file {self.path}: {exc.strerror or exc}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def warn_if_exposed(self) -> bool:
        """Log one warning when group or others may read the file; True if so."""
        try:
            mode = stat.S_IMODE(self.path.stat().st_mode)
        except OSError:
            return False
        if mode & 0o077:
            log.warning(
                "account %r: the OAuth2 token file %s is readable by group or others (mode %04o); run chmod 600 on it",
                self.account,
                self.path,
                mode,
            )
            return True
        return False


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
