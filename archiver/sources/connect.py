"""What every source shares: TLS contexts and turning socket errors into user errors."""

from __future__ import annotations

import logging
import socket
import ssl
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
        return ConnectError(f"{where}: cannot resolve the host name ({exc.strerror})")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"{where}: connection refused (is the server running and the port right?)")
    if isinstance(exc, TimeoutError | socket.timeout):
        return ConnectError(f"{where}: timed out waiting for the server")
    if isinstance(exc, ConnectionError | EOFError):
        return ConnectError(f"{where}: the connection was closed by the server ({exc.__class__.__name__})")
    if isinstance(exc, OSError):
        return ConnectError(f"{where}: {exc.strerror or exc}")
    return ConnectError(f"{where}: {exc}")
