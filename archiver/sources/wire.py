"""Bounded reads off a mail server's socket: every line and literal has a deadline and a size cap.

A socket timeout bounds one ``recv``, not a response: a server that sends one
byte a second never trips it, and a backup (and the daemon's slot for the
account) would wait forever.  And imaplib reads a ``{N}`` literal with one
``read(N)``, which allocates N bytes before the first one arrives, so
``{999999999999}`` is a MemoryError.  :class:`WireReader` is the one place both
imaplib and poplib read from (see :mod:`archiver.sources.imap` and
:mod:`archiver.sources.pop3`); it enforces:

- a line must be complete within ``timeout`` seconds, and hold at most ``max_line`` bytes;
- a literal of N bytes within ``timeout + N / MIN_RATE`` seconds, and N may not exceed
  ``max_literal`` (nothing is allocated for it);
- a whole response (each IMAP command's, each POP3 multi-line answer: :meth:`WireReader.begin_response`)
  must, after its first ``timeout`` seconds, keep arriving at ``MIN_RATE`` on average (a slow
  link is fine, a trickle of short lines is not), and hold at most a cap of bytes;
- nothing is read past the run's deadline (``run_deadline``, a ``time.monotonic`` value).

Each failure is one :class:`~archiver.errors.SourceError` naming the server's fault:
a deadline is a :class:`ResponseTimeout` (a :class:`~archiver.errors.ConnectError`,
so the run reconnects as after any drop), a size is a :class:`ResponseTooLarge`
(a :class:`~archiver.errors.ProtocolError`).  Either way the connection is out of
step with the server afterwards and must be closed.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from archiver.errors import ConnectError, ProtocolError
from archiver.sources.spool import SPOOL_THRESHOLD, SpooledBody

MIN_RATE = 16 * 1024  # bytes/s a response must average after its first ``timeout`` seconds (128 kbit/s)
CHUNK = 256 * 1024  # most bytes one recv asks for
SMALL_TAKE = 4096  # bytes: below this a slice copies faster than a memoryview (two copies, no view set-up)
PREALLOCATE = 16 * 2**20  # literals up to this size are received into one buffer allocated up front
DEFAULT_MAX_LINE = 64 * 2**20  # a UID SEARCH of a few million messages fits; nothing legitimate is longer
DEFAULT_MAX_LITERAL = 256 * 2**20  # the [archive] max_message_bytes default
GREETING_MAX_LINE = 64 * 1024  # a greeting is one short line; a megabyte of it is garbage


class ResponseTimeout(ConnectError):
    """The server did not complete a line or literal in time (a trickle, a stall, or the run's end)."""


class ResponseTooLarge(ProtocolError):
    """The server sent (or announced) more bytes than the limits allow.

    For a literal, ``size`` is what was announced and ``line`` the line that announced it
    (an IMAP FETCH line names the message's UID).
    """

    def __init__(self, message: str, size: int | None = None, line: bytes = b"") -> None:
        super().__init__(message)
        self.size = size
        self.line = line


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.0f} MB" if size >= 2**20 else f"{size} bytes"


