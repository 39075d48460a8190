"""The one error hierarchy of archiver.

Every error a user can meet is one of these, raised with a message they can act
on.  The CLI prints ``str(error)`` on one line and exits with ``exit_code``; a
traceback is shown only with ``--debug``.  Messages never contain secrets.
"""

from __future__ import annotations


class ArchiverError(Exception):
    """Base class: an expected failure with a user-facing, one-line message."""

    exit_code = 1


class ConfigError(ArchiverError):
    """The configuration file is missing, unreadable or invalid."""

    exit_code = 2


class SecretError(ConfigError):
    """A password could not be obtained from its file, command or environment."""


class SourceError(ArchiverError):
    """Talking to a mail server failed."""


class ConnectError(SourceError):
    """The server could not be reached, or the connection dropped or timed out."""


class TLSError(SourceError):
    """The TLS handshake failed, most often because the certificate is not trusted."""


class AuthError(SourceError):
    """The server refused the credentials."""


class AuthorisationExpired(AuthError):
    """The OAuth2 grant (refresh token) was revoked or has expired: only a new ``archiver auth`` can fix it.

    A class of its own so the runner, the status page and the alerts can tell
    "the operator must act" from a transient refusal.
    """


class ServerLimitReached(SourceError):
    """The server refuses more work for now (throttling, a download quota): not a fault, a pause.

    A run that meets one for good stops with what it committed and ends ``partial``; the next
    run continues.  Raised as such by the backup run when throttling outlasted its patience.
    """


class Throttled(ServerLimitReached):
    """The server asks the client to slow down (Microsoft 365 ``NO [THROTTLED]``): wait and ask again.

    ``retry_after``: the seconds the server asked to wait, when it said; ``reason``: its words.
    """

    def __init__(self, message: str, retry_after: float | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason or message


class QuotaReached(ServerLimitReached):
    """The account used its download allowance (Gmail's daily quota): every further command would fail too."""


class ProtocolError(SourceError):
    """The server answered something we cannot work with."""


class StoreError(ArchiverError):
    """Writing to or reading from the blob store failed (disk full, permissions)."""


class ArchiveAccessError(StoreError):
    """The archive directory cannot be used at all (a file, not a directory; no permission).

    Exit code 2, as for a bad config: the command cannot run, nothing was tried.
    """

    exit_code = 2


class ArchiveKeyError(ConfigError):
    """The archive's encryption key cannot be used: a wrong passphrase or key file, no or a damaged ``keys.json``.

    Raised before anything is written, so a wrong key never damages the archive.  Exit code 2, as for
    a bad config: nothing was tried.
    """


class IntegrityError(ArchiverError):
    """Stored data does not match what the catalog says (hash mismatch, missing blob)."""


class CatalogError(ArchiverError):
    """The catalog database cannot be opened or migrated."""


class RestoreError(ArchiverError):
    """A restore or export could not be carried out."""


class DiscoveryError(ArchiverError):
    """No usable server settings were found for an e-mail address, or what was found is refused.

    Raised by :mod:`archiver.discovery`; the message names what was tried and why each step gave nothing.
    Exit code 2, as for a bad config: the command cannot do its job, nothing was written.
    """

    exit_code = 2
