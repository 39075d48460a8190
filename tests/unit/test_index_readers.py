"""The searchers a process keeps between searches: always the live index, bounded, safe under threads.

What a user would notice if this went wrong: a message missing from search
after the backup that indexed it, results of the index a rebuild replaced,
an error page while a backup or rebuild runs, or a server whose open files
(and the disk space of deleted index generations) grow with every update.
"""

from __future__ import annotations

import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from archiver import index
from archiver.archive import Archive
from archiver.index import ALL_ACCOUNTS as ALL
from archiver.index import readers
from tests.fixtures.archives import add_messages

WHEN = datetime(2024, 1, 1, tzinfo=UTC)


def mail(n: int, body: str) -> bytes:
    return (
        f"From: Anna <anna@example.org>\r\nTo: bob@example.org\r\nSubject: note {n}\r\n"
        f"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <r{n}@example.org>\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()


def add(archive: Archive, first: int, count: int, body: str = "walrus notes") -> None:
    add_messages(archive, "acct", [("INBOX", mail(n, f"{body} {n}"), (), WHEN) for n in range(first, first + count)])


def held_index_files(archive: Archive) -> list[str]:
    """Files under the archive's index this process holds open or mapped (deleted ones included)."""
    root = str(archive.root / "index")
    held = [line.split(maxsplit=5)[-1] for line in Path("/proc/self/maps").read_text().splitlines() if root in line]
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(root):
            held.append(target)
    return held


def total(archive: Archive, query: str = "walrus") -> int:
    return index.search(archive, query, accounts=ALL, snippets=False).total


def test_a_search_after_an_update_sees_the_new_mail_and_reuses_the_searcher_otherwise(archive: Archive) -> None:
    add(archive, 0, 3)
    index.update_index(archive)
    assert total(archive) == 3
    pool = readers.pool_for(archive.root)
    with pool.checkout() as first:
        pass
    with pool.checkout() as again:
        assert again is first  # nothing changed: the warm searcher is lent again
    add(archive, 3, 2)
    index.update_index(archive)
    assert total(archive) == 5  # the update's commit is seen by the very next search
    with pool.checkout() as after:
        assert after is not first


def test_a_rebuild_swaps_in_a_new_generation_and_the_old_one_is_let_go(archive: Archive) -> None:
    add(archive, 0, 4)
    index.update_index(archive)
    assert total(archive) == 4
    for _ in range(3):
        index.reindex(archive, procs=1)
        assert total(archive) == 4
    generations = [p.name for p in (archive.root / "index").iterdir() if p.name.startswith("g-")]
    assert len(generations) == 1
    live = (archive.root / "index" / "CURRENT").read_text().strip()
    held = held_index_files(archive)
    assert held and [p for p in held if live not in p] == []  # nothing of a replaced generation stays open


def test_many_updates_do_not_accumulate_open_files(archive: Archive) -> None:
    add(archive, 0, 2)
    index.update_index(archive)
    total(archive)
    baseline = len(held_index_files(archive))
    for round_no in range(8):
        add(archive, 100 + 10 * round_no, 3)
        index.update_index(archive)
        assert total(archive) == 2 + 3 * (round_no + 1)
    # Whoosh adds a segment per update: a few more files may be open for the live index, never one set per update.
    assert len(held_index_files(archive)) <= baseline + 2 * 8


def test_threads_searching_during_updates_and_rebuilds_never_fail_nor_go_back(archive: Archive) -> None:
    add(archive, 0, 5)
    index.update_index(archive)
    errors: list[BaseException] = []
    seen: dict[int, list[int]] = {}
    done = threading.Event()

    def user(number: int) -> None:
        seen[number] = []
        while not done.is_set():
            try:
                seen[number].append(total(archive))
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=user, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    try:
        for round_no in range(4):
            add(archive, 100 + 10 * round_no, 2)
            index.update_index(archive)
            if round_no == 1:
                index.reindex(archive, procs=1)
    finally:
        done.set()
        for thread in threads:
            thread.join()
    assert errors == []
    for totals in seen.values():
        assert totals == sorted(totals)  # one user's searches never see an older index than before
        assert set(totals) <= {5, 7, 9, 11, 13}
    assert total(archive) == 13


def test_only_a_few_archives_keep_their_searchers(tmp_path: Path, open_archive) -> None:  # type: ignore[no-untyped-def]
    archives = []
    for n in range(readers.ARCHIVES + 2):
        archive = open_archive(tmp_path / f"a{n}")
        add(archive, 0, 1)
        index.update_index(archive)
        assert total(archive) == 1
        archives.append(archive)
    assert sum(bool(held_index_files(a)) for a in archives) <= readers.ARCHIVES
    assert held_index_files(archives[0]) == held_index_files(archives[1]) == []  # the least recent: let go


def test_no_index_is_one_clear_error(archive: Archive) -> None:
    add(archive, 0, 1)
    with pytest.raises(index.SearchIndexError, match="no search index yet"):
        index.search(archive, "walrus", accounts=ALL)


def test_a_search_that_waits_too_long_for_the_searcher_is_one_clear_error(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    add(archive, 0, 1)
    index.update_index(archive)
    monkeypatch.setattr(readers, "BUSY_SECONDS", 0.2)
    stuck = readers.pool_for(archive.root).checkout()  # another request's search, stuck
    with stuck, pytest.raises(index.SearchIndexError, match=r"busy for 0\.2 s: try again"):
        total(archive)
    assert total(archive) == 1  # and it is not left locked
