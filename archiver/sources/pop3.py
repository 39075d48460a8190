"""Read-only POP3 access with the standard library's poplib.

The backup must never change the maildrop.  No ``DELE`` is ever sent.  Whole
messages are read with ``TOP n 2147483647`` when the server offers TOP: RFC 1939
makes that the entire message, and unlike ``RETR`` it does not make Dovecot (and
servers like it) set ``\\Seen`` when the session ends.  Without TOP, ``RETR`` is
used and the session ends with ``RSET`` before ``QUIT``, which clears the marks
Dovecot would otherwise commit.  (A session killed mid-way on a server without
TOP can still leave the messages it retrieved marked seen: that is the server's
doing, and there is no POP3 command to avoid it.)

Byte rule, so a message fetched here hashes like its IMAP ``BODY[]``: the stored
bytes are the multi-line response exactly as received, line endings included,
minus the status line, minus the terminating ``.CRLF``, minus the one leading
``.`` of each dot-stuffed line; and minus the final ``CRLF`` when the response
is exactly two bytes longer than the size LIST announced and ends in ``CRLF``:
that is the line break a server must add before ``.`` to a message that did not
end with one (Dovecot does).  And a NUL byte becomes 0x80, as in Dovecot's IMAP
``BODY[]`` (IMAP cannot carry NUL).  Nothing else is normalised.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import poplib
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

from archiver.config import DEFAULT_MAX_MESSAGE_BYTES, AccountConfig
from archiver.errors import AuthError, ConnectError, ProtocolError, SourceError, TLSError
from archiver.logs import register_secret
from archiver.sources.connect import network_error, open_tcp, tls_context
from archiver.sources.limits import limit_error
from archiver.sources.pop3_parse import (
    MaildropEntry,
    MessageTooLarge,
    delivery_date,
    fingerprint,
    finish_message,
    parse_scan_listing,
    parse_uidl_listing,
    read_multiline,
    unique_keys,
)
from archiver.sources.sasl import BearerLogin, TokenRefused, choose_mechanism, login_with_token, server_reason
from archiver.sources.wire import GREETING_MAX_LINE, WireLimits, WireReader

if TYPE_CHECKING:  # authlib and requests load only for accounts that use OAuth2
    from archiver.oauth.tokens import TokenSource

log = logging.getLogger("archiver.pop3")

TOP_ALL_LINES = 2**31 - 1  # "more lines than any body has"; fits the 32-bit counters of old servers
_NETWORK_ERRORS = (OSError, EOFError, ssl.SSLError)
LISTING_CAP = 64 * 2**20  # bytes a LIST or UIDL answer may hold: ~3 million messages
MAX_SASL_STEPS = 3  # a bearer login takes one challenge (two after a refusal); a server that sends more is broken


# -- pure protocol helpers (unit-tested without a server) ---------------------------------------


class _BoundedPOP3(poplib.POP3):
    """poplib's one reading point (``_getline``) and the message reads go through a :class:`WireReader`."""

    def __init__(self, host: str, port: int, timeout: float, limits: WireLimits) -> None:
        self._limits = limits
        self._wire: WireReader | None = None
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float) -> socket.socket:
        return open_tcp(self.host, self.port, timeout)

    def wire(self) -> WireReader:
        wire = self._wire
        if wire is None or wire.sock is not self.sock:  # first read, or a new socket after STLS
            wire = self._wire = self._limits.reader(self.sock)
            wire.max_line = GREETING_MAX_LINE  # POP3 lines are short (RFC 1939: 512 bytes)
        wire.run_deadline = self._limits.run_deadline
        return wire

    def _getline(self) -> tuple[bytes, int]:
        line = self.wire().readline()
        if not line:
            raise poplib.error_proto("-ERR EOF")
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets

    def _getlongresp(self):  # LIST, UIDL, CAPA: bounded as a whole, not only line by line
        wire = self.wire()
        wire.begin_response(LISTING_CAP)
        try:
            return super()._getlongresp()
        finally:
            wire.end_response()


class _BoundedPOP3_SSL(_BoundedPOP3, poplib.POP3_SSL):
    def __init__(self, host: str, port: int, timeout: float, limits: WireLimits, context) -> None:
        self._limits = limits
        self._wire = None
        poplib.POP3_SSL.__init__(self, host, port, timeout=timeout, context=context)

    def _create_socket(self, timeout: float) -> socket.socket:
        return self.context.wrap_socket(open_tcp(self.host, self.port, timeout), server_hostname=self.host)


