"""Backup throughput against a real, private Dovecot, with baselines from the same run.

For each mailbox size it generates a seeded, realistic mailbox into a fresh
Dovecot and times, on the same data:

(a) the floor: a minimal imapclient loop fetching every message and discarding it;
(b) ``mbsync`` (isync) pulling everything into a Maildir, when installed;
(c) ``archiver backup`` (a subprocess, so its peak RSS is its own),

then a no-change re-run of (c).  By default (c) is the backup as a user runs it: it
returns once the mail is durable ("done", ``archiver_s``) and leaves a background worker
indexing it, which the bench follows until it exits ("searchable",
``archiver_searchable_s``, with the worker's own peak memory).  ``--wait-index`` times
``backup --wait-index`` instead (the index updated in the command, whose wall time is then
split into its backup phase and the index update), ``--no-index`` the backup alone.
With ``--encrypt`` it then times first backups (``--wait-index``) into a plain and an
encrypted archive (``[archive] encryption = true``, a passphrase) alternately, ``--rounds``
times each on the same mailbox, and prints the best of each and their ratio.
With ``--store s3`` the same backup (and its re-run) also goes into an S3 store on a
private SeaweedFS started for the purpose (and, with ``--encrypt``, into an encrypted
one too), and the S3/local wall-time ratios are printed.
All three talk plain IMAP on loopback so the comparison is about the work, not about TLS.  Prints messages/s, MB/s, the
ratios c/a and c/b, peak RSS, stored/raw bytes (and ``tar | gzip -6`` of the
server's Maildir for reference).

    python bench/backup_throughput.py --messages 10000 --messages 1000
    python bench/backup_throughput.py --messages 2000 --encrypt --rounds 3
    python bench/backup_throughput.py --messages 10000 --store s3 --encrypt --rounds 1
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imapclient
import measure
from mailserver import PASSWORD, USER, Mbsync, fill
from measure import follow_detached, run_child, tree_bytes

from archiver.devtools.sample_mail import generate_mailbox
from archiver.devtools.sandbox import DovecotSandbox
from archiver.devtools.seaweed import BUCKET, SeaweedSandbox
from archiver.index.writer import open_live
from archiver.sources.imap import quiet_protocol_trace
from archiver.store.keys import create_key_file, passphrase_secret


def raw_fetch_floor(sandbox: DovecotSandbox) -> tuple[float, int]:
    started = time.perf_counter()
    total = 0
    client = imapclient.IMAPClient("127.0.0.1", port=sandbox.imap_port, ssl=False)
    quiet_protocol_trace(client)  # the floor gets the same imaplib fix as the archiver: a fair baseline
    client.login(USER, PASSWORD)
    for flags, _delim, name in client.list_folders():
        if b"\\Noselect" in flags:
            continue
        client.select_folder(name, readonly=True)
        uids = client.search(["ALL"])
        for start in range(0, len(uids), 500):
            for data in client.fetch(uids[start : start + 500], [b"BODY.PEEK[]"]).values():
                total += len(data[b"BODY[]"])
    client.logout()
    return time.perf_counter() - started, total


def write_config(sandbox: DovecotSandbox, work: Path) -> Path:
    return measure.write_config(work, "imap", sandbox.imap_port, USER, PASSWORD)


#: How the timed backups treat the search index: the --index mode of the command line.
INDEX_OPTION = {"none": "--no-index", "wait": "--wait-index", "background": "--background-index"}


def first_backup(sandbox: DovecotSandbox, work: Path, encrypted: bool) -> dict:
    """A first ``archiver backup`` into a fresh archive under ``work``: wall seconds, its phases, stored bytes."""
    work.mkdir()
    archive_extra = ""
    if encrypted:
        passphrase = work / "passphrase"
        passphrase.write_text("a benchmark passphrase, long enough\n")
        passphrase.chmod(0o600)
        archive_extra = f'encryption = true\npassphrase_file = "{passphrase}"\n'
    config = measure.write_config(work, "imap", sandbox.imap_port, USER, PASSWORD, archive_extra=archive_extra)
    head = [sys.executable, "-m", "archiver", "--config", str(config)]
    if encrypted:
        subprocess.run([*head, "key", "init"], check=True, capture_output=True)
    seconds, _rss, result = run_child([*head, "backup", "--json", "--wait-index"])
    report = json.loads(result.stdout)[0] if result.returncode == 0 else {}
    return {
        "s": seconds,
        "backup_phase_s": report.get("seconds") or 0.0,
        "index_phase_s": report.get("index_seconds") or 0.0,
        "stored": tree_bytes(work / "archive" / "blobs"),
    }


def compare_encryption(sandbox: DovecotSandbox, work: Path, rounds: int) -> dict:
    """Plain and encrypted first backups, alternately (so both see the same machine load); the best of each."""
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for round_ in range(rounds):
        for encrypted in (False, True):
            name = f"{'encrypted' if encrypted else 'plain'}-{round_}"
            runs[encrypted].append(first_backup(sandbox, work / name, encrypted))
    plain = {key: min(r[key] for r in runs[False]) for key in ("s", "backup_phase_s", "index_phase_s")}
    sealed = {key: min(r[key] for r in runs[True]) for key in ("s", "backup_phase_s", "index_phase_s")}
    (work / "kdf").mkdir()
    started = time.perf_counter()
    create_key_file(work / "kdf", passphrase_secret("timing the default Argon2id cost", "bench"))
    return {
        "rounds": rounds,
        "plain_s": round(plain["s"], 2),
        "encrypted_s": round(sealed["s"], 2),
        "ratio_encrypted_over_plain": round(sealed["s"] / plain["s"], 3),
        "plain_backup_phase_s": round(plain["backup_phase_s"], 2),
        "encrypted_backup_phase_s": round(sealed["backup_phase_s"], 2),
        "ratio_backup_phase_encrypted_over_plain": round(sealed["backup_phase_s"] / plain["backup_phase_s"], 3),
        "plain_index_phase_s": round(plain["index_phase_s"], 2),
        "encrypted_index_phase_s": round(sealed["index_phase_s"], 2),
        "key_derivation_s": round(time.perf_counter() - started, 2),  # Argon2id, once per process opening the archive
        "encrypted_stored_over_plain": round(runs[True][0]["stored"] / runs[False][0]["stored"], 4),
    }


def s3_backup(sandbox: DovecotSandbox, work: Path, index: str, encrypted: bool) -> dict:
    """The same backup into an S3 store (a private SeaweedFS on loopback; sealed if ``encrypted``), and its re-run."""
    work.mkdir()
    with SeaweedSandbox(work / "seaweed") as weed:
        store = (
            f'store = "s3://{BUCKET}/bench/"\nendpoint = "{weed.endpoint}"\n'
            f'access_key_id = "{weed.access_key}"\nsecret_access_key = "{weed.secret_key}"\n'
        )
        if encrypted:
            passphrase = work / "passphrase"
            passphrase.write_text("a benchmark passphrase, long enough\n")
            passphrase.chmod(0o600)
            store += f'encryption = true\npassphrase_file = "{passphrase}"\n'
        config = measure.write_config(work, "imap", sandbox.imap_port, USER, PASSWORD, archive_extra=store)
        head = [sys.executable, "-m", "archiver", "--config", str(config)]
        if encrypted:
            subprocess.run([*head, "key", "init"], check=True, capture_output=True)
        command = [*head, "backup", "--json", INDEX_OPTION[index]]
        elapsed, rss, result = run_child(command)
        report = json.loads(result.stdout)[0] if result.returncode == 0 else {}
        again_s, _, again = run_child(command)
        client = weed.client()
        stored = sum(
            item["Size"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="bench/blobs/")
            for item in page.get("Contents", ())
        )
        client.close()
    return {
        "s3_s": round(elapsed, 2),
        "s3_backup_phase_s": report.get("seconds"),
        "s3_index_phase_s": report.get("index_seconds"),
        "s3_peak_rss_MB": round(rss / 1024, 1),
        "s3_no_change_rerun_s": round(again_s, 3),
        "s3_messages_new": report.get("messages_new"),
        "s3_stored_bytes": stored,
        "s3_ok": result.returncode == 0 and again.returncode == 0,
    }


def gzip_ratio(maildir: Path, raw: int) -> float:
    tar = subprocess.Popen(["tar", "-C", str(maildir), "-cf", "-", "."], stdout=subprocess.PIPE)
    gz = subprocess.run(["gzip", "-6"], stdin=tar.stdout, capture_output=True)
    tar.wait()
    return len(gz.stdout) / raw


def bench_one(count: int, seed: int, index: str = "background", encrypt_rounds: int = 0, store: str = "local") -> dict:
    with tempfile.TemporaryDirectory(prefix="archiver-bench-") as tmp:
        work = Path(tmp)
        with DovecotSandbox(work / "dovecot") as sandbox:
            sandbox.add_user(USER, PASSWORD)
            started = time.perf_counter()
            fill(sandbox, generate_mailbox(count, seed=seed))
            fill_seconds = time.perf_counter() - started

            floor_s, raw_bytes = raw_fetch_floor(sandbox)
            mbsync = Mbsync(sandbox, work / "mbsync-maildir").pull() if Mbsync.installed() else None
            config = write_config(sandbox, work)
            command = [sys.executable, "-m", "archiver", "--config", str(config), "backup", "--json"]
            # "none": the backup alone (its memory is what "bounded by the batch" is about)
            command.append(INDEX_OPTION[index])
            peaks: dict = {}
            full_s, full_rss, result = run_child(command, peaks=peaks)
            report = json.loads(result.stdout)[0] if result.returncode == 0 else {}
            worker_peaks: dict = {}
            searchable_s = full_s + follow_detached(report.get("index_worker_pid"), worker_peaks)
            again_s, again_rss, again = run_child(command)
            again_report = json.loads(again.stdout)[0] if again.returncode == 0 else {}
            stored = tree_bytes(work / "archive" / "blobs")
            live = open_live(work / "archive")
            segments = len(live._segments()) if live is not None else 0
            ratio_gzip = gzip_ratio(sandbox.maildir(USER), tree_bytes(sandbox.maildir(USER)))
            encryption = compare_encryption(sandbox, work, encrypt_rounds) if encrypt_rounds else {}
            s3 = s3_backup(sandbox, work / "s3", index, encrypted=False) if store == "s3" else {}
            s3_sealed = (
                s3_backup(sandbox, work / "s3-sealed", index, encrypted=True)
                if store == "s3" and encrypt_rounds
                else {}
            )
    mb = raw_bytes / 1e6
    out = {
        "messages": count,
        "raw_MB": round(mb, 1),
        "fill_s": round(fill_seconds, 1),
        "floor_s": round(floor_s, 2),
        "floor_msg_s": round(count / floor_s),
        "archiver_s": round(full_s, 2),
        "archiver_msg_s": round(count / full_s),
        "archiver_MB_s": round(mb / full_s, 1),
        "ratio_archiver_over_floor": round(full_s / floor_s, 2),
        "archiver_index_update": index,
        "archiver_searchable_s": round(searchable_s, 2),
        "index_worker_peak_rss_MB": round(worker_peaks.get("rss_kb", 0) / 1024, 1),
        "index_worker_peak_pss_MB": round(worker_peaks.get("pss_kb", 0) / 1024, 1),
        "archiver_backup_phase_s": report.get("seconds"),
        "archiver_index_phase_s": report.get("index_seconds"),
        "archiver_peak_rss_MB": round(full_rss / 1024, 1),
        "archiver_peak_pss_MB": round(peaks.get("pss_kb", 0) / 1024, 1),
        "index_segments": segments,
        "no_change_rerun_s": round(again_s, 3),
        "no_change_rerun_new": again_report.get("messages_new"),
        "stored_over_raw": round(stored / raw_bytes, 3),
        "tar_gzip6_over_raw": round(ratio_gzip, 3),
        "blobs_new": report.get("blobs_new"),
        "archiver_messages_new": report.get("messages_new"),
        "rerun_peak_rss_MB": round(again_rss / 1024, 1),
    }
    out |= {f"encryption_{key}": value for key, value in encryption.items()}
    if s3:
        out |= s3 | {
            "ratio_s3_over_local": round(s3["s3_s"] / full_s, 2),
            "ratio_s3_backup_phase_over_local": round((s3["s3_backup_phase_s"] or 0) / (report.get("seconds") or 1), 2),
        }
    if s3_sealed:
        out |= {f"sealed_{key}": value for key, value in s3_sealed.items()} | {
            "ratio_s3_sealed_over_s3": round(s3_sealed["s3_s"] / s3["s3_s"], 3),
        }
    if mbsync:
        out |= {
            "mbsync_s": round(mbsync[0], 2),
            "mbsync_msg_s": round(count / mbsync[0]),
            "mbsync_peak_rss_MB": round(mbsync[1] / 1024, 1),
            "ratio_archiver_over_mbsync": round(full_s / mbsync[0], 2),
            "ratio_searchable_over_mbsync": round(searchable_s / mbsync[0], 2),
            "ratio_backup_phase_over_mbsync": round((report.get("seconds") or 0) / mbsync[0], 2),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--messages", type=int, action="append", help="mailbox size (repeatable); default 1000 and 10000"
    )
    parser.add_argument("--seed", type=int, default=42)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--no-index", action="store_true", help="time `archiver backup --no-index` (no index phase)")
    mode.add_argument("--wait-index", action="store_true", help="time `archiver backup --wait-index`")
    parser.add_argument(
        "--encrypt", action="store_true", help="also compare first backups into a plain and an encrypted archive"
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --encrypt: backups of each kind (best counts)")
    parser.add_argument(
        "--store", choices=("local", "s3"), default="local", help="s3: also back up into SeaweedFS and compare"
    )
    args = parser.parse_args()
    index = "none" if args.no_index else "wait" if args.wait_index else "background"
    for count in args.messages or [1000, 10000]:
        rounds = args.rounds if args.encrypt else 0
        result = bench_one(count, args.seed, index=index, encrypt_rounds=rounds, store=args.store)
        print(json.dumps(result))
        sys.stdout.flush()


if __name__ == "__main__":
    main()
