"""``archiver verify``: prove every layer of the archive against the one below it.

Blobs are re-hashed from disk (streamed, on both cores), the catalog is checked
against the blobs (every message has its blob, with the recorded size), and
SQLite checks its own pages.  Blobs on disk that the catalog does not know are
reported as *orphans*: a run killed between the blob fsync and the catalog
commit leaves them; they are harmless (the next run that sees the message
adopts them without rewriting) and are not counted as problems.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from archiver.archive import Archive


@dataclass
class VerifyReport:
    blobs_checked: int = 0
    bytes_checked: int = 0
    problems: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "blobs_checked": self.blobs_checked,
            "bytes_checked": self.bytes_checked,
            "problems": self.problems,
            "orphan_blobs": len(self.orphans),
        }


def verify_archive(archive: Archive, on_blob: Callable[[int], None] | None = None) -> VerifyReport:
    report = VerifyReport()
    catalog = archive.catalog
    store = archive.store
    report.problems.extend(f"catalog: {line}" for line in catalog.integrity_check())
    for row in catalog.dangling_placements():
        report.problems.append(f"catalog: placement {row['id']} points at unknown message {row['blob_id']}")

    known = dict(catalog.iter_message_blobs())

    def check(item: tuple[str, int]) -> tuple[str, int, str | None]:
        blob_id, size = item
        return blob_id, size, store.check(blob_id, expected_size=size)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="verify") as pool:
        for _blob_id, size, problem in pool.map(check, known.items()):
            report.blobs_checked += 1
            report.bytes_checked += size
            if problem:
                report.problems.append(problem)
            if on_blob:
                on_blob(size)
    report.orphans = [blob_id for blob_id in store.iter_ids() if blob_id not in known]
    return report
