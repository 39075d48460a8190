"""Recognising archived messages that have no Message-ID, by their whole header section.

Old mail, mailing-list digests, bounces and messages a client APPENDed itself often carry no
Message-ID, so the Message-ID fingerprint (:mod:`archiver.backup.fingerprint`) cannot match them and a
UIDVALIDITY reset used to download every one of them again.  For those the fingerprint is:

* RFC822.SIZE and INTERNALDATE (already in the stub), which select the candidates: archived blobs of
  the account without a Message-ID, of exactly that size, placed with that INTERNALDATE (to the
  second) — one indexed query, no bytes fetched;
* only for the UIDs that have a candidate, the whole header section (``BODY.PEEK[HEADER]``: every
  Received line with its queue id and time, Date, From, Subject …), compared byte for byte with the
  start of each candidate's stored bytes, read from the blob store itself (not from a hash that
  could be stale or collide).

A new UID is adopted only when exactly one archived blob passes all three; two blobs passing is
doubt, settled by downloading.  What is not confirmed is the body beyond its length: a false match
needs another message of the same account with the same header bytes, the same size to the byte and
the same INTERNALDATE second, which delivered mail (Received lines) cannot produce and a client's
own APPENDs only by writing the same draft twice in one second with a same-length body.  A
mismatch, by contrast, costs one download: the bytes are stored once by hash.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import zstandard

from archiver.backup.fingerprint import instant, message_id_of
from archiver.catalog import Catalog
from archiver.errors import ArchiverError
from archiver.sources.imap import MessageStub
from archiver.store import BlobBackend

log = logging.getLogger("archiver.sync")

HEADER_CAP = 256 * 1024
"""A header section longer than this is not compared (the message is downloaded instead)."""

Key = tuple[int, str]  # (size, INTERNALDATE instant)


@dataclass(frozen=True)
class HeaderLook:
    """What the header look did: {uid: blob id} adopted, and header bytes fetched to decide."""

    matches: dict[int, str]
    header_bytes: int


def keys_without_message_id(stubs: dict[int, MessageStub]) -> dict[int, Key]:
    """uid → (size, instant) of the stubs without a Message-ID (and with a size and INTERNALDATE)."""
    keys: dict[int, Key] = {}
    for uid, stub in stubs.items():
        when = instant(stub.internaldate)
        if stub.size > 0 and when is not None and message_id_of(stub.header_fields) is None:
            keys[uid] = (stub.size, when)
    return keys


def candidates(catalog: Catalog, account_id: int, sizes: Iterable[int]) -> dict[Key, set[str]]:
    """(size, instant) → blob ids of the account's archived messages without a Message-ID, of these sizes.

    Present and gone placements alike (after a reset every old placement is gone); the partial
    index ``messages_without_message_id`` keeps this proportional to the matches, not the archive.
    """
    found: dict[Key, set[str]] = {}
    for row in catalog.copies_without_message_id(account_id, sizes):
        when = instant(row.internaldate)
        if when is not None:
            found.setdefault((row.size, when), set()).add(row.blob_id)
    return found


def stored_prefix(store: BlobBackend, blob_id: str, length: int) -> bytes | None:
    """The first ``length`` bytes of a stored blob (streamed: the rest is never decompressed); None if unreadable."""
    try:
        with store.open(blob_id) as reader:
            chunks: list[bytes] = []
            remaining = length
            while remaining > 0:
                chunk = reader.read(remaining)
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
    except (ArchiverError, OSError, zstandard.ZstdError) as exc:  # missing or corrupt: downloaded instead
        log.warning("blob %s unreadable while matching by header (%s); downloading the message", blob_id, exc)
        return None
    return b"".join(chunks)


def match_by_header(
    stubs: dict[int, MessageStub],
    catalog: Catalog,
    account_id: int,
    store: BlobBackend,
    fetch_headers: Callable[[list[int]], dict[int, bytes]],
) -> HeaderLook:
    """{uid: blob id} for the stubs without a Message-ID that are, header byte for byte, one archived message.

    ``fetch_headers`` is :meth:`archiver.sources.imap.ImapSource.headers`; it is called once, only for
    UIDs with a candidate, so a folder of new mail costs one indexed query and no round trip.
    """
    keys = keys_without_message_id(stubs)
    if not keys:
        return HeaderLook({}, 0)
    known = candidates(catalog, account_id, {size for size, _when in keys.values()})
    wanted = sorted(uid for uid, key in keys.items() if key in known)
    if not wanted:
        return HeaderLook({}, 0)
    headers = fetch_headers(wanted)
    prefixes: dict[tuple[str, int], bytes | None] = {}
    matches: dict[int, str] = {}
    for uid in wanted:
        header = headers.get(uid)
        if not header or len(header) > HEADER_CAP:
            continue
        same = []
        for blob_id in sorted(known[keys[uid]]):
            cache_key = (blob_id, len(header))
            if cache_key not in prefixes:
                prefixes[cache_key] = stored_prefix(store, blob_id, len(header))
            if prefixes[cache_key] == header:
                same.append(blob_id)
        if len(same) == 1:
            matches[uid] = same[0]
    return HeaderLook(matches, sum(len(h) for h in headers.values()))
