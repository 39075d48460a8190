"""Sync-fidelity figures against a real, private Dovecot: re-runs after no change, after churn, after a
UIDVALIDITY reset.

One folder of N seeded, realistic messages is backed up, then (each step a backup run, in-process):

(1) a no-change re-run (the STATUS short-circuit);
(2) a re-run after 1 % of the messages had their flags changed and 1 % were expunged
    (QRESYNC: one CHANGEDSINCE/VANISHED fetch), and the same churn again over the UID-set fallback;
(3) a re-run after the folder's UIDVALIDITY changed (``doveadm mailbox update --uid-validity``, same
    UIDs; or ``--method uidlist``: Dovecot's uidlist and indexes deleted, every message gets a new UID).

For (3) it prints the body bytes downloaded again against the folder's bytes (the goal is under 1 %
whatever the mail), and the header bytes fetched to recognise the messages (Message-ID lines; whole
headers of messages without one).  The baseline is what a resync without re-mapping costs: the whole
folder (100 %).  Messages without a Message-ID (old mail, digests, bounces) are matched by their whole
header: ``--without-message-id 0.3`` strips it from 30 % of the generated messages, ``--corpus DIR``
uses the real-world corpus instead (appended without a date, so most share an INTERNALDATE second).

    python bench/uidvalidity_resync.py                       # 2,000 messages
    python bench/uidvalidity_resync.py --messages 10000      # the issue's size
    python bench/uidvalidity_resync.py --without-message-id 0.3
    python bench/uidvalidity_resync.py --corpus ../shared/corpus --method uidlist
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import measure

from archiver.archive import Archive
from archiver.backup import ImapBackup, RunReport, run_backup, update_search_index
from archiver.config import config_from_toml_text
from archiver.devtools.sample_mail import corpus_messages, generate_mailbox, without_message_id
from archiver.devtools.sandbox import DovecotSandbox

USER, PASSWORD, FOLDER = "bench", "bench-password", "Big"


def make_config(sandbox: DovecotSandbox, work: Path):
    path = measure.write_config(work, "imap", sandbox.imap_port, USER, PASSWORD, extra="timeout = 120\n")
    return config_from_toml_text(path.read_text(), path)


def timed(config, archive) -> tuple[float, float, RunReport]:
    """(seconds of the sync itself, seconds of the index refresh, report) of one backup run."""
    started = time.perf_counter()
    report = run_backup(config, config.accounts[0], archive=archive, index=False)
    if not report.ok:
        raise SystemExit(f"backup failed: {report.problems}")
    synced = time.perf_counter()
    update_search_index(archive, report.run_id)  # not sync work: timed apart
    return synced - started, time.perf_counter() - synced, report


def churn(sandbox: DovecotSandbox, uids: list[int], rng: random.Random, share: float) -> None:
    """Change the flags of ``share`` of the messages and expunge another ``share``."""
    count = max(1, int(len(uids) * share))
    picked = rng.sample(uids, 2 * count)
    flagged, expunged = picked[:count], picked[count:]
    client = sandbox.connect(USER)
    client.select_folder(FOLDER)
    client.add_flags(flagged, [b"\\Flagged"])
    client.delete_messages(expunged)
    client.expunge()
    client.logout()
    for uid in expunged:
        uids.remove(uid)


def reset_uidvalidity(sandbox: DovecotSandbox, method: str) -> None:
    client = sandbox.connect(USER)
    old = client.folder_status(FOLDER, [b"UIDVALIDITY"])[b"UIDVALIDITY"]
    client.logout()
    if method == "doveadm":
        result = sandbox.doveadm("mailbox", "update", "--uid-validity", str(old + 1000), "-u", USER, FOLDER)
        if result.returncode != 0:
            raise SystemExit(f"doveadm mailbox update failed: {result.stderr}")
    else:
        time.sleep(1.1)  # Dovecot's new UIDVALIDITY is the clock in seconds
        folder = sandbox.maildir(USER) / FOLDER
        for path in folder.iterdir():
            if path.name == "dovecot-uidlist" or path.name.startswith("dovecot.index"):
                path.unlink()


def folder_bytes(sandbox: DovecotSandbox) -> int:
    client = sandbox.connect(USER)
    client.select_folder(FOLDER, readonly=True)
    sizes = client.fetch(client.search(["ALL"]), [b"RFC822.SIZE"])
    client.logout()
    return sum(item[b"RFC822.SIZE"] for item in sizes.values())


def mailbox(count: int, seed: int, share_without_id: float, corpus: Path | None) -> list:
    """(raw, flags, INTERNALDATE) to append: generated (a share stripped of Message-ID) or the corpus."""
    if corpus is not None:
        return [(raw, (), None) for _path, raw in corpus_messages(corpus)]
    strip = random.Random(seed + 1)
    return [
        (without_message_id(s.raw) if strip.random() < share_without_id else s.raw, s.flags, s.internaldate)
        for s in generate_mailbox(count, seed=seed)
    ]


def bench(count: int, seed: int, method: str, share_without_id: float = 0.0, corpus: Path | None = None) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="archiver-bench-") as tmp:
        work = Path(tmp)
        with DovecotSandbox(work / "dovecot") as sandbox:
            sandbox.add_user(USER, PASSWORD)
            samples = mailbox(count, seed, share_without_id, corpus)
            without_id = [raw for raw, _f, _d in samples if b"\nmessage-id:" not in b"\n" + raw.lower()[:65536]]
            count = len(samples)
            uids = sandbox.append_many(USER, FOLDER, samples)
            config = make_config(sandbox, work)
            with Archive(config.archive) as archive:
                first_s, first_ix, _first = timed(config, archive)
                same_s, _same_ix, same = timed(config, archive)
                churn(sandbox, uids, rng, 0.01)
                churn_s, churn_ix, churned = timed(config, archive)
                churn(sandbox, uids, rng, 0.01)
                original_init = ImapBackup.__init__

                def without_qresync(self, *args, **kwargs):
                    original_init(self, *args, **kwargs)
                    self.use_qresync = False

                ImapBackup.__init__ = without_qresync
                try:
                    fallback_s, _fallback_ix, fallback = timed(config, archive)
                finally:
                    ImapBackup.__init__ = original_init
                total = folder_bytes(sandbox)
                reset_uidvalidity(sandbox, method)
                reset_s, reset_ix, reset = timed(config, archive)
    big = next(f for f in reset.folders if f.name == FOLDER)
    return {
        "messages": count,
        "source": "corpus" if corpus is not None else "generated",
        "without_message_id": len(without_id),
        "without_message_id_bytes_pct": round(100 * sum(map(len, without_id)) / total, 1),
        "folder_MB": round(total / 1e6, 1),
        "first_backup_s": round(first_s, 2),
        "first_backup_index_s": round(first_ix, 2),
        "no_change_rerun_s": round(same_s, 3),
        "no_change_bytes_fetched": same.bytes_fetched,
        "churn_1pct_rerun_s_qresync": round(churn_s, 3),
        "churn_index_refresh_s": round(churn_ix, 2),
        "churn_flags_changed": sum(f.flags_changed for f in churned.folders),
        "churn_gone": sum(f.gone for f in churned.folders),
        "churn_bytes_fetched": churned.bytes_fetched,
        "churn_1pct_rerun_s_uid_sets": round(fallback_s, 3),
        "fallback_flags_changed": sum(f.flags_changed for f in fallback.folders),
        "fallback_gone": sum(f.gone for f in fallback.folders),
        "uidvalidity_method": method,
        "uidvalidity_rerun_s": round(reset_s, 2),
        "uidvalidity_index_refresh_s": round(reset_ix, 2),
        "uidvalidity_bytes_refetched": reset.bytes_fetched,
        "uidvalidity_refetched_pct": round(100 * reset.bytes_fetched / total, 3),
        "uidvalidity_header_bytes": big.stub_bytes,
        "uidvalidity_header_pct": round(100 * big.stub_bytes / total, 3),
        "uidvalidity_remapped": big.adopted,
        "uidvalidity_new_blobs": reset.blobs_new,
        "baseline_without_remap_pct": 100.0,
        "first_backup_over_resync_time": round(first_s / reset_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=2000, help="messages in the folder (issue: 10000)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--method", choices=["doveadm", "uidlist"], default="doveadm")
    parser.add_argument(
        "--without-message-id", type=float, default=0.0, metavar="SHARE", help="share of messages without one (0..1)"
    )
    parser.add_argument("--corpus", type=Path, metavar="DIR", help="append the messages of this corpus instead")
    args = parser.parse_args()
    if not 0.0 <= args.without_message_id <= 1.0:
        parser.error("--without-message-id is a share between 0 and 1")
    print(json.dumps(bench(args.messages, args.seed, args.method, args.without_message_id, args.corpus), indent=2))


if __name__ == "__main__":
    main()
