"""What every source shares: TLS contexts and turning socket errors into user errors."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
import time
from pathlib import Path

from archiver.errors import ConnectError, SourceError, TLSError

log = logging.getLogger("archiver.sources")


def tls_context(ca_file: Path | None, verify: bool) -> ssl.SSLContext:
    """A client TLS context: system CAs (or ``ca_file``), hostname checked, TLS ≥ 1.2."""
    context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class LookupTimeout(socket.gaierror):
    """The host name did not resolve within the connection's deadline."""


def resolve(host: str, port: int, timeout: float | None) -> list[tuple]:
    """``socket.getaddrinfo`` for a TCP connection, given at most ``timeout`` seconds.

    The C resolver has no deadline of its own (a dead DNS server stalls it for the resolver's retries,
    times every server in resolv.conf), so a named host is looked up in a daemon thread that is
    abandoned, not waited for, when the deadline passes.  Addresses need no thread.
    """
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError):
        pass
    found: list = []

    def lookup() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:
            found.append(exc)

    worker = threading.Thread(target=lookup, name=f"resolve {host}", daemon=True)
    worker.start()
    worker.join(timeout)
    if not found:
        raise LookupTimeout(socket.EAI_AGAIN, f"no answer from DNS within {timeout:g} s")
    if isinstance(found[0], BaseException):
        raise found[0]
    return found[0]


def open_tcp(host: str, port: int, timeout: float | None) -> socket.socket:
    """``socket.create_connection`` whose ``timeout`` bounds the name lookup too, and the whole attempt.

    Each address is tried in turn with what is left of the deadline; the last error is raised.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    error: OSError | None = None
    for family, kind, proto, _, address in resolve(host, port, timeout):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise error or TimeoutError("timed out")
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(left)
            sock.connect(address)
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.settimeout(timeout)
        return sock
    raise error or OSError(f"no address for {host}")


def network_error(exc: BaseException, where: str) -> SourceError:
    """Map a low-level connection failure to a one-line error naming host and port."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = exc.verify_message or str(exc)
        return TLSError(
            f"{where}: the server's certificate is not trusted ({reason}); "
            "set tls_ca_file to its CA, or tls_verify = false if you accept the risk"
        )
    if isinstance(exc, ssl.SSLError):
        return TLSError(f"{where}: TLS handshake failed ({exc.reason or exc}); check the port and security mode")
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"{where}: cannot resolve the host name ({exc.strerror or exc})")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"{where}: connection refused (is the server running and the port right?)")
    if isinstance(exc, TimeoutError | socket.timeout):
        return ConnectError(f"{where}: timed out waiting for the server")
    if isinstance(exc, ConnectionError | EOFError):
        return ConnectError(f"{where}: the connection was closed by the server ({exc.__class__.__name__})")
    if isinstance(exc, OSError):
        return ConnectError(f"{where}: {exc.strerror or exc}")
    return ConnectError(f"{where}: {exc}")