# -- the connection --------------------------------------------------------------------------------------
class Pop3Source:
    """One logged-in POP3 session for one account; reads, never deletes.

    ``use_uidl`` and ``fetch_command`` exist so tests can exercise the fallbacks
    (no UIDL, no TOP) against a server that has both.
    """

    def __init__(
        self,
        account: AccountConfig,
        *,
        use_uidl: bool = True,
        fetch_command: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        tokens: TokenSource | None = None,
        mechanism: str | None = None,
    ) -> None:
        """``tokens``: log in with an OAuth2 access token (SASL ``mechanism``: "auto", "oauthbearer" or
        "xoauth2"; default: the account's ``oauth2_mechanism``; RFC 5034 AUTH) instead of the account's password."""
        self.account = account
        self.tokens = tokens
        self.mechanism = mechanism or (account.oauth2.mechanism if account.oauth2 else "auto")
        self.where = f"{account.name}: {account.host}:{account.port}"
        self.limits = WireLimits(self.where, account.timeout, max_message_bytes)
        self.use_uidl = use_uidl
        self.forced_fetch = fetch_command
        self.capabilities: frozenset[str] = frozenset()
        self.has_uidl = False
        self.fetch_command = "RETR"
        self.auth_method = ""
        self._pop: poplib.POP3 | None = None

    # -- connection -----------------------------------------------------------
    def connect(self) -> Pop3Source:
        account = self.account
        context = tls_context(account.tls_ca_file, account.tls_verify)
        try:
            if account.security == "tls":
                pop = _BoundedPOP3_SSL(account.host, account.port, account.timeout, self.limits, context)
            else:
                pop = _BoundedPOP3(account.host, account.port, account.timeout, self.limits)
        except _NETWORK_ERRORS as exc:
            raise network_error(exc, self.where) from None
        except poplib.error_proto as exc:
            raise ProtocolError(f"{self.where}: the server did not greet as a POP3 server ({_reason(exc)})") from None
        try:
            if account.security == "starttls":
                if "STLS" not in _capabilities(pop):
                    raise TLSError(f'{self.where}: the server does not offer STLS; use security = "tls"')
                pop.stls(context)
            self._login(pop)
            self.capabilities = _capabilities(pop)
        except SourceError:
            _quietly_close(pop)
            raise
        except _NETWORK_ERRORS as exc:
            _quietly_close(pop)
            raise network_error(exc, self.where) from None
        except poplib.error_proto as exc:
            _quietly_close(pop)
            raise ProtocolError(f"{self.where}: {_reason(exc)}") from None
        self._pop = pop
        self.has_uidl = self.use_uidl and ("UIDL" in self.capabilities or not self.capabilities)
        self.fetch_command = self.forced_fetch or ("TOP" if "TOP" in self.capabilities else "RETR")
        return self

    def _login(self, pop: poplib.POP3) -> None:
        if self.tokens is not None:
            self._token_login(pop)
            return
        account = self.account
        mode = account.pop3_auth
        offers_apop = pop.timestamp.match(pop.welcome) is not None
        if mode == "apop" and not offers_apop:
            raise AuthError(f'{self.where}: the server does not offer APOP; set pop3_auth = "user"')
        password = account.password.resolve() if account.password else ""
        register_secret(password)
        self.auth_method = "APOP" if mode == "apop" or (mode == "auto" and offers_apop) else "USER"
        try:
            if self.auth_method == "APOP":
                pop.apop(account.username, password)
            else:
                pop.user(account.username)
                pop.pass_(password)
        except poplib.error_proto as exc:
            limit = limit_error(self.where, self.auth_method, _reason(exc), account.provider)
            if limit is not None:
                raise limit from None
            hint = ' (or set pop3_auth = "user")' if self.auth_method == "APOP" and mode == "auto" else ""
            raise AuthError(
                f"{self.where}: login refused for user {account.username!r} ({_reason(exc)}){hint}"
            ) from None
        finally:
            del password

    def _token_login(self, pop: poplib.POP3) -> None:
        """``AUTH <mechanism>`` without an initial response, then the response to the empty challenge.

        Not the one-line form: RFC 5034 keeps an AUTH command under 255 octets
        and an access token alone is longer (Microsoft documents this two-step form).
        """
        account = self.account
        mechanism = choose_mechanism(self.mechanism, _sasl_mechanisms(pop), self.where)
        login = BearerLogin(account.username or "", mechanism, account.host or "", account.port or 0)
        self.auth_method = mechanism

        def attempt(token: str) -> None:
            respond = login.responder(token)
            try:
                answer = pop._shortcmd(f"AUTH {mechanism}")
                for _ in range(MAX_SASL_STEPS):
                    if not answer.startswith(b"+ ") and answer != b"+":
                        return  # +OK: logged in
                    challenge = _decode_challenge(answer[2:])
                    answer = pop._shortcmd(base64.b64encode(respond(challenge).encode("utf-8")).decode("ascii"))
            except poplib.error_proto as exc:
                reason = server_reason(_reason(exc))
                raise limit_error(self.where, f"AUTH {mechanism}", reason, account.provider) or TokenRefused(
                    reason
                ) from None
            raise ProtocolError(f"{self.where}: AUTH {mechanism}: the server keeps sending challenges")

        login_with_token(self.tokens, attempt, self.where, login)

    def close(self) -> None:
        """End the session without committing anything: ``RSET`` (drops any mark), then ``QUIT``."""
        pop, self._pop = self._pop, None
        if pop is None:
            return
        try:
            pop.rset()
            pop.quit()
        except Exception:
            _quietly_close(pop)

    def abandon(self) -> None:
        """Drop the connection without a word (after a network error)."""
        pop, self._pop = self._pop, None
        if pop is not None:
            _quietly_close(pop)

    def __enter__(self) -> Pop3Source:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pop(self) -> poplib.POP3:
        if self._pop is None:
            raise ConnectError(f"{self.where}: not connected")
        return self._pop

    @property
    def connected(self) -> bool:
        return self._pop is not None

    def _call(self, what: str, func: Callable, *args: object):
        try:
            return func(*args)
        except _NETWORK_ERRORS as exc:
            self.abandon()
            raise network_error(exc, self.where) from None
        except SourceError:  # the bounded reader gave up mid-response: the session is out of step
            self.abandon()
            raise
        except poplib.error_proto as exc:  # -ERR: the session is still in step
            reason = _reason(exc)
            raise limit_error(self.where, what, reason, self.account.provider) or ProtocolError(
                f"{self.where}: {what} failed: {reason}"
            ) from None

    # -- the maildrop -----------------------------------------------------------
    def listing(self) -> list[MaildropEntry]:
        """Every message of the maildrop with its key and size, in message-number order.

        With UIDL the key is the server's unique id; without, one ``TOP n 0`` per
        message gives the header block for a fingerprint (a round trip each).
        """
        _resp, lines, _octets = self._call("LIST", self.pop.list)
        sizes = parse_scan_listing(lines)
        numbers = sorted(sizes)
        if self.has_uidl:
            try:
                uidls = parse_uidl_listing(self._call("UIDL", self.pop.uidl)[1])
            except ProtocolError as exc:
                if "UIDL" in self.capabilities:
                    raise
                log.warning("%s: no usable UIDL (%s); falling back to fingerprints", self.where, exc)
                self.has_uidl = False
        if self.has_uidl:
            missing = [n for n in numbers if n not in uidls]
            if missing:
                raise ProtocolError(f"{self.where}: UIDL lists no id for message(s) {missing[:10]}")
            keys = [uidls[n] for n in numbers]
        else:
            keys = [fingerprint(self._multiline(f"TOP {n} 0"), sizes[n]) for n in numbers]
        return [
            MaildropEntry(number, key, sizes[number]) for number, key in zip(numbers, unique_keys(keys), strict=True)
        ]

    def fetch(self, entry: MaildropEntry) -> bytes:
        """The whole message, streamed off the socket into one buffer (see the module docstring for the byte rule)."""
        if self.fetch_command == "TOP":
            data = self._multiline(f"TOP {entry.number} {TOP_ALL_LINES}", self.limits.max_literal)
            if len(data) >= entry.size:
                return finish_message(data, entry.size)
            log.warning("%s: TOP gave %d of %d octets of message %d; using RETR", self.where, len(data),
                        entry.size, entry.number)  # fmt: skip
        return finish_message(self._multiline(f"RETR {entry.number}", self.limits.max_literal), entry.size)

    def _multiline(self, command: str, limit: int | None = None) -> bytearray:
        pop = self.pop

        def send_and_read() -> bytearray:
            pop._shortcmd(command)  # sends, reads the status line, raises error_proto on -ERR
            wire = pop.wire()
            wire.begin_response(2**63 if limit is None else 2 * limit + 1024)  # dot-stuffing at most doubles
            try:
                return read_multiline(wire.readline, limit=limit)
            finally:
                wire.end_response()

        return self._call(command.split()[0], send_and_read)


