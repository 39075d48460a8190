"""Pure parts of restore: dates, target names, flags, batches, how held messages are recognised."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from archiver.errors import RestoreError
from archiver.restore.imap_target import appended_uids, held_keys, internaldate, item_key
from archiver.restore.plan import appendable_flags, batches, in_namespace, target_mailbox, target_parts
from archiver.scope import Item
from archiver.times import as_of_timestamp

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def item(n: int, size: int = 10, mid: str | None = "<a@b>", date: str | None = "2020-01-02T03:04:05+05:30") -> Item:
    return Item(n, f"{n:064x}", "INBOX", "/", (), date, size, mid)


def test_as_of_bare_date_is_end_of_that_local_day():
    stamp = datetime.fromisoformat(as_of_timestamp("2026-11-20", now=NOW))
    local_end = datetime(2026, 11, 20, 23, 59, 59, 999999).astimezone()
    assert stamp == local_end and stamp.utcoffset() == timedelta(0)


def test_as_of_with_offset_and_microseconds_format_sorts_like_the_run_clock():
    assert as_of_timestamp("2026-11-20T10:00:00+02:00", now=NOW) == "2026-11-20T08:00:00.000000+00:00"
    # runs.started_at is utc_now().isoformat(): same shape, so text order is time order
    assert "2026-11-20T08:00:00.000000+00:00" < "2026-11-20T08:00:00.500000+00:00"


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "2027-01-01"])
def test_as_of_rejects_garbage_and_the_future(text):
    with pytest.raises(RestoreError):
        as_of_timestamp(text, now=NOW)


def test_target_names_follow_the_target_delimiter():
    parts = target_parts("Lists/python/ideas", "/", "Restored/2026-11-20")
    assert parts == ("Restored", "2026-11-20", "Lists", "python", "ideas")
    assert target_mailbox(parts, ".") == "Restored.2026-11-20.Lists.python.ideas"
    # a source component holding the target's delimiter cannot create a level by accident
    assert target_mailbox(target_parts("v1.2/notes", "/", ""), ".") == "v1_2.notes"
    assert target_parts("INBOX", "/", None) == ("INBOX",)
    assert target_parts("a.b", ".", "R") == ("R", "a", "b")


def test_flags_recent_dropped_keywords_need_backslash_star():
    flags = ("\\Seen", "\\Recent", "$Work", "\\Flagged")
    assert appendable_flags(flags, None) == (("\\Seen", "$Work", "\\Flagged"), set())
    assert appendable_flags(flags, ["\\Seen", "\\Flagged", "\\*"]) == (("\\Seen", "$Work", "\\Flagged"), set())
    kept, refused = appendable_flags(flags, ["\\Seen", "\\Answered"])
    assert kept == ("\\Seen",) and refused == {"$Work", "\\Flagged"}


def test_batches_bounded_by_count_and_bytes_big_message_alone():
    items = [item(1, 5), item(2, 5), item(3, 100), item(4, 5), item(5, 5), item(6, 5)]
    groups = [[i.placement_id for i in g] for g in batches(items, max_bytes=12, max_count=2)]
    assert groups == [[1, 2], [3], [4, 5], [6]]


def test_held_keys_match_item_keys():
    with_id = item(1, 42)
    assert item_key(with_id) in held_keys("<a@b>", 42, None)
    assert item_key(with_id) not in held_keys("<a@b>", 43, None)
    no_id = item(2, 42, mid=None)
    when = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert item_key(no_id) in held_keys(None, 42, when.astimezone(UTC))  # same instant, other offset
    assert item_key(no_id) not in held_keys(None, 42, when + timedelta(seconds=1))
    undated = item(3, 42, mid=None, date=None)
    assert item_key(undated) in held_keys(None, 42, when)  # no date: size, then the hash decides


def test_flags_that_are_no_imap_atoms_or_unknown_system_flags_are_refused_up_front():
    flags = ("\\Seen", "bad]label", "ünï", "a%b", "\\Custom", "$ok")
    assert appendable_flags(flags, None) == (("\\Seen", "$ok"), {"bad]label", "ünï", "a%b", "\\Custom"})
    # a server that lists a non-standard system flag in PERMANENTFLAGS gets it
    assert appendable_flags(("\\Custom",), ["\\Custom"]) == (("\\Custom",), set())


def test_internaldate_falls_back_to_the_date_header_and_skips_what_imap_cannot_carry():
    pop = Item(1, "0" * 64, "INBOX", None, (), None, 10, None, None, "2018-01-02T10:11:12+01:00")
    assert internaldate(pop) == datetime(2018, 1, 2, 9, 11, 12, tzinfo=UTC)
    assert internaldate(item(2)) == datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert internaldate(item(3, date=None)) is None
    assert internaldate(Item(4, "0" * 64, "INBOX", None, (), None, 1, None, None, "0001-01-01T00:00:00+00:00")) is None


def test_appended_uids_from_appenduid():
    assert appended_uids(b"[APPENDUID 38505 3955] APPEND completed") == [3955]
    assert appended_uids("[APPENDUID 1 4:6,9] done") == [4, 5, 6, 9]
    assert appended_uids(b"APPEND completed") == []


def test_target_names_go_inside_the_personal_namespace():
    assert in_namespace("Restored.2026-11-20.Sent", "INBOX.") == "INBOX.Restored.2026-11-20.Sent"
    assert in_namespace("INBOX", "INBOX.") == "INBOX"
    assert in_namespace("INBOX.Sent", "INBOX.") == "INBOX.Sent"
    assert in_namespace("inbox.Sent", "INBOX.") == "inbox.Sent"
    assert in_namespace("Sent", "") == "Sent"
