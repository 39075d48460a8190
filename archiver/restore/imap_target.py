"""The IMAP side of a restore: one logged-in connection that creates folders, finds what a folder
already holds and APPENDs the rest (see :mod:`archiver.restore.plan` for the contract).

Login, TLS and error mapping are :class:`archiver.sources.imap.ImapSource`'s; the write commands
(CREATE, SELECT, APPEND, and STORE for keywords refused at APPEND) are sent only from here, so
``sources/`` stays read-only.  One reader thread loads the next batch from the store while the
server stores the current one; all IMAP traffic stays on the calling thread.
"""

from __future__ import annotations

import hashlib
import imaplib
import logging
import re
import ssl
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from imapclient.exceptions import IMAPClientError

from archiver.archive import Archive
from archiver.config import AccountConfig
from archiver.errors import ArchiverError, ConnectError, ProtocolError
from archiver.mail.headers import summarize_headers
from archiver.progress import Progress
from archiver.restore.plan import (
    FolderReport,
    appendable_flags,
    batches,
    in_namespace,
    target_mailbox,
)
from archiver.scope import Item
from archiver.sources.connect import network_error
from archiver.sources.imap import ImapSource, fetch_set, uid_ranges
from archiver.sources.sasl import account_tokens

log = logging.getLogger("archiver.restore")

