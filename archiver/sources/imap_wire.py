"""imapclient over :class:`~archiver.sources.wire.WireReader`: imaplib's two reading points, bounded.

imaplib reads everything through ``IMAP4.readline()`` (each response line) and
``IMAP4.read(n)`` (each ``{n}`` literal); both are overridden here so every line
and literal has a deadline and a cap, the greeting included (it is read inside
the constructor).  imapclient picks its imaplib class in ``_create_IMAP4``, so a
subclass that overrides it is all imapclient needs.
"""

from __future__ import annotations

import imaplib
import socket

import imapclient
from imapclient import imap4, tls

from archiver.sources.connect import open_tcp
from archiver.sources.spool import SpooledBody
from archiver.sources.wire import DEFAULT_MAX_LINE, GREETING_MAX_LINE, WireLimits, WireReader


class _BoundedReads(imaplib.IMAP4):
    """Mixin over an imaplib class: ``read``/``readline`` through a :class:`WireReader` on the current socket."""

    _limits: WireLimits
    _wire: WireReader | None = None

    def _reader(self) -> WireReader:
        wire = self._wire
        if wire is None or wire.sock is not self.sock:  # first read, or a new socket after STARTTLS
            max_line = GREETING_MAX_LINE if wire is None else wire.max_line
            wire = self._wire = self._limits.reader(self.sock)
            wire.max_line = max_line
        wire.run_deadline = self._limits.run_deadline
        return wire

    def _connect(self) -> None:
        try:
            super()._connect()  # reads the greeting (capped short) and asks for CAPABILITY
        finally:
            if self._wire is not None:
                self._wire.max_line = DEFAULT_MAX_LINE

    def send(self, data: bytes) -> None:
        """Each command starts a response: bounded as a whole in time (rate) and bytes (WireLimits.response_cap)."""
        self._reader().begin_response(self._limits.response_cap)
        super().send(data)

    def readline(self) -> bytes:
        return self._reader().readline()

    def read(self, size: int) -> bytes | SpooledBody:  # type: ignore[override]
        return self._reader().read(size)


class _PlainIMAP4(_BoundedReads, imap4.IMAP4WithTimeout):
    def __init__(self, host: str, port: int, timeout: float | None, limits: WireLimits) -> None:
        self._limits = limits
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        return open_tcp(self.host, self.port, timeout if timeout is not None else self._timeout)


class _TlsIMAP4(_BoundedReads, tls.IMAP4_TLS):
    def __init__(self, host: str, port: int, ssl_context, timeout: float | None, limits: WireLimits) -> None:
        self._limits = limits
        super().__init__(host, port, ssl_context, timeout)

    def _create_socket(self, timeout: float | None = None) -> socket.socket:
        sock = open_tcp(self.host, self.port, timeout if timeout is not None else self._timeout)
        return tls.wrap_socket(sock, self.ssl_context, self.host)


class BoundedIMAPClient(imapclient.IMAPClient):
    """An ``IMAPClient`` whose every read is bounded by ``limits`` (set before the greeting is read)."""

    def __init__(self, host: str, *, limits: WireLimits, **kwargs) -> None:
        self.limits = limits
        super().__init__(host, **kwargs)

    def _create_IMAP4(self) -> imaplib.IMAP4:
        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return _TlsIMAP4(self.host, self.port, self.ssl_context, connect_timeout, self.limits)
        return _PlainIMAP4(self.host, self.port, connect_timeout, self.limits)


__all__ = ["BoundedIMAPClient"]
