"""Read-only IMAP access with imapclient.

The backup must never change the server: folders are opened with EXAMINE,
bodies fetched with ``BODY.PEEK[]`` (never sets ``\\Seen``), and no command that
writes (STORE, EXPUNGE, APPEND, CREATE…) is ever sent from here.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import socket
import ssl
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import imapclient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.imapclient import seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

from archiver.config import DEFAULT_MAX_MESSAGE_BYTES, AccountConfig
from archiver.errors import AuthError, ConnectError, ProtocolError, SourceError, TLSError
from archiver.logs import register_secret
from archiver.sources.connect import network_error, tls_context
from archiver.sources.gmail import parse_labels
from archiver.sources.imap_parse import parse_body_fetch
from archiver.sources.imap_wire import BoundedIMAPClient
from archiver.sources.limits import limit_error
from archiver.sources.model import FetchedMessage, FolderInfo, FolderStatus
from archiver.sources.sasl import BearerLogin, TokenRefused, choose_mechanism, login_with_token, server_reason
from archiver.sources.spool import SpooledBody
from archiver.sources.wire import ResponseTooLarge, WireLimits

if TYPE_CHECKING:  # authlib and requests load only for accounts that use OAuth2
    from archiver.oauth.tokens import TokenSource

log = logging.getLogger("archiver.imap")

SPECIAL_USE = frozenset({"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash", "\\Important"})
FETCH_ITEMS = [b"BODY.PEEK[]", b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"]
# The cheap look at a message before deciding to download it (archiver.backup.fingerprint): no body.
STUB_ITEMS = [b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]", b"RFC822.SIZE", b"INTERNALDATE", b"FLAGS"]
HEADER_ITEM = b"BODY.PEEK[HEADER]"  # only for new UIDs without a Message-ID that may be archived messages
GMAIL_ITEMS = [b"X-GM-MSGID", b"X-GM-LABELS"]
STUB_BATCH = 2000
_NETWORK_ERRORS = (OSError, EOFError, imaplib.IMAP4.abort, ssl.SSLError)
# What imapclient's and imaplib's parsers raise on an answer they cannot read (besides IMAPClientError).
_GARBLED = (ValueError, KeyError, IndexError, TypeError, AttributeError)
MAX_UID = 2**32 - 1  # UIDs and UIDVALIDITY are 32-bit non-zero numbers (RFC 3501 nz-number)
MAX_MODSEQ = 2**63 - 1  # mod-sequences are 63-bit (RFC 7162)
_FETCH_UID = re.compile(rb"\bUID (\d{1,10})\b")
_ABORTED = re.compile(r"^command: \S+ => ")  # imaplib's prefix on the BYE it met while a command was running
MAX_EXPANDED = 10_000_000  # widest VANISHED range listed UID by UID when the caller gives no known UIDs


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _flags(data: dict) -> tuple[str, ...]:
    """A message's stored flags, sorted; ``\\Recent`` is a per-session marker no APPEND can set, so it is dropped."""
    return tuple(sorted(text for text in (_text(f) for f in data.get(b"FLAGS", ())) if text.lower() != "\\recent"))


