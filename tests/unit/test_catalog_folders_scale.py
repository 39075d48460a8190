"""Recording a new folder costs the catalog the same work with 1,000 or 4,000 folders already known.

Counted in SQLite virtual-machine steps (``set_progress_handler``), not seconds, so the test cannot be
flaky on a busy machine; the sync-level twin against Dovecot is tests/integration/test_sync_many_folders.py.
"""

from __future__ import annotations

from archiver.catalog import Catalog

STEP = 50


def steps_per_new_folder(catalog: Catalog, account_id: int, run_id: int, prefix: str, count: int) -> float:
    steps = 0

    def tick() -> int:
        nonlocal steps
        steps += STEP
        return 0

    catalog.db.set_progress_handler(tick, STEP)
    try:
        for number in range(count):
            record = catalog.ensure_folder(account_id, f"{prefix}/{number}", "/", None, run_id)
            assert record.name == f"{prefix}/{number}" and record.uidvalidity is None
    finally:
        catalog.db.set_progress_handler(None, STEP)
    return steps / count


def test_ensure_folder_work_does_not_grow_with_the_folders_already_known(tmp_path):
    with Catalog.open(tmp_path) as catalog:
        account_id = catalog.ensure_account("acct", "imap")
        run_id = catalog.start_run(account_id)
        steps_per_new_folder(catalog, account_id, run_id, "warmup", 1000)
        early = steps_per_new_folder(catalog, account_id, run_id, "early", 200)
        steps_per_new_folder(catalog, account_id, run_id, "bulk", 3000)
        late = steps_per_new_folder(catalog, account_id, run_id, "late", 200)
        assert late < 1.3 * early, f"a new folder costs {late / early:.1f}x the work with 4x the folders known"


def test_folder_returns_one_record_or_none(tmp_path):
    with Catalog.open(tmp_path) as catalog:
        account_id = catalog.ensure_account("acct", "imap")
        run_id = catalog.start_run(account_id)
        created = catalog.ensure_folder(account_id, "INBOX", "/", None, run_id)
        assert catalog.folder(account_id, "INBOX") == created == catalog.folders(account_id)["INBOX"]
        assert catalog.folder(account_id, "Nope") is None