def _capabilities(pop: poplib.POP3) -> frozenset[str]:
    """CAPA's keywords, upper case; empty for a server without CAPA (RFC 1939 only)."""
    try:
        return frozenset(name.upper() for name in pop.capa())
    except poplib.error_proto:
        return frozenset()


def _sasl_mechanisms(pop: poplib.POP3) -> list[str]:
    """The SASL mechanisms CAPA lists (RFC 2449 ``SASL`` line); none for a server without CAPA."""
    try:
        return [name.upper() for name in pop.capa().get("SASL", [])]
    except poplib.error_proto:
        return []


def _decode_challenge(data: bytes) -> bytes:
    try:
        return base64.b64decode(data.strip(), validate=True)
    except ValueError:
        return b""  # only its presence matters: a bearer mechanism answers every challenge the same way


def _reason(exc: BaseException) -> str:
    """The server's words from a poplib error, without the ``-ERR`` and the bytes repr."""
    value = exc.args[0] if exc.args else exc
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = text.strip()
    if text.startswith("-ERR"):
        text = text[4:].strip()
    return text[:200] or "no reason given"


def _quietly_close(pop: poplib.POP3) -> None:
    with contextlib.suppress(Exception):
        pop.close()


__all__ = [
    "MaildropEntry",
    "MessageTooLarge",
    "Pop3Source",
    "delivery_date",
    "fingerprint",
    "finish_message",
    "parse_scan_listing",
    "parse_uidl_listing",
    "read_multiline",
    "unique_keys",
]