class WireReader:
    """Buffered, deadline-checked reads from one socket (plain or TLS).

    ``sock`` may be replaced (STARTTLS) only while the buffer is empty, which the
    protocols guarantee: the server says nothing after its STARTTLS/STLS answer
    until the handshake.
    """

    def __init__(
        self,
        sock: socket.socket,
        where: str,
        timeout: float,
        *,
        max_line: int = DEFAULT_MAX_LINE,
        max_literal: int | None = None,
        run_deadline: float | None = None,
        spool_dir: Path | None = None,
    ) -> None:
        self.sock = sock
        self.where = where
        self.timeout = timeout
        self.max_line = max_line
        self.max_literal = max_literal
        self.run_deadline = run_deadline
        self.spool_dir = spool_dir  # literals over SPOOL_THRESHOLD go to a file there, not memory
        self._buffer = bytearray()
        self._sock_timeout: float | None = None
        self._last_line = b""  # the line before a literal is the one that announced it
        self._response: tuple[float, int] | None = None  # (start, byte cap) of a multi-line response
        self._response_bytes = 0

    def begin_response(self, cap: int) -> None:
        """Bound a whole response from here on (an IMAP command's, a POP3 multi-line answer).

        After its first ``timeout`` seconds a response must keep arriving at ``MIN_RATE`` on
        average (so short lines trickled one by one cannot outlast it), and it may hold at most
        ``cap`` bytes (so a stream of untagged lines at full speed cannot fill the memory).
        """
        self._response = (time.monotonic(), cap)
        self._response_bytes = 0

    def end_response(self) -> None:
        self._response = None

    # -- deadlines --------------------------------------------------------------------------
    def _deadline(self, seconds: float) -> float:
        """Now + ``seconds`` (one line's or one literal's allowance), never past the run's end."""
        deadline = time.monotonic() + seconds
        return deadline if self.run_deadline is None else min(deadline, self.run_deadline)

    def _timed_out(self, seconds: float) -> ResponseTimeout:
        if self.run_deadline is not None and time.monotonic() >= self.run_deadline:
            return ResponseTimeout(f"{self.where}: the run time limit was reached while the server was still answering")
        return ResponseTimeout(f"{self.where}: timed out: the server sent no complete response within {seconds:g} s")

    def _wait(self, deadline: float, seconds: float) -> None:
        """Before a recv: raise when the deadline (or the response's) has passed, else bound the recv by it."""
        if self._response is not None:
            deadline = min(deadline, self._response[0] + self.timeout + self._response_bytes / MIN_RATE)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._timed_out(seconds)
        timeout = min(remaining, self.timeout)
        if timeout != self._sock_timeout:  # settimeout costs two syscalls: only when it changes
            self.sock.settimeout(timeout)
            self._sock_timeout = timeout

    def _received(self, count: int) -> None:
        if self._response is None:
            return
        self._response_bytes += count
        if self._response_bytes > self._response[1]:
            cap = self._response[1]
            self._response = None
            raise ResponseTooLarge(f"{self.where}: the server's answer went on past {_megabytes(cap)}")

    def _fill(self, deadline: float, seconds: float) -> bool:
        """Receive more into the buffer; False at end of stream."""
        self._wait(deadline, seconds)
        try:
            data = self.sock.recv(CHUNK)
        except TimeoutError:
            raise self._timed_out(seconds) from None
        if not data:
            return False
        self._buffer += data
        self._received(len(data))
        return True

    # -- reads --------------------------------------------------------------------------------
    def readline(self, limit: int = -1) -> bytes:
        """One line including its LF (or what came before the end of stream), like a file's ``readline``.

        ``limit`` (as for a file) returns a piece of at most that many bytes when the line is longer;
        with none, a line over ``max_line`` is :class:`ResponseTooLarge`.
        """
        cap = self.max_line if limit is None or limit < 0 else min(limit, self.max_line + 1)
        end = self._buffer.find(b"\n", 0, cap)
        if end >= 0:  # already received (most lines of a message): no clock, no recv
            self._last_line = self._take(end + 1)
            return self._last_line
        seconds = self.timeout
        deadline = self._deadline(seconds)
        scanned = len(self._buffer)
        while True:
            end = self._buffer.find(b"\n", scanned)
            if end >= 0 and end < cap:
                self._last_line = self._take(end + 1)
                return self._last_line
            if len(self._buffer) >= cap:
                if limit is not None and 0 <= limit <= self.max_line:
                    return self._take(limit)
                raise ResponseTooLarge(
                    f"{self.where}: the server sent a line longer than {_megabytes(self.max_line)} "
                    f"(starting {bytes(self._buffer[:40])!r})"
                )
            scanned = len(self._buffer)
            if not self._fill(deadline, seconds):
                return self._take(len(self._buffer))

    def read(self, size: int) -> bytes | SpooledBody:
        """Exactly ``size`` bytes (fewer only at end of stream); a literal, so it has its own deadline and cap.

        With a ``spool_dir``, a literal over :data:`SPOOL_THRESHOLD` is received into a
        :class:`SpooledBody` there, so memory never holds it whole.
        """
        if self.max_literal is not None and size > self.max_literal:
            raise ResponseTooLarge(
                f"{self.where}: the server announced a {size}-byte message, over max_message_bytes "
                f"({_megabytes(self.max_literal)})",
                size,
                self._last_line[:200],
            )
        seconds = self.timeout + size / MIN_RATE
        deadline = self._deadline(seconds)
        if self.spool_dir is not None and size > SPOOL_THRESHOLD:
            return self._spool(size, deadline, seconds)
        if len(self._buffer) >= size or size > PREALLOCATE:
            # Small, or big enough that memory should follow what the server really sends.
            while len(self._buffer) < size:
                if not self._fill(deadline, seconds):
                    break
            return self._take(min(size, len(self._buffer)))
        # Straight into one buffer of the literal's size: no copy per chunk.
        literal = bytearray(size)
        have = len(self._buffer)
        with memoryview(literal) as view:
            view[:have] = self._buffer
            self._buffer.clear()
            while have < size:
                self._wait(deadline, seconds)
                try:
                    count = self.sock.recv_into(view[have:], min(size - have, 4 * CHUNK))
                except TimeoutError:
                    raise self._timed_out(seconds) from None
                if not count:
                    break
                have += count
                self._received(count)
        return bytes(literal) if have == size else bytes(literal[:have])

    def _spool(self, size: int, deadline: float, seconds: float) -> SpooledBody:
        """Receive a literal into a file, through one reused buffer of ``4 * CHUNK`` bytes."""
        assert self.spool_dir is not None
        body = SpooledBody(self.spool_dir)
        try:
            have = min(size, len(self._buffer))
            body.write(self._take(have))
            chunk = bytearray(4 * CHUNK)
            with memoryview(chunk) as view:
                while have < size:
                    self._wait(deadline, seconds)
                    try:
                        count = self.sock.recv_into(view, min(size - have, len(chunk)))
                    except TimeoutError:
                        raise self._timed_out(seconds) from None
                    if not count:
                        break
                    self._received(count)
                    body.write(view[:count])
                    have += count
        except BaseException:
            body.discard()
            raise
        return body

    def _take(self, count: int) -> bytes:
        if count <= SMALL_TAKE:  # a line: slicing is cheaper than setting up a view
            data = bytes(self._buffer[:count])
        else:  # a literal: one copy, not two
            with memoryview(self._buffer) as view:
                data = bytes(view[:count])
        del self._buffer[:count]
        return data

    def close(self) -> None:
        self._buffer.clear()


