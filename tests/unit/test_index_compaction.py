"""Index segments: updates never merge them, and compaction merges them by tiers, bounded and crash-safe.

The streamed merge is checked against Whoosh's own (``OPTIMIZE``, through its posting pool): the same
postings, stored fields and search results, deleted documents dropped.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from whoosh.reading import SegmentReader

from archiver import index
from archiver.archive import Archive
from archiver.devtools.sample_mail import generate_mailbox
from archiver.index import ALL_ACCOUNTS as ALL
from archiver.index import compaction
from archiver.index import writer as index_writer
from archiver.index.compaction import FLOOR_DOCS, TIER_MERGE, SegmentSize, next_step, segment_sizes, tier
from archiver.index.fastwrite import FastSegmentWriter
from archiver.index.generations import update_lock
from archiver.index.live import open_live
from tests.fixtures.archives import OpenArchive, add_messages
from tests.fixtures.cli import Cli

QUERIES = [
    "budget",
    "meeting OR report",
    '"the project"',
    "has:attachment",
    "is:unread",
    "is:flagged",
    "folder:INBOX",
    "date:2019..2021",
    "re*",
    "-is:unread has:attachment",
]


def _items(count: int, seed: int) -> list:
    return [(s.folder, s.raw, tuple(s.flags), s.internaldate) for s in generate_mailbox(count, seed=seed)]


def _results(archive: Archive) -> dict[str, list[str]]:
    """Every query's hits, and their dates in the order shown newest first."""
    results = {}
    for query in QUERIES:
        for sort in ("relevance", "date"):
            page = index.search(archive, query, accounts=ALL, page_size=500, sort=sort, snippets=False)
            # Equal scores or dates may come in another order once documents move to another segment.
            order = [h.date for h in page.hits] if sort == "date" else []
            results[f"{query} @{sort}"] = [page.total, sorted(h.blob_id for h in page.hits), order]
    return results


def _postings(archive: Archive) -> dict:
    """Everything the index holds, by blob id instead of document number: postings, stored fields, lengths."""
    ix = open_live(archive.root)
    assert ix is not None
    with ix.searcher() as searcher:
        reader = searcher.reader()
        blob = {docnum: stored["blob_id"] for docnum, stored in reader.iter_docs()}
        postings = sorted(
            (field, text, blob[docnum], round(weight, 4), value)
            for field, text, docnum, weight, value in reader.iter_postings()
            if not reader.is_deleted(docnum)
        )
        stored = sorted((stored["blob_id"], sorted(stored.items())) for _, stored in reader.iter_docs())
        lengths = sorted(
            (blob[docnum], name, reader.doc_field_length(docnum, name)) for docnum in blob for name in ix.schema.names()
        )
    return {"postings": postings, "stored": stored, "lengths": lengths}


@pytest.fixture
def segmented(tmp_path: Path, open_archive: OpenArchive, monkeypatch: pytest.MonkeyPatch) -> Iterator[Archive]:
    """An archive of 160 generated messages indexed by four updates committing every 15 messages: many segments."""
    monkeypatch.setattr(index_writer, "COMMIT_DOCS", 15)
    monkeypatch.setattr(index_writer, "BATCH", 15)
    with open_archive(tmp_path / "archive") as archive:
        for round_ in range(4):
            add_messages(archive, "work", _items(40, seed=100 + round_))
            index.update_index(archive)
        yield archive


def test_updates_never_merge_the_segments_already_there(segmented: Archive) -> None:
    ix = open_live(segmented.root)
    before = [segment.segment_id() for segment in ix._segments()]
    assert len(before) >= 10  # a segment per commit, none merged away
    add_messages(segmented, "work", _items(5, seed=7))
    index.update_index(segmented)
    after = [segment.segment_id() for segment in ix._segments()]
    assert after[: len(before)] == before  # the old segments as they were
    assert len(after) == len(before) + 1  # and one new segment