_NETWORK_ERRORS = (OSError, EOFError, imaplib.IMAP4.abort, ssl.SSLError)
APPEND_BATCH_MESSAGES = 200
APPEND_BATCH_BYTES = 8 * 2**20
BULK_INDEX_LIMIT = 20_000  # a target folder up to this size is indexed in one pass, else SEARCH per message
_INDEX_ITEMS = [b"RFC822.SIZE", b"INTERNALDATE", b"BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]

Key = tuple[Any, ...]
_BARE_LF = re.compile(rb"(?<!\r)\n")


@dataclass(frozen=True)
class Held:
    """A message the target folder already holds, as cheap attributes."""

    uid: int
    size: int
    keys: tuple[Key, ...]


def _epoch(value: str | datetime | None) -> int | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return int(moment.timestamp()) if moment.tzinfo else None


def item_key(item: Item) -> Key:
    """The key a big target folder is SEARCHed by for a planned message: Message-ID, else size."""
    if item.message_id:
        return ("m", item.message_id, item.size)
    return ("d", item.size, _epoch(item.internaldate))


def item_keys(item: Item) -> tuple[Key, ...]:
    """Every key a planned message is recognised by before hashing: its Message-ID key, and always
    (size, INTERNALDATE), so a catalog row without a Message-ID (one archived before the header scan
    read past broken folds) still finds the copy a server indexed by its Message-ID.  The size-free
    keys find the copy a server holds of a message with bare LF line ends (imported from an mbox):
    the server stores and serves it with CRLF, so its size and hash are not the archive's."""
    epoch = _epoch(item.internaldate)
    date_keys: tuple[Key, ...] = (("d", item.size, epoch),) + ((("D", epoch),) if epoch is not None else ())
    return (item_key(item), ("M", item.message_id), *date_keys) if item.message_id else date_keys


def held_keys(message_id: str | None, size: int, internaldate: datetime | None) -> tuple[Key, ...]:
    """The keys of a message the target holds; a candidate matching a planned key is then hashed."""
    epoch = _epoch(internaldate)
    date_keys = (("d", size, epoch), ("d", size, None)) + ((("D", epoch),) if epoch is not None else ())
    return ((("m", message_id, size), ("M", message_id)) if message_id else ()) + date_keys


def served_form(raw: bytes) -> bytes:
    """The bytes an IMAP server stores for an APPEND of ``raw``: every bare LF made CRLF (IMAP's line end)."""
    return _BARE_LF.sub(b"\r\n", raw)


@dataclass
class Loaded:
    """One batch read from the store: what to APPEND, what could not be read, flags to report."""

    ready: list[tuple[Item, dict[str, Any]]] = field(default_factory=list)
    failures: list[tuple[Item, str]] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class ImapTarget:
    """One connection to the account being restored into."""

    def __init__(self, account: AccountConfig, archive: Archive, progress: Progress) -> None:
        self.account = account
        self.archive = archive
        self.progress = progress
        self.where = f"{account.name}: {account.host}:{account.port}"
        self.source: ImapSource | None = None
        self.delimiter: str | None = "/"
        self.namespace = ""  # the personal namespace prefix, e.g. "INBOX." (Courier, Cyrus); "" for Dovecot
        self.multiappend = False
        self._tokens = account_tokens(account, archive.root)  # one per restore: reconnects reuse a refreshed token

    # -- connection ---------------------------------------------------------------
    def connect(self) -> None:
        self.source = ImapSource(self.account, tokens=self._tokens).connect()
        self.multiappend = "MULTIAPPEND" in self.source.capabilities
        entries = self._call("LIST", self.client.list_folders, "", "")
        if entries and entries[0][1]:
            self.delimiter = _text(entries[0][1])
        if "NAMESPACE" in self.source.capabilities:
            personal = self._call("NAMESPACE", self.client.namespace).personal
            if personal:
                prefix, delimiter = personal[0]
                self.namespace = _text(prefix)
                self.delimiter = _text(delimiter) if delimiter else self.delimiter

    def mailbox(self, parts: Sequence[str]) -> str:
        """The target mailbox name for path components: joined with the target's delimiter, in its namespace."""
        return in_namespace(target_mailbox(parts, self.delimiter), self.namespace)

    def reconnect_if_needed(self) -> None:
        if self.source is None or self.source._client is None:
            self.close()
            self.connect()

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
            self.source = None

    @property
    def client(self):
        if self.source is None:
            raise ConnectError(f"{self.where}: not connected")
        return self.source.client

    def _call(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except _NETWORK_ERRORS as exc:
            if self.source is not None:
                self.source._client = None
            raise network_error(exc, self.where) from None
        except IMAPClientError as exc:
            raise ProtocolError(f"{self.where}: {what} failed: {_text(str(exc))[:300]}") from None

    # -- one folder -------------------------------------------------------------------
    def restore_folder(self, report: FolderReport, items: list[Item], dry_run: bool) -> None:
        report.planned = len(items)
        name = report.target
        if not self._call("LIST", self.client.folder_exists, name):
            report.created = True
            if dry_run:
                report.appended = len(items)
                report.bytes = sum(i.size for i in items)
                report.refused_flags = _refused(items, None)
                return
            self._create(name)
        info = self._call(f"SELECT {name!r}", self.client.select_folder, name, readonly=dry_run)
        permanent = info.get(b"PERMANENTFLAGS")
        permanent = None if permanent is None else [_text(f) for f in permanent]
        todo = self._missing(items, int(info.get(b"EXISTS", 0)))
        report.skipped = len(items) - len(todo)
        if dry_run:
            report.appended = len(todo)
            report.bytes = sum(i.size for i in todo)
            report.refused_flags = _refused(todo, permanent)
            return
        self.progress.folder(name, len(todo), sum(i.size for i in todo))
        # Reading the next batch from the store (file read, zstd, sha256: all release the GIL) overlaps
        # with the server storing the current one; at most two batches are in memory.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-read") as pool:
            current: Future[Loaded] | None = None
            for batch in batches(todo, APPEND_BATCH_BYTES, APPEND_BATCH_MESSAGES):
                upcoming = pool.submit(self._load, batch, permanent)
                if current is not None:
                    self._append(name, current.result(), report)
                current = upcoming
            if current is not None:
                self._append(name, current.result(), report)
        log.info("%s: %d appended, %d skipped, %d failed", name, report.appended, report.skipped, report.failed)

    def _create(self, name: str) -> None:
        """Create the folder and any missing parents, level by level."""
        parts = name.split(self.delimiter) if self.delimiter else [name]
        for depth in range(1, len(parts) + 1):
            level = (self.delimiter or "").join(parts[:depth])
            if depth == len(parts) or not self._call("LIST", self.client.folder_exists, level):
                try:
                    self._call(f"CREATE {level!r}", self.client.create_folder, level)
                except ProtocolError:
                    if not self._call("LIST", self.client.folder_exists, level):  # lost a race: fine
                        raise

    # -- what the folder already holds ------------------------------------------------------
    def _missing(self, items: list[Item], exists: int) -> list[Item]:
        """The planned items the folder does not hold yet (one held copy satisfies one item)."""
        if exists == 0 or not items:
            return items
        wanted = {key for item in items for key in item_keys(item)}
        if exists <= BULK_INDEX_LIMIT or exists <= 20 * len(items):
            uids = self._call("UID SEARCH", self.client.search, ["ALL"])
        else:
            uids = self._search_candidates(items)
        held = [h for h in self._held(uids) if any(k in wanted for k in h.keys)]
        copies = self._hash_held(held)
        todo = []
        for item in items:
            if copies[item.blob_id] > 0:
                copies[item.blob_id] -= 1
            else:
                todo.append(item)
        if todo and +copies:  # held copies no item claimed: maybe the CRLF form of bare-LF messages
            todo = [item for item in todo if not self._claims_served_copy(item, copies)]
        return todo

    def _claims_served_copy(self, item: Item, copies: Counter[str]) -> bool:
        """Whether the server holds ``item`` in the form it serves a bare-LF message (read from the store)."""
        try:
            raw = self.archive.store.get(item.blob_id)
        except ArchiverError:
            return False  # _load reports the unreadable blob
        served = served_form(raw)
        digest = hashlib.sha256(served).hexdigest()
        if served == raw or copies[digest] <= 0:
            return False
        copies[digest] -= 1
        return True

    def _search_candidates(self, items: Iterable[Item]) -> list[int]:
        """UIDs that may hold the items, by SEARCH (for big folders: no full scan)."""
        found: set[int] = set()
        for key in {item_key(item) for item in items}:
            if key[0] == "m":
                criteria: list[Any] = ["HEADER", "Message-ID", key[1]]
            else:
                criteria = ["LARGER", max(key[1] - 1, 0), "SMALLER", key[1] + 1]
            try:
                found.update(self._call("UID SEARCH", self.client.search, criteria, "UTF-8"))
            except ProtocolError:  # an odd Message-ID the server cannot search: fall back to the size
                found.update(
                    self._call("UID SEARCH", self.client.search, ["LARGER", key[2] - 1, "SMALLER", key[2] + 1])
                )
        return sorted(found)

    def _held(self, uids: Sequence[int]) -> list[Held]:
        held: list[Held] = []
        for start in range(0, len(uids), 2000):
            chunk = uids[start : start + 2000]
            data = self._call("UID FETCH", fetch_set, self.client, uid_ranges(chunk), _INDEX_ITEMS)
            wanted = set(chunk)
            for uid, attrs in data.items():
                if uid not in wanted:  # an unsolicited FETCH (a flag change elsewhere)
                    continue
                header = next((v for k, v in attrs.items() if k.startswith(b"BODY[HEADER")), b"") or b""
                size = int(attrs.get(b"RFC822.SIZE", 0))
                when = attrs.get(b"INTERNALDATE")
                message_id = summarize_headers(header if isinstance(header, bytes) else header.encode()).message_id
                held.append(Held(uid, size, held_keys(message_id, size, when if isinstance(when, datetime) else None)))
        return held

    def _hash_held(self, held: list[Held]) -> Counter[str]:
        """sha256 of the candidates' bytes, fetched in bounded batches: the final word on "same message"."""
        copies: Counter[str] = Counter()
        groups: list[list[int]] = [[]]
        size = 0
        for entry in held:
            if groups[-1] and (size + entry.size > APPEND_BATCH_BYTES or len(groups[-1]) >= APPEND_BATCH_MESSAGES):
                groups.append([])
                size = 0
            groups[-1].append(entry.uid)
            size += entry.size
        for group in groups:
            if not group:
                continue
            data = self._call("UID FETCH BODY.PEEK[]", fetch_set, self.client, uid_ranges(group), [b"BODY.PEEK[]"])
            for attrs in data.values():
                raw = attrs.get(b"BODY[]")
                if raw is not None:
                    copies[hashlib.sha256(raw if isinstance(raw, bytes) else raw.encode("latin-1")).hexdigest()] += 1
        return copies

    # -- appending -------------------------------------------------------------------------
    def _load(self, batch: list[Item], permanent: list[str] | None) -> Loaded:
        """A batch's bytes and APPEND arguments (runs in the reader thread: touches only the store)."""
        loaded = Loaded()
        for item in batch:
            try:
                raw = self.archive.store.get(item.blob_id)  # verifies the hash
            except ArchiverError as exc:
                loaded.failures.append((item, str(exc)))
                continue
            flags, refused = appendable_flags(item.flags, permanent)
            loaded.refused |= refused
            message: dict[str, Any] = {"msg": raw, "flags": flags}
            when = internaldate(item)
            if when is not None:
                message["date"] = when
            loaded.ready.append((item, message))
        return loaded

    def _append(self, name: str, loaded: Loaded, report: FolderReport) -> None:
        for item, reason in loaded.failures:
            self._failed(report, item, reason)
        report.refused_flags |= loaded.refused
        ready = loaded.ready
        if len(ready) > 1 and self.multiappend:
            try:
                status, data = self._call(f"APPEND {name!r}", self.client.multiappend, name, [m for _, m in ready])
            except ProtocolError as exc:  # a BAD (e.g. a flag the server calls invalid): the same as NO here
                status, data = "BAD", [str(exc).encode()]
            if status == "OK":
                self._done(report, ready)
                return
            log.warning("%s: MULTIAPPEND refused (%s); appending one by one", name, _response(data))
        for item, message in ready:
            try:
                self._append_one(name, message, report)
            except ProtocolError as exc:
                self._failed(report, item, str(exc).rsplit("failed: ", 1)[-1])
                continue
            self._done(report, [(item, message)])

    def _append_one(self, name: str, message: dict[str, Any], report: FolderReport) -> None:
        """APPEND one message; if refused and it has keywords, again with system flags only.

        A server may refuse a keyword PERMANENTFLAGS seemed to allow (Dovecot: longer than 50
        characters).  The message matters more than the keyword: it is appended without keywords,
        then each keyword is added with UID STORE, and the ones the server refuses are reported.
        """
        flags = message["flags"]
        try:
            self._append_single(name, message)
            return
        except ProtocolError:
            keywords = [f for f in flags if not f.startswith("\\")]
            if not keywords:
                raise
        system = tuple(f for f in flags if f.startswith("\\"))
        response = self._append_single(name, {**message, "flags": system})
        uids = appended_uids(response)
        for keyword in keywords:
            try:
                if not uids:
                    raise ProtocolError("no APPENDUID: cannot add keywords afterwards")
                self._call("UID STORE", self.client.add_flags, uids, [keyword], silent=True)
            except ProtocolError as exc:
                report.refused_flags.add(keyword)
                log.warning("%s: keyword %r refused: %s", name, keyword, exc)

    def _append_single(self, name: str, message: dict[str, Any]) -> bytes | str:
        """One plain APPEND; returns the server's response text (with APPENDUID), raises ProtocolError.

        With MULTIAPPEND offered it goes through imapclient's ``multiappend`` (a one-message
        MULTIAPPEND is a plain RFC 3501 APPEND): that sends the bytes as they are, where
        ``append`` (imaplib) first runs a CRLF-normalising regex over the whole message, which
        costs a quarter of a second on a message with a few MB of attachments.
        """
        if not self.multiappend:
            return self._call(
                f"APPEND {name!r}", self.client.append, name, message["msg"], message["flags"], message.get("date")
            )
        status, data = self._call(f"APPEND {name!r}", self.client.multiappend, name, [message])
        if status != "OK":
            raise ProtocolError(f"{self.where}: APPEND {name!r} failed: {_response(data)}")
        return _response(data)

    def _done(self, report: FolderReport, appended: list[tuple[Item, dict[str, Any]]]) -> None:
        size = sum(item.size for item, _ in appended)
        report.appended += len(appended)
        report.bytes += size
        self.progress.advance(len(appended), size)

    def _failed(self, report: FolderReport, item: Item, reason: str) -> None:
        report.failed += 1
        report.failures.append(f"message {item.blob_id[:12]} (placement {item.placement_id}): {reason}")
        log.error("%s: message %s not restored: %s", report.target, item.blob_id, reason)


def _refused(items: Iterable[Item], permanent: list[str] | None) -> set[str]:
    refused: set[str] = set()
    for item in items:
        refused |= appendable_flags(item.flags, permanent)[1]
    return refused


def internaldate(item: Item) -> datetime | None:
    """The date to APPEND with (see :attr:`Item.arrival`), None if there is none IMAP can carry."""
    if not item.arrival:
        return None
    try:
        moment = datetime.fromisoformat(item.arrival)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None and 1900 <= moment.year <= 9999 else None


def appended_uids(response: bytes | str | None) -> list[int]:
    """The UIDs in an APPEND response's ``[APPENDUID validity uid-set]`` (UIDPLUS), else []."""
    text = _text(response or b"")
    match = re.search(r"\[APPENDUID \d+ ([\d:,]+)\]", text)
    if match is None:
        return []
    uids: list[int] = []
    for part in match.group(1).split(","):
        first, _, last = part.partition(":")
        uids += range(int(first), int(last or first) + 1)
    return uids


def _response(data: Sequence[Any]) -> str:
    return " ".join(_text(d) for d in data if isinstance(d, bytes | str))[:300]