class WireLimits:
    """What the reader enforces; mutable so a run can set its deadline on a live connection."""

    def __init__(
        self,
        where: str,
        timeout: float,
        max_literal: int | None = None,
        run_deadline: float | None = None,
        spool_dir: Path | None = None,
    ) -> None:
        self.where = where
        self.timeout = timeout
        self.max_literal = max_literal
        self.run_deadline = run_deadline
        self.spool_dir = spool_dir

    @property
    def response_cap(self) -> int:
        """Bytes one IMAP response may hold: a full fetch batch and its largest message fit many times over.

        imaplib keeps a response's untagged lines in memory until its tagged end, so without a
        cap a server streaming ``* 1 EXISTS`` forever at full speed would fill it.
        """
        return 2 * (self.max_literal or DEFAULT_MAX_LITERAL) + DEFAULT_MAX_LINE

    def reader(self, sock: socket.socket) -> WireReader:
        return WireReader(
            sock,
            self.where,
            self.timeout,
            max_line=GREETING_MAX_LINE,
            max_literal=self.max_literal,
            run_deadline=self.run_deadline,
            spool_dir=self.spool_dir,
        )


__all__ = ["GREETING_MAX_LINE", "MIN_RATE", "ResponseTimeout", "ResponseTooLarge", "WireLimits", "WireReader"]