def test_a_full_compaction_gives_what_whooshs_own_merge_gives(segmented: Archive, open_archive: OpenArchive) -> None:
    for round_ in range(3):
        add_messages(segmented, "work", _items(30, seed=200 + round_))
        index.update_index(segmented)
    run = segmented.catalog.start_run(segmented.catalog.account_id("work"))
    folder_id = next(iter(segmented.catalog.folders(segmented.catalog.account_id("work")).values())).id
    rows = segmented.catalog.db.execute("SELECT uid FROM placements WHERE folder_id = ?", (folder_id,))
    uids = [row[0] for row in rows]
    segmented.catalog.update_flags(run, folder_id, 1, {uid: ("\\Seen", "\\Answered") for uid in uids[:20]})
    assert index.update_index(segmented).refreshed  # a flag refresh leaves deleted documents in the old segments
    ix = open_live(segmented.root)
    assert any(size.total > size.live for size in segment_sizes(ix))
    copy = segmented.root.parent / "whoosh"
    shutil.copytree(segmented.root, copy)
    expected_results = _results(segmented)

    report = index.compact(segmented, memory_mb=None, full=True)
    assert report.steps == 1 and report.segments_after == 1 and report.segments_before > 1
    with open_archive(copy) as theirs:
        whoosh_ix = open_live(theirs.root)
        FastSegmentWriter(whoosh_ix).commit(optimize=True)  # Whoosh's merge: every posting through its pool
        assert len(segment_sizes(whoosh_ix)) == 1
        assert _postings(segmented) == _postings(theirs)
        ours_results, their_results = _results(segmented), _results(theirs)
        assert ours_results == their_results
        assert ours_results == expected_results
    (size,) = segment_sizes(open_live(segmented.root))
    assert size.live == size.total  # the deleted documents are gone
    assert index.index_status(segmented)["documents"] == segmented.catalog.archive_totals()["blobs"]


def test_tiered_compaction_keeps_every_result_and_leaves_fewer_segments(
    segmented: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compaction, "FLOOR_DOCS", 40)  # tiers at this archive's scale
    monkeypatch.setattr(compaction, "TIER_MERGE", 4)
    before = _results(segmented)
    count = len(segment_sizes(open_live(segmented.root)))
    report = index.compact(segmented, memory_mb=4000)  # budgeted (no mmap), a budget this test process fits in
    assert report.steps >= 2 and report.segments_before == count and not report.pending_steps
    sizes = segment_sizes(open_live(segmented.root))
    assert report.segments_after == len(sizes) < count
    assert not next_step(sizes)  # the policy is satisfied
    assert _results(segmented) == before
    assert index.compact(segmented, memory_mb=4000).steps == 0  # nothing left to do: a no-op


def test_compaction_stops_between_steps_on_time_memory_and_the_lock(segmented: Archive) -> None:
    before = [s.segment_id() for s in open_live(segmented.root)._segments()]
    report = index.compact(segmented, memory_mb=None, full=True, max_seconds=1e-9)
    assert (report.steps, report.stopped, report.pending_steps) == (0, "time", True)
    report = index.compact(segmented, memory_mb=1, full=True)  # no step fits one MB
    assert (report.steps, report.stopped, report.pending_steps) == (0, "memory", True)
    with update_lock(segmented.root, wait=1.0) as locked:  # another writer (an update, a rebuild) holds the lock
        assert locked
        report = compaction.compact_index(segmented.root, memory_mb=None, full=True, wait=0.3)
    assert (report.steps, report.stopped) == (0, "locked")
    assert [s.segment_id() for s in open_live(segmented.root)._segments()] == before


