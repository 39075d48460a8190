"""Placements for messages the archive already holds: re-mapping without downloading.

Used for every batch of new UIDs once the account has any message: after a
UIDVALIDITY reset (the old placements are marked gone since this run and keep
their history; the new ones point at the same blobs), for a renamed folder, and
for copies of a message in several folders.  See :mod:`archiver.backup.fingerprint`
for the matching rule.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from archiver.backup.fingerprint import Fingerprint, KnownCopy, fingerprint, instant, match_known
from archiver.backup.header_print import match_by_header
from archiver.catalog import Adoption, Catalog, FolderRecord
from archiver.catalog.labels import blobs_by_gm_msgid
from archiver.sources.imap import ImapSource, MessageStub
from archiver.store import BlobBackend

log = logging.getLogger("archiver.sync")


def known_copies(catalog: Catalog, account_id: int, message_ids: Iterable[str]) -> list[KnownCopy]:
    """Every placement (present or gone, any folder) of the account whose message has one of these Message-IDs."""
    return [
        KnownCopy(row.blob_id, Fingerprint(row.message_id, row.size, instant(row.internaldate)))
        for row in catalog.copies_by_message_id(account_id, message_ids)
    ]


def adopt(catalog: Catalog, run_id: int, folder_id: int, uidvalidity: int, adoptions: Sequence[Adoption]) -> int:
    """Record placements of already-archived blobs in one transaction; returns how many were added.

    They count as new messages of the run, with no bytes fetched or stored.
    """
    return catalog.adopt_placements(run_id, folder_id, uidvalidity, adoptions) if adoptions else 0


@dataclass(frozen=True)
class AdoptResult:
    """What :func:`adopt_known` did: placements added, UIDs still to download, the stubs it fetched."""

    added: int
    remaining: list[int]
    stubs: dict[int, MessageStub]
    stub_bytes: int  # header bytes fetched to decide: Message-ID lines, and whole headers of messages without one


STUB_SAMPLE = 64
"""New UIDs looked at first in a folder synced for the first time (see :func:`adopt_known`)."""
SAMPLE_FROM = 4 * STUB_SAMPLE
"""Smaller first-time folders get the full look at once: the sample would save nothing."""
WORTH_IT = 1 / 8
"""Share of the sample that must be archived messages for the full look to pay."""


def spread(uids: Sequence[int], count: int) -> list[int]:
    """``count`` UIDs evenly spread over ``uids`` (first and last included)."""
    if len(uids) <= count:
        return list(uids)
    step = (len(uids) - 1) / (count - 1)
    return sorted({uids[round(i * step)] for i in range(count)})


def adopt_known(
    source: ImapSource,
    catalog: Catalog,
    store: BlobBackend,
    account_id: int,
    run_id: int,
    folder: FolderRecord,
    uidvalidity: int,
    missing: list[int],
) -> AdoptResult:
    """Fetch stubs of the new UIDs of the examined folder and record those that are archived messages.

    Gmail: by X-GM-MSGID first.  Everyone: by fingerprint; messages without a Message-ID by their
    whole header section, confirmed against the stored bytes (:mod:`archiver.backup.header_print`).
    Skipped (no round trip) while the account has no message at all, i.e. during the first folder
    of a first backup.

    A folder synced for the first time (a new folder, or a renamed one) is sampled first:
    :data:`STUB_SAMPLE` of its new UIDs, spread over the folder.  A renamed folder's sample is
    all archived messages and the whole folder is looked at; a genuinely new folder's sample
    is mostly unknown mail, and then the other UIDs are downloaded without the header look,
    which would cost a round trip over every message's headers (a fifth of a first backup's
    time) to spare the few copies among them (downloaded, then stored once by hash).  After a
    UIDVALIDITY reset the folder was synced before, so it always gets the full look.
    """
    is_gmail = source.is_gmail
    if not missing or not (is_gmail or catalog.account_has_messages(account_id)):
        return AdoptResult(0, missing, {}, 0)
    first_sync = folder.uidvalidity is None
    header_bytes = 0
    if first_sync and not is_gmail and len(missing) >= SAMPLE_FROM:
        stubs = source.stubs(spread(missing, STUB_SAMPLE))
        matches, header_bytes = _matches(source, catalog, store, account_id, stubs)
        if len(matches) < WORTH_IT * len(stubs):
            log.debug("%s: %d of %d sampled new UIDs archived; no header look", folder.name, len(matches), len(stubs))
            return _record(catalog, run_id, folder, uidvalidity, missing, stubs, matches, header_bytes)
        stubs.update(source.stubs([uid for uid in missing if uid not in stubs]))
    else:
        stubs = source.stubs(missing)
    matches, more_bytes = _matches(source, catalog, store, account_id, stubs)
    return _record(catalog, run_id, folder, uidvalidity, missing, stubs, matches, header_bytes + more_bytes)


def _matches(
    source: ImapSource, catalog: Catalog, store: BlobBackend, account_id: int, stubs: dict[int, MessageStub]
) -> tuple[dict[int, str], int]:
    """({uid: blob id} of the stubs that are messages the account already has, whole-header bytes fetched)."""
    is_gmail = source.is_gmail
    matches: dict[int, str] = {}
    if is_gmail:
        by_msgid = blobs_by_gm_msgid(catalog, account_id, [s.gm_msgid for s in stubs.values() if s.gm_msgid])
        matches = {uid: by_msgid[s.gm_msgid] for uid, s in stubs.items() if s.gm_msgid in by_msgid}
    prints = {
        uid: fingerprint(s.header_fields, s.size, s.internaldate) for uid, s in stubs.items() if uid not in matches
    }
    wanted = {p.message_id for p in prints.values() if p.usable and p.message_id}
    matches.update(match_known(prints, known_copies(catalog, account_id, wanted)))
    unmatched = {uid: stub for uid, stub in stubs.items() if uid not in matches}
    by_header = match_by_header(unmatched, catalog, account_id, store, source.headers)
    matches.update(by_header.matches)
    return matches, by_header.header_bytes


def _record(
    catalog: Catalog,
    run_id: int,
    folder: FolderRecord,
    uidvalidity: int,
    missing: list[int],
    stubs: dict[int, MessageStub],
    matches: dict[int, str],
    header_bytes: int,
) -> AdoptResult:
    """Record the matched UIDs as placements of their blobs; the rest remain to be downloaded."""
    adoptions = [
        Adoption(
            uid=uid,
            blob_id=blob_id,
            flags=stubs[uid].flags,
            internaldate=stubs[uid].internaldate.isoformat() if stubs[uid].internaldate else None,
            size=stubs[uid].size,
        )
        for uid, blob_id in sorted(matches.items())
    ]
    added = 0
    for start in range(0, len(adoptions), 1000):
        added += adopt(catalog, run_id, folder.id, uidvalidity, adoptions[start : start + 1000])
    if adoptions:
        log.info("%s: %d new UID(s) are messages already archived; not downloaded", folder.name, len(adoptions))
    remaining = [uid for uid in missing if uid not in matches]
    stub_bytes = header_bytes + sum(len(s.header_fields or b"") for s in stubs.values())
    return AdoptResult(added, remaining, stubs, stub_bytes)
