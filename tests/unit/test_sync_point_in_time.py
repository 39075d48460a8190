"""Point-in-time listing over a real SQLite catalog: which folders and messages existed after each run."""

from __future__ import annotations

import pytest

from archiver.catalog import Catalog, NewPlacement
from archiver.catalog.as_of import ListingError, folder_states, resolve_run
from archiver.mail.headers import HeaderSummary


def _placement(uid: int) -> NewPlacement:
    return NewPlacement(uid, f"{uid:064x}", (), None, 10, 10, HeaderSummary(f"<{uid}@x>", None, None, None, None))


def test_folders_and_messages_as_of_each_run(tmp_path):
    with Catalog.open(tmp_path) as catalog:
        account = catalog.ensure_account("a", "imap")
        run1 = catalog.start_run(account)
        inbox = catalog.ensure_folder(account, "INBOX", "/", None, run1)
        old = catalog.ensure_folder(account, "Old", "/", None, run1)
        catalog.add_placements(run1, inbox.id, 1, [_placement(1), _placement(2)])
        catalog.add_placements(run1, old.id, 1, [_placement(3)])
        run2 = catalog.start_run(account)
        catalog.mark_placements_gone(run2, inbox.id, 1, [2])
        catalog.mark_folders_gone(account, ["Old"], run2)
        new = catalog.ensure_folder(account, "New", "/", None, run2)
        catalog.add_placements(run2, new.id, 1, [_placement(3)])

        def names(run, include_gone=False):
            return {s.name: [m.uid for m in s.messages] for s in folder_states(catalog, "a", None, run, include_gone)}

        assert names(run1) == {"INBOX": [1, 2], "Old": [3]}
        assert names(run2) == {"INBOX": [1], "New": [3]}
        assert names(None) == names(run2)
        assert names(run2, include_gone=True) == {"INBOX": [1], "New": [3], "Old": [3]}
        (old_state,) = folder_states(catalog, "a", "Old", None)
        assert old_state.gone and old_state.gone_since_run == run2  # named: shown, marked gone
        (old_then,) = folder_states(catalog, "a", "Old", run1)
        assert not old_then.gone

        assert resolve_run(catalog, account, "a", None, run1) == run1
        assert resolve_run(catalog, account, "a", None, None) is None
        with pytest.raises(ListingError, match="not a run"):
            resolve_run(catalog, account, "a", None, 999)
        with pytest.raises(ListingError, match="no backup run by"):
            resolve_run(catalog, account, "a", "2001-01-01", None)
        with pytest.raises(ListingError, match="no folder"):
            folder_states(catalog, "a", "Nope")
        with pytest.raises(ListingError, match="no account"):
            folder_states(catalog, "b")
