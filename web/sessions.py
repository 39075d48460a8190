"""Server-side login sessions: logout, a password change and a revoke end them for good.

The session cookie (signed by Flask) carries only a random token; the catalog
(``web_sessions``, migration 6) keeps the token's sha256, the user, a digest of
the user's ``password_hash`` at login, and the times of login and of the last
request.  A request's session is valid only while its row exists, the user is
still configured with the same password hash, it was used within
``[web] session_idle_timeout`` and it is younger than ``session_lifetime``.  So
a cookie copied before logout opens nothing afterwards, and neither does one
made before the password changed in the config or before
``archiver sessions revoke``.

The store keeps one catalog connection per server thread (not the app's
shared one, which may be inside another thread's transaction); each of its
statements is its own transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from archiver.catalog import Catalog
from archiver.config import WebUser
from archiver.times import epoch_iso

TOUCH_EVERY = 60.0  # seconds: last_seen_at is written at most this often per session (one fsync each)


@dataclass(frozen=True)
class LiveSession:
    """A session as the sessions page shows it (never its token)."""

    user: str
    created_at: str  # ISO 8601, UTC
    last_seen_at: str
    this_browser: bool


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def credential(user: WebUser) -> str:
    """What binds a session to the password it was opened with: a digest of the user's argon2 hash."""
    return _digest("web-credential:" + user.password_hash)


class SessionStore:
    """Start, check and end login sessions of one archive; ``clock`` is Unix time (tests move it forward)."""

    def __init__(
        self, archive_root: Path, idle_timeout: int, lifetime: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.root = archive_root
        self.idle_timeout = idle_timeout
        self.lifetime = lifetime
        self.clock = clock
        self.touch_every = min(TOUCH_EVERY, idle_timeout / 10)
        self._local = threading.local()
        self._opened: list[Catalog] = []
        self._opened_lock = threading.Lock()

    @contextmanager
    def _catalog(self) -> Iterator[Catalog]:
        """This thread's connection to the catalog (opened at its first use: a thread serves one request at a time)."""
        catalog = getattr(self._local, "catalog", None)
        if catalog is None:
            catalog = self._local.catalog = Catalog.open(self.root)
            with self._opened_lock:
                self._opened.append(catalog)
        yield catalog

    def close(self) -> None:
        """Close every thread's connection (the server has stopped, or a reloaded app replaced this one)."""
        with self._opened_lock:
            for catalog in self._opened:
                catalog.close()
            self._opened.clear()
        self._local = threading.local()

    def start(self, user: WebUser) -> str:
        """A new session of ``user``: the token for the cookie (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._catalog() as catalog:
            catalog.purge_web_sessions(now - self.lifetime, now - self.idle_timeout)
            catalog.add_web_session(_digest(token), user.name, credential(user), now)
        return token

    def check(self, token: str, users: Mapping[str, WebUser]) -> WebUser | None:
        """The user of a live session, or None (and the dead session is deleted)."""
        key = _digest(token)
        now = self.clock()
        with self._catalog() as catalog:
            row = catalog.web_session(key)
            if row is None:
                return None
            user = users.get(row["user"])
            alive = (
                user is not None
                and secrets.compare_digest(row["credential"], credential(user))
                and now - row["created_at"] < self.lifetime
                and now - row["last_seen_at"] < self.idle_timeout
            )
            if not alive:
                catalog.end_web_sessions(token_hash=key)
                return None
            if now - row["last_seen_at"] >= self.touch_every:
                catalog.touch_web_session(key, now)
            return user

    def end(self, token: str) -> None:
        with self._catalog() as catalog:
            catalog.end_web_sessions(token_hash=_digest(token))

    def end_user(self, name: str) -> int:
        """End every session of ``name`` (the revoke of ``archiver sessions revoke`` and the sessions page)."""
        with self._catalog() as catalog:
            return catalog.end_web_sessions(user=name)

    def live(self, users: set[str], current_token: str) -> list[LiveSession]:
        """The live sessions of ``users``, oldest first per user; ``this_browser`` marks ``current_token``'s."""
        now = self.clock()
        current = _digest(current_token)
        with self._catalog() as catalog:
            catalog.purge_web_sessions(now - self.lifetime, now - self.idle_timeout)
            rows = catalog.web_sessions()
        return [
            LiveSession(r["user"], epoch_iso(r["created_at"]), epoch_iso(r["last_seen_at"]), r["token_hash"] == current)
            for r in rows
            if r["user"] in users
        ]