def test_a_merge_killed_midway_leaves_the_index_as_it_was(segmented: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    before_results = _results(segmented)
    before = [s.segment_id() for s in open_live(segmented.root)._segments()]
    files_before = set(open_live(segmented.root).storage.list())
    real = compaction.segment_postings

    def dying(reader: SegmentReader, basedoc: int, docmap: dict[int, int] | None) -> Iterator[tuple]:
        for number, posting in enumerate(real(reader, basedoc, docmap)):
            if number == 500:
                raise KeyboardInterrupt("power cut")  # as a kill is: not an Exception
            yield posting

    monkeypatch.setattr(compaction, "segment_postings", dying)
    with pytest.raises(KeyboardInterrupt):
        index.compact(segmented, memory_mb=None, full=True)
    assert [s.segment_id() for s in open_live(segmented.root)._segments()] == before
    assert _results(segmented) == before_results
    monkeypatch.setattr(compaction, "segment_postings", real)
    assert index.compact(segmented, memory_mb=None, full=True).segments_after == 1
    assert _results(segmented) == before_results
    leftovers = set(open_live(segmented.root).storage.list()) - files_before
    assert all(not name.endswith(".tmp") for name in leftovers)  # nothing half-written left behind
    assert len([name for name in open_live(segmented.root).storage.list() if name.endswith(".seg")]) == 1


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([], []),
        ([SegmentSize(10, 10)] * (TIER_MERGE - 1), []),  # a tier short of TIER_MERGE: left alone
        ([SegmentSize(10 + n, 10 + n) for n in range(TIER_MERGE + 2)], list(range(TIER_MERGE))),  # smallest first
        # a big segment and a full tier of small ones: only the small ones
        ([SegmentSize(50 * FLOOR_DOCS, 50 * FLOOR_DOCS)] + [SegmentSize(100, 100)] * TIER_MERGE, list(range(1, 7))),
        # a segment mostly deleted: rewritten with the smaller segments of its tier
        ([SegmentSize(900, 900), SegmentSize(300, 700), SegmentSize(100, 100), SegmentSize(5000, 5000)], [1, 2]),
    ],
)
def test_the_tier_policy(sizes: list[SegmentSize], expected: list[int]) -> None:
    assert next_step(sizes) == expected


def test_tiers_and_full() -> None:
    ratio = compaction.TIER_RATIO
    sizes = (0, FLOOR_DOCS - 1, FLOOR_DOCS, ratio * FLOOR_DOCS - 1, ratio * FLOOR_DOCS, ratio**2 * FLOOR_DOCS)
    assert [tier(n) for n in sizes] == [0, 0, 1, 1, 2, 3]
    assert next_step([SegmentSize(5, 5)], full=True) == []  # one clean segment: nothing to merge
    assert next_step([SegmentSize(5, 6)], full=True) == [0]  # ...unless it holds deleted documents
    assert next_step([SegmentSize(5, 5), SegmentSize(9000, 9000)], full=True) == [0, 1]


def test_the_command_merges_and_says_what_it_did(segmented: Archive, cli: Cli, config_file) -> None:  # type: ignore[no-untyped-def]
    config = config_file('[[accounts]]\nname = "work"\nprotocol = "local"\n', extra="[index]\nmemory_mb = 4000\n")
    assert config.parent / "archive" == segmented.root  # the fixture's archive is the config's
    count = len(segment_sizes(open_live(segmented.root)))
    result = cli.invoke(config, "compact-index", "--full")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{count} segment(s) -> 1 in ")
    result = cli.invoke(config, "compact-index", "--json")
    assert result.exit_code == 0 and '"segments_after": 1' in result.output and '"steps": 0' in result.output


def test_a_crowded_index_is_compacted_by_the_update(segmented: Archive, monkeypatch: pytest.MonkeyPatch) -> None:
    count = len(segment_sizes(open_live(segmented.root)))
    monkeypatch.setattr(compaction, "FLOOR_DOCS", 40)
    monkeypatch.setattr(compaction, "TIER_MERGE", 4)
    monkeypatch.setattr(compaction, "CROWDED", count + 5)
    add_messages(segmented, "work", _items(5, seed=7))
    index.update_index(segmented, memory_mb=4000)  # whatever this test process already holds
    assert len(segment_sizes(open_live(segmented.root))) == count + 1  # not crowded: nothing merged
    monkeypatch.setattr(compaction, "CROWDED", count - 2)
    add_messages(segmented, "work", _items(5, seed=8))
    index.update_index(segmented, memory_mb=4000)  # whatever this test process already holds
    assert len(segment_sizes(open_live(segmented.root))) < count
    assert index.index_status(segmented)["documents"] == segmented.catalog.archive_totals()["blobs"]
