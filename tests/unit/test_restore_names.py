"""Pure parts of the restore name mapping and the skip check's keys (the server side is in
tests/integration/test_restore_names.py and test_restore_fidelity.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from archiver.errors import RestoreError
from archiver.restore.imap_target import held_keys, item_keys
from archiver.restore.plan import FolderPlan, distinct_targets, target_parts
from archiver.scope import Item


@pytest.mark.parametrize(
    "name, parts",
    [
        ("a//b", ("R", "a", "b")),
        ("/abs", ("R", "abs")),
        ("a/", ("R", "a")),
        ("", ("R", "(unnamed)")),
        ("/", ("R", "(unnamed)")),
        ("x/../y", ("R", "x", "(dot-dot)", "y")),
        ("./here", ("R", "(dot)", "here")),
        ("...", ("R", "...")),  # only "." and ".." mean something to a server or a filesystem
        ("INBOX", ("R", "INBOX")),
    ],
)
def test_source_names_map_to_components_a_server_takes(name, parts):
    assert target_parts(name, "/", "R") == parts


@pytest.mark.parametrize("prefix", ["..", "R/../x", "./R"])
def test_a_prefix_with_dot_levels_is_refused(prefix):
    with pytest.raises(RestoreError, match="is not a folder name"):
        target_parts("INBOX", "/", prefix)


def test_mapped_names_do_not_merge_into_another_folder():
    names = ["", "(unnamed)", "/", "a/b", "a//b"]
    plans = [FolderPlan(n, "/", target_parts(n, "/", "R"), 1, 1) for n in sorted(names)]
    got = {p.source: "/".join(p.target_parts) for p in distinct_targets(plans)}
    assert got == {
        "(unnamed)": "R/(unnamed)",  # its own name: kept
        "": "R/(unnamed)~2",
        "/": "R/(unnamed)~3",
        "a/b": "R/a/b",  # its own name: kept, although "a//b" sorts first
        "a//b": "R/a/b~2",
    }


def test_a_row_without_message_id_finds_a_held_copy_the_server_indexes_by_message_id():
    when = "2020-01-02T03:04:05+00:00"
    old_row = Item(1, "0" * 64, "INBOX", "/", (), when, 42, None)
    new_row = Item(2, "0" * 64, "INBOX", "/", (), when, 42, "<a@b>")
    on_server = held_keys("<a@b>", 42, datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert set(item_keys(old_row)) & set(on_server)
    assert set(item_keys(new_row)) & set(on_server)
    # Another size at the same instant stays a candidate (the CRLF form of a bare-LF message); its hash decides.
    assert set(item_keys(old_row)) & set(held_keys("<a@b>", 43, datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)))
    assert not set(item_keys(old_row)) & set(held_keys("<c@d>", 43, datetime(2020, 1, 2, 3, 4, 6, tzinfo=UTC)))