def uid_ranges(uids: Iterable[int]) -> str:
    """A compact IMAP sequence set ("1:5,9,12:14") so commands stay short."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    start = prev = None
    for uid in ordered:
        if start is None:
            start = prev = uid
        elif uid == prev + 1:
            prev = uid
        else:
            parts.append(f"{start}:{prev}" if start != prev else str(start))
            start = prev = uid
    if start is not None:
        parts.append(f"{start}:{prev}" if start != prev else str(start))
    return ",".join(parts)


def fetch_set(
    client: imapclient.IMAPClient,
    uid_set: str,
    items: Sequence[bytes],
    modifiers: Sequence[str] | None = None,
    fast: bool = False,
) -> dict[int, dict]:
    """``UID FETCH <uid_set> <items>``, uid → attributes.

    imapclient 4's ``fetch()`` re-reads its message argument as integers to drop unsolicited
    responses, so a compact set like "1:5" raises there; this sends the very same command (the
    steps of ``IMAPClient.fetch``) and returns every FETCH response, unsolicited ones included.
    With ``fast`` (the body fetch), :func:`parse_body_fetch` reads the responses when they have
    the plain shape it knows, imapclient's parser otherwise.
    """
    args = ["UID", "FETCH", uid_set, seq_to_parenstr_upper(items)]
    if modifiers:
        args.append(seq_to_parenstr_upper(modifiers))
    tag = client._imap._command(*args)
    typ, data = client._imap._command_complete("FETCH", tag)
    client._checkok("fetch", typ, data)
    typ, data = client._imap._untagged_response(typ, data, "FETCH")
    if fast and not client.normalise_times:
        parsed = parse_body_fetch(data)
        if parsed is not None:
            return parsed
    return parse_fetch_response(_in_memory(data), client.normalise_times, True)


def _in_memory(data: list) -> list:
    """imaplib's FETCH data with any spooled literal read back as bytes, for imapclient's parser.

    Only a response the fast parser cannot read takes this path (a server's unusual
    form): correct, at the cost of holding that one big message in memory as before.
    """
    if not any(isinstance(item, tuple) and isinstance(item[-1], SpooledBody) for item in data):
        return data
    return [
        (*item[:-1], item[-1].read_all()) if isinstance(item, tuple) and isinstance(item[-1], SpooledBody) else item
        for item in data
    ]


class ImapSource:
    """One logged-in, read-only IMAP connection for one account."""

    def __init__(
        self,
        account: AccountConfig,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        spool_dir: Path | None = None,
        tokens: TokenSource | None = None,
        mechanism: str | None = None,
    ) -> None:
        """``spool_dir``: where bodies over SPOOL_THRESHOLD are received (the store's temp directory), else memory.

        ``tokens``: log in with an OAuth2 access token (SASL ``mechanism``: "auto", "oauthbearer" or
        "xoauth2"; default: the account's ``oauth2_mechanism``) instead of the account's password.
        """
        self.account = account
        self.tokens = tokens
        self.mechanism = mechanism or (account.oauth2.mechanism if account.oauth2 else "auto")
        self.where = f"{account.name}: {account.host}:{account.port}"
        self._client: imapclient.IMAPClient | None = None
        self.capabilities: frozenset[str] = frozenset()
        # Every line and literal the server sends is bounded in time and size (archiver.sources.wire).
        self.limits = WireLimits(self.where, account.timeout, max_message_bytes, spool_dir=spool_dir)

    @property
    def connected(self) -> bool:
        return self._client is not None

    # -- connection -----------------------------------------------------------
    def connect(self) -> ImapSource:
        account = self.account
        context = tls_context(account.tls_ca_file, account.tls_verify)
        try:
            client = BoundedIMAPClient(
                account.host,
                limits=self.limits,
                port=account.port,
                ssl=account.security == "tls",
                ssl_context=context,
                timeout=account.timeout,
            )
        except _NETWORK_ERRORS as exc:
            raise network_error(exc, self.where) from None
        except IMAPClientError as exc:  # imaplib read the greeting and did not like it
            raise greeting_error(self.where, exc, account.provider) from None
        client.normalise_times = False  # keep INTERNALDATE's own offset for restore
        quiet_protocol_trace(client)
        # imaplib writes a literal (an APPEND's message, a SASL response) and the CRLF after it in separate
        # sends; with Nagle's algorithm that last small send waits for the server's delayed ACK (about 40 ms
        # on Linux): once per login, and once per message a restore appends.
        with contextlib.suppress(OSError, AttributeError):
            client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if account.security == "starttls":
                if not client.has_capability("STARTTLS"):
                    raise TLSError(f'{self.where}: the server does not offer STARTTLS; use security = "tls"')
                client.starttls(context)
            self._login(client)
            self.capabilities = frozenset(_text(c).upper() for c in client.capabilities())
        except LoginError as exc:
            _quietly_close(client)
            reason = _server_reason(exc)
            raise limit_error(self.where, "LOGIN", reason, account.provider) or AuthError(
                f"{self.where}: login refused for user {account.username!r} ({reason})"
            ) from None
        except SourceError:
            _quietly_close(client)
            raise
        except _NETWORK_ERRORS as exc:
            _quietly_close(client)
            raise self._hung_up("LOGIN", exc, client) or network_error(exc, self.where) from None
        except IMAPClientError as exc:
            _quietly_close(client)
            raise limit_error(self.where, "LOGIN", str(exc), account.provider) or ProtocolError(
                f"{self.where}: {exc}"
            ) from None
        self._client = client
        return self

    def _login(self, client: imapclient.IMAPClient) -> None:
        account = self.account
        if self.tokens is None:
            password = account.password.resolve() if account.password else ""
            register_secret(password)
            client.login(account.username, password)
            del password
            return
        offered = [_text(c)[5:] for c in client.capabilities() if _text(c).upper().startswith("AUTH=")]
        mechanism = choose_mechanism(self.mechanism, offered, self.where)
        login = BearerLogin(account.username or "", mechanism, account.host or "", account.port or 0)

        def attempt(token: str) -> None:
            try:
                client.sasl_login(login.mechanism, login.responder(token))
            except LoginError as exc:
                reason = server_reason(_server_reason(exc))
                raise limit_error(self.where, login.mechanism, reason, account.provider) or TokenRefused(
                    reason
                ) from None

        login_with_token(self.tokens, attempt, self.where, login)

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.logout()
            except Exception:
                _quietly_close(self._client)
            self._client = None

    def __enter__(self) -> ImapSource:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def client(self) -> imapclient.IMAPClient:
        if self._client is None:
            raise ConnectError(f"{self.where}: not connected")
        return self._client

    def _call(self, what: str, func, *args, **kwargs):
        try:
            return func(*args, **kwargs)
        except _NETWORK_ERRORS as exc:
            limit = self._hung_up(what, exc, self._client)
            self._drop()  # a timed-out socket may still be open: close it, do not leak it
            raise limit or network_error(exc, self.where) from None
        except SourceError:  # from the bounded reader: the connection is out of step with the server
            self._drop()
            raise
        except IMAPClientError as exc:  # a tagged NO or BAD: the session is still in step
            reason = _server_reason(exc)
            raise limit_error(self.where, what, reason, self.account.provider) or ProtocolError(
                f"{self.where}: {what} failed: {reason}"
            ) from None
        except _GARBLED as exc:
            self._drop()
            raise ProtocolError(f"{self.where}: {what}: the server's answer makes no sense ({exc})") from None

    def _hung_up(self, what: str, exc: BaseException, client: imapclient.IMAPClient | None) -> SourceError | None:
        """The limit a ``* BYE`` reports (throttled, over quota), when the server hung up with one; else None."""
        if not isinstance(exc, imaplib.IMAP4.abort):
            return None
        pending = getattr(getattr(client, "_imap", None), "untagged_responses", None) or {}
        byes = [_text(bye) for bye in pending.get("BYE", []) if isinstance(bye, bytes | str)]
        return limit_error(self.where, what, " ".join(byes) or _ABORTED.sub("", str(exc)), self.account.provider)

    def _drop(self) -> None:
        if self._client is not None:
            _discard_spooled(self._client)
            _quietly_close(self._client)
        self._client = None

    def _number(self, what: str, result: dict, key: bytes, high: int) -> int | None:
        """An optional STATUS/SELECT number, checked: the server's fault is named here, not met later as a crash."""
        value = result.get(key)
        return (
            None
            if value is None
            else checked_number(value, f"{self.where}: {what}: the server's {_text(key)}", 0, high)
        )

    def _uids(self, what: str, uids: Iterable[int]) -> list[int]:
        """UIDs from the server, each checked to be a UID (1 … 2³²−1): a catalog row must never hold nonsense."""
        checked = [checked_number(uid, f"{self.where}: {what}: a UID", 1, MAX_UID) for uid in uids]
        return checked  # type: ignore[return-value]

    def _fetch(self, what: str, uid_set: str, items: Sequence[bytes], modifiers=None, fast: bool = False):
        result = self._call(what, fetch_set, self.client, uid_set, items, modifiers, fast)
        self._uids(what, result)
        return result

    @property
    def has_condstore(self) -> bool:
        return "CONDSTORE" in self.capabilities or "QRESYNC" in self.capabilities

    # -- folders --------------------------------------------------------------
    def list_folders(self) -> list[FolderInfo]:
        """Every selectable folder (``\\Noselect`` and ``\\NonExistent`` skipped)."""
        entries = self._call("LIST", self.client.list_folders)
        folders = []
        for flags, delimiter, name in entries:
            flag_names = tuple(_text(f) for f in flags)
            lowered = {f.lower() for f in flag_names}
            if "\\noselect" in lowered or "\\nonexistent" in lowered:
                continue
            special = next((f for f in flag_names if f in SPECIAL_USE), None)
            folders.append(
                FolderInfo(
                    name=_text(name),
                    delimiter=_text(delimiter) if delimiter else None,
                    flags=flag_names,
                    special_use=special,
                )
            )
        return folders

    def status(self, folder: str) -> FolderStatus:
        items = [b"UIDVALIDITY", b"UIDNEXT", b"MESSAGES"]
        if self.has_condstore:
            items.append(b"HIGHESTMODSEQ")
        what = f"STATUS {folder!r}"
        result = self._call(what, self.client.folder_status, folder, items)
        # STATUS only tells whether to look closer; 0 (Dovecot's answer for a mailbox it is still
        # recovering after a crash) means "unknown": the folder is then EXAMINEd, whose value must be real.
        return self._folder_status(what, result, b"MESSAGES", lowest_uidvalidity=0)

    def _folder_status(self, what: str, result: dict, count_key: bytes, lowest_uidvalidity: int = 1) -> FolderStatus:
        uidvalidity = result.get(b"UIDVALIDITY")
        if uidvalidity is None:
            raise ProtocolError(f"{self.where}: {what}: the server's answer has no UIDVALIDITY")
        return FolderStatus(
            uidvalidity=checked_number(
                uidvalidity, f"{self.where}: {what}: the server's UIDVALIDITY", lowest_uidvalidity, MAX_UID
            ),
            uidnext=self._number(what, result, b"UIDNEXT", MAX_UID + 1),
            messages=self._number(what, result, count_key, MAX_UID),
            highestmodseq=self._number(what, result, b"HIGHESTMODSEQ", MAX_MODSEQ),
        )

    def examine(self, folder: str) -> FolderStatus:
        """Open a folder read-only (EXAMINE): nothing we do afterwards can change it."""
        what = f"EXAMINE {folder!r}"
        result = self._call(what, self.client.select_folder, folder, readonly=True)
        return self._folder_status(what, result, b"EXISTS")

    # -- messages in the examined folder --------------------------------------------
    def all_uids(self) -> list[int]:
        return sorted(self._uids("UID SEARCH", self._call("UID SEARCH", self.client.search, ["ALL"])))

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each UID, to plan batches by bytes (one cheap round trip)."""
        if not uids:
            return {}
        what = "UID FETCH RFC822.SIZE"
        result = self._fetch(what, uid_ranges(uids), [b"RFC822.SIZE"])
        return {
            uid: checked_number(data.get(b"RFC822.SIZE", 0), f"{self.where}: {what}: the server's size", 0, MAX_MODSEQ)
            for uid, data in result.items()
        }

    def flags(self, uids: Sequence[int] | None = None, changed_since: int | None = None) -> dict[int, tuple[str, ...]]:
        """FLAGS of the given UIDs (all with None), optionally CHANGEDSINCE a modseq."""
        modifiers = [f"CHANGEDSINCE {changed_since}"] if changed_since is not None and self.has_condstore else None
        target = "1:*" if uids is None else uid_ranges(uids)
        if not target:
            return {}
        result = self._fetch("UID FETCH FLAGS", target, [b"FLAGS"], modifiers)
        return {uid: _flags(data) for uid, data in result.items()}

    # -- sync fidelity (archiver.sync) ------------------------------------------------
    @property
    def has_qresync(self) -> bool:
        return "QRESYNC" in self.capabilities

    @property
    def is_gmail(self) -> bool:
        return "X-GM-EXT-1" in self.capabilities

    def _enable_qresync(self) -> None:
        """ENABLE QRESYNC once per connection (needed before the VANISHED modifier may be used)."""
        if getattr(self._client, "_archiver_qresync", False):
            return
        self._call("ENABLE QRESYNC", self.client.enable, "QRESYNC")
        self.client._archiver_qresync = True  # type: ignore[union-attr]

    def enable_qresync(self) -> None:
        """Call before EXAMINE: with QRESYNC enabled the server reports expunges as VANISHED."""
        if self.has_qresync:
            self._enable_qresync()

    def forget_vanished(self) -> None:
        """Drop VANISHED responses not yet read: they are about the folder examined before (call before EXAMINE)."""
        if self._client is not None:
            self._client._imap.untagged_responses.pop("VANISHED", None)

    def changes_since(self, modseq: int, known: Set[int] | None = None) -> FolderChanges:
        """``UID FETCH 1:* (FLAGS) (CHANGEDSINCE m VANISHED)``: changed flags and expunged UIDs in one round trip.

        The server may list UIDs that never existed in VANISHED (EARLIER); callers intersect with what they know,
        and pass it as ``known`` so a hostile range is never expanded.
        """
        self._enable_qresync()
        pending = self.client._imap.untagged_responses
        earlier = pending.pop("VANISHED", [])
        result = self._fetch("UID FETCH CHANGEDSINCE VANISHED", "1:*", [b"FLAGS"], [f"CHANGEDSINCE {modseq} VANISHED"])
        responses = [*earlier, *self.client._imap.untagged_responses.pop("VANISHED", [])]
        try:
            vanished = parse_vanished(responses, known)
        except ProtocolError as exc:
            raise ProtocolError(f"{self.where}: {exc}") from None
        flags = {uid: _flags(data) for uid, data in result.items() if b"FLAGS" in data}
        return FolderChanges(flags=flags, vanished=vanished)

    def existing_uids(self, uids: Iterable[int]) -> set[int]:
        """Which of these UIDs the examined folder holds (``UID SEARCH UID <set>``)."""
        target = uid_ranges(uids)
        if not target:
            return set()
        return set(self._uids("UID SEARCH", self._call("UID SEARCH", self.client.search, ["UID", target])))

    def uids_from(self, first_uid: int) -> list[int]:
        """UIDs >= ``first_uid`` (``UID SEARCH UID n:*`` also answers the highest UID when n is past it)."""
        found = self._uids(
            "UID SEARCH", self._call("UID SEARCH", self.client.search, ["UID", f"{max(first_uid, 1)}:*"])
        )
        return sorted(uid for uid in found if uid >= first_uid)

    def stubs(self, uids: Sequence[int]) -> dict[int, MessageStub]:
        """Message-ID header, size, INTERNALDATE and flags (and Gmail ids/labels) of UIDs, without bodies."""
        items = STUB_ITEMS + (GMAIL_ITEMS if self.is_gmail else [])
        found: dict[int, MessageStub] = {}
        ordered = sorted(set(uids))
        for start in range(0, len(ordered), STUB_BATCH):
            chunk = ordered[start : start + STUB_BATCH]
            result = self._fetch("UID FETCH HEADER.FIELDS", uid_ranges(chunk), items)
            wanted = set(chunk)
            for uid, data in result.items():
                if uid not in wanted or b"RFC822.SIZE" not in data:
                    continue
                internaldate = data.get(b"INTERNALDATE")
                msgid = data.get(b"X-GM-MSGID")
                labels = data.get(b"X-GM-LABELS")
                found[uid] = MessageStub(
                    uid=uid,
                    header_fields=_header_fields(data),
                    size=int(data[b"RFC822.SIZE"]),
                    internaldate=internaldate if isinstance(internaldate, datetime) else None,
                    flags=_flags(data),
                    gm_msgid=None if msgid is None else int(msgid),
                    gm_labels=None if labels is None else _gmail_labels(labels),
                )
        return found

    def headers(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The whole header section (``BODY.PEEK[HEADER]``) of UIDs: the fingerprint of a message without Message-ID."""
        found: dict[int, bytes] = {}
        ordered = sorted(set(uids))
        for start in range(0, len(ordered), STUB_BATCH):
            chunk = ordered[start : start + STUB_BATCH]
            result = self._call("UID FETCH BODY.PEEK[HEADER]", fetch_set, self.client, uid_ranges(chunk), [HEADER_ITEM])
            wanted = set(chunk)
            for uid, data in result.items():
                value = data.get(b"BODY[HEADER]")
                if uid in wanted and value is not None:
                    found[uid] = value.encode("latin-1") if isinstance(value, str) else value
        return found

    def gmail_labels(self, uids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        """X-GM-LABELS of UIDs (Gmail only; empty elsewhere)."""
        if not self.is_gmail or not uids:
            return {}
        result = self._fetch("UID FETCH X-GM-LABELS", uid_ranges(uids), [b"X-GM-LABELS"])
        return {uid: _gmail_labels(data.get(b"X-GM-LABELS", ())) for uid, data in result.items()}

    def fetch(self, uids: Sequence[int]) -> tuple[list[FetchedMessage], list[int]]:
        """Fetch whole messages; returns them and the UIDs the server did not return."""
        if not uids:
            return [], []
        try:
            result = self._fetch("UID FETCH BODY.PEEK[]", uid_ranges(uids), FETCH_ITEMS, fast=True)
        except ResponseTooLarge as exc:  # the connection is closed; say which message, so it can be set aside
            uid = _FETCH_UID.search(exc.line)
            if uid is None or exc.size is None or int(uid.group(1)) not in uids:
                raise
            raise MessageTooLarge(str(exc), int(uid.group(1)), exc.size) from None
        messages = []
        for uid in uids:
            data = result.get(uid)
            raw = None if data is None else data.get(b"BODY[]")
            if raw is None:
                continue
            if isinstance(raw, str):
                raw = raw.encode("latin-1")
            internaldate = data.get(b"INTERNALDATE")
            messages.append(
                FetchedMessage(
                    uid=uid,
                    raw=raw,
                    flags=_flags(data),
                    internaldate=internaldate if isinstance(internaldate, datetime) else None,
                    size=len(raw),
                )
            )
        returned = {m.uid for m in messages}
        return messages, [uid for uid in uids if uid not in returned]


class MessageTooLarge(ProtocolError):
    """A body literal announced over max_message_bytes although RFC822.SIZE said less (the connection is closed)."""

    def __init__(self, message: str, uid: int, size: int) -> None:
        super().__init__(message)
        self.uid = uid
        self.size = size


@dataclass(frozen=True)
class MessageStub:
    """What a message looks like without its body: enough to recognise a copy the archive already holds."""

    uid: int
    header_fields: bytes | None  # the Message-ID header line(s) as the server sent them
    size: int
    internaldate: datetime | None
    flags: tuple[str, ...]
    gm_msgid: int | None = None  # Gmail (X-GM-EXT-1) only
    gm_labels: tuple[str, ...] | None = None


@dataclass(frozen=True)
class FolderChanges:
    """What changed in the examined folder since a modseq (QRESYNC): new flags and expunged UIDs."""

    flags: dict[int, tuple[str, ...]]
    vanished: set[int]


def quiet_protocol_trace(client: imapclient.IMAPClient) -> None:
    """Stop imaplib from formatting a trace nobody reads.

    imapclient sets imaplib's ``debug = 5`` and routes the trace to a logger that
    normally drops it, but imaplib builds each trace line first: the ``repr`` of
    every FETCH response, literal bodies included: a large share of a backup's
    main-thread time (and a transient copy of each batch).  ``--debug`` alone
    does not turn it back on (it would put whole messages in the log); setting
    the ``imapclient.imaplib`` logger's own level to DEBUG does.
    """
    if logging.getLogger("imapclient.imaplib").level != logging.DEBUG:
        client._imap.debug = 0


def parse_vanished(items: Iterable[bytes | str], among: Set[int] | None = None) -> set[int]:
    """UIDs from untagged ``VANISHED [(EARLIER)] <uid-set>`` responses (RFC 7162).

    With ``among`` only those UIDs are kept, and a range is never expanded: ``1:4294967295``
    costs a pass over ``among``, not four billion ints.  Anything but a UID set is a ProtocolError.
    """
    uids: set[int] = set()
    for item in items:
        text = _text(item).strip()
        if text.upper().startswith("(EARLIER)"):
            text = text[len("(EARLIER)") :].strip()
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            low, _sep, high = part.partition(":")
            start = checked_number(low, "VANISHED: a UID", 1, MAX_UID)
            end = checked_number(high, "VANISHED: a UID", 1, MAX_UID) if high else start
            if start > end:
                start, end = end, start
            if among is not None:
                uids.update(uid for uid in among if start <= uid <= end)
            elif end - start > MAX_EXPANDED:
                raise ProtocolError(f"VANISHED: the range {start}:{end} is too wide to list")
            else:
                uids.update(range(start, end + 1))
    return uids


def _header_fields(data: dict) -> bytes | None:
    for key, value in data.items():
        if isinstance(key, bytes) and key.upper().startswith(b"BODY[HEADER.FIELDS"):
            return value.encode("latin-1") if isinstance(value, str) else value
    return None


def checked_number(value: object, what: str, low: int, high: int) -> int:
    """``value`` as an int in [low, high], else one :class:`ProtocolError` line quoting ``what`` and the value."""
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        number = None
    if number is None or not low <= number <= high:
        shown = _text(value)[:40] if isinstance(value, bytes | str) else repr(value)[:40]
        raise ProtocolError(f"{what} is {shown!r}, not a number from {low} to {high}")
    return number


def greeting_error(where: str, exc: Exception, provider: str | None = None) -> SourceError:
    """imaplib's complaint about the greeting as one line: ``* BYE`` is a refusal (often a connection limit).

    A refusal that names a limit (throttled, over quota) is that limit's error, so the run waits or stops.
    """
    reason = _server_reason(exc)
    limit = limit_error(where, "greeting", reason, provider) if reason.upper().startswith("* BYE") else None
    if limit is not None:
        return limit
    if reason.upper().startswith("* BYE"):
        return ConnectError(f"{where}: the server turned the connection away ({reason[5:].strip() or 'BYE'})")
    return ProtocolError(f"{where}: the server did not greet as an IMAP server ({reason[:80]!r})")


def _server_reason(exc: Exception) -> str:
    text = str(exc).strip()
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text[:200] or "no reason given"


def _quietly_close(client: imapclient.IMAPClient) -> None:
    with contextlib.suppress(Exception):
        client.shutdown()


def _discard_spooled(client: imapclient.IMAPClient) -> None:
    """Remove the files of big literals a broken response left in imaplib's untagged responses.

    Nothing else would until the garbage collector met them (the exception's traceback keeps
    the connection alive), and a long-lived daemon must not leave them in ``blobs/tmp/``.
    """
    untagged = getattr(getattr(client, "_imap", None), "untagged_responses", None) or {}
    for items in untagged.values():
        for item in items:
            if isinstance(item, tuple) and item and isinstance(item[-1], SpooledBody):
                item[-1].discard()


def _gmail_labels(value: object) -> tuple[str, ...]:
    return parse_labels(value)  # the parsing is pure and unit-tested in archiver.sources.gmail


__all__ = ["FolderChanges", "ImapSource", "MessageStub", "MessageTooLarge", "fetch_set", "parse_vanished", "uid_ranges"]
