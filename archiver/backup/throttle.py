"""Waiting out a throttling server (Microsoft 365): exponential back-off with jitter, bounded three ways.

A throttled command (:class:`~archiver.errors.Throttled`, recognised by
:mod:`archiver.sources.limits`) is asked again after a wait: the server's own
"retry after" when it gives one, else 1 s, 2 s, 4 s… up to :data:`LONGEST_WAIT`,
each drawn at random from its upper half so that several clients throttled
together do not come back in step.  The waits stop when one of three bounds is
met, whichever comes first:

* the account's patience (``throttle_patience``): the time spent waiting since
  the last command that went through;
* :data:`MAX_WAITS` back-offs in a row (a server answering "retry after 0" must
  not spin the run);
* the run's own time limit: a wait that would end after it is not begun.

Then the run stops with one line, ``partial``: what is committed is kept, and the
next run continues from it.  Any command that goes through resets the count.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

from archiver.backup.faults import RunClock
from archiver.errors import ServerLimitReached, Throttled
from archiver.sources.limits import throttling_owner

log = logging.getLogger("archiver.backup")

FIRST_WAIT = 1.0  # seconds before asking again after the first throttled answer; doubled each time after
LONGEST_WAIT = 300.0  # seconds: no single wait is longer (Microsoft's throttling windows are minutes long)
MAX_WAITS = 16  # back-offs in a row without a command going through


class ThrottleBackoff:
    """The back-off state of one run: how long and how often it has waited since a command last went through."""

    def __init__(
        self,
        patience: float,
        clock: RunClock,
        account: str,
        provider: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.patience = max(0.0, patience)
        self.clock = clock
        self.account = account
        self.provider = provider
        self._sleep = sleep
        self._jitter = jitter
        self.waited = 0.0
        self.waits = 0

    def went_through(self) -> None:
        """A command was answered: the server is no longer throttling, the bounds start afresh."""
        self.waited = 0.0
        self.waits = 0

    def next_delay(self, exc: Throttled) -> float:
        """The wait before asking again: the server's hint, else the exponential step with jitter in its upper half."""
        if exc.retry_after is not None:
            return max(0.0, exc.retry_after)
        step = min(LONGEST_WAIT, FIRST_WAIT * 2**self.waits)
        return step / 2 + self._jitter() * step / 2

    def wait(self, exc: Throttled, context: str) -> None:
        """Wait before the throttled command is asked again; :class:`ServerLimitReached` when a bound is met."""
        left = self.patience - self.waited
        delay = self.next_delay(exc)
        if exc.retry_after is None:
            delay = min(delay, left)
        remaining = self.clock.remaining()
        if self.waits >= MAX_WAITS or left <= 0 or delay > left or (remaining is not None and delay >= remaining):
            raise ServerLimitReached(self.gave_up(exc, delay))
        self.waits += 1
        log.warning(
            "%s: %s: the server is throttling (%s); asking again in %.1f s (back-off %d, %.0f s of patience left)",
            self.account,
            context,
            exc.reason,
            delay,
            self.waits,
            left - delay,
        )
        self._sleep(delay)
        self.waited += delay

    def gave_up(self, exc: Throttled, asked: float | None = None) -> str:
        """The run's one line when the server kept throttling."""
        hint = f"; it asked for {asked:g} s more" if exc.retry_after is not None and asked is not None else ""
        return (
            f"{self.account}: the server kept throttling ({throttling_owner(self.provider)}): gave up after "
            f"{self.waits} back-off(s) over {self.waited:.0f} s{hint} (last answer: {exc.reason}); "
            "what is archived is kept and the next run continues"
        )


__all__ = ["FIRST_WAIT", "LONGEST_WAIT", "MAX_WAITS", "ThrottleBackoff"]
