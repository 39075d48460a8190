"""Back-off of failed web logins, per client address and per user name, that never locks out for good.

After :data:`FREE_FAILURES` failures of one key (5 for a user name, 20 for a
client address, which may try several names), the next attempt of that key
must wait 1 s, then 2 s, 4 s, … up to :data:`MAX_DELAY` (60 s) after each
further failure.  An attempt made before then is refused (429 with
``Retry-After``) *without* checking the password, so waiting is the only way
on: guessing is slowed to one try a minute per key, but the right password,
typed after the wait, always gets in.  A success clears the keys it used;
failures older than :data:`FORGET_AFTER` are forgotten.

Two keys per attempt: the client address (one client cannot try many users
quickly) and the user name (many clients cannot try one user quickly).  The
per-user key would let anyone slow a user down, so a browser that has logged
in as that user before (the signed known-device cookie, see
:mod:`web.auth`) is spared the user key and only pays for its own failures.
Behind a reverse proxy set ``[web] trusted_proxy`` so that the client address
is the real client's, not the proxy's.

State lives in memory (bounded by :data:`MAX_KEYS`): a restart forgets it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

FREE_FAILURES = {"user": 5, "client": 20}
FIRST_DELAY = 1.0
MAX_DELAY = 60.0
FORGET_AFTER = 15 * 60.0
MAX_KEYS = 10_000

Key = tuple[str, str]  # ("client", address) or ("user", name)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    blocked_until: float = 0.0


class LoginThrottle:
    """Failure counts per key; ``clock`` is monotonic seconds (tests move it forward)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._keys: dict[Key, _Failures] = {}
        self._lock = threading.Lock()

    def wait_for(self, keys: Iterable[Key]) -> float:
        """Seconds before an attempt with these keys may be checked; 0 when it may be checked now."""
        now = self.clock()
        with self._lock:
            waits = [self._current(key, now).blocked_until - now for key in keys]
        return max([0.0, *waits])

    def failed(self, keys: Iterable[Key]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._keys.setdefault(key, _Failures())
                entry = self._current(key, now)
                entry.count += 1
                entry.last = now
                extra = entry.count - FREE_FAILURES[key[0]]
                if extra >= 0:
                    entry.blocked_until = now + min(FIRST_DELAY * 2 ** min(extra, 16), MAX_DELAY)
            self._bound(now)

    def succeeded(self, keys: Iterable[Key]) -> None:
        with self._lock:
            for key in keys:
                self._keys.pop(key, None)

    def _current(self, key: Key, now: float) -> _Failures:
        entry = self._keys.get(key)
        if entry is None:
            return _Failures()
        if now - entry.last > FORGET_AFTER and now >= entry.blocked_until:
            entry.count, entry.blocked_until = 0, 0.0
        return entry

    def _bound(self, now: float) -> None:
        """Keep at most MAX_KEYS keys: drop forgotten ones, then the least recently failed."""
        if len(self._keys) <= MAX_KEYS:
            return
        for key in [k for k, e in self._keys.items() if now - e.last > FORGET_AFTER and now >= e.blocked_until]:
            del self._keys[key]
        if len(self._keys) > MAX_KEYS:
            for key in sorted(self._keys, key=lambda k: self._keys[k].last)[: len(self._keys) - MAX_KEYS // 2]:
                del self._keys[key]
