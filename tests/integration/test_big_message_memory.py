"""Measured: a 180 MB message travels from the server to the blob store without ever being whole in memory.

A backup (``python -m archiver backup --no-index``, a child process) of a mailbox
holding one 180 MB message and a few small ones, against the real Dovecot, while
this test sums VmRSS over the child's process tree every 10 ms from /proc.  The
message is spooled into ``blobs/tmp/`` and hashed and compressed from there, so
the tree's peak stays under the 150 MB memory budget; before, the literal, the
FETCH data and the compressed frame were each a copy in memory (over 500 MB).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from archiver.memory import proc_kb, process_tree
from archiver.verify import verify_archive
from tests.fixtures.archives import OpenArchive, archived_hashes
from tests.fixtures.cli import archiver_command
from tests.fixtures.mail_server import account_toml, fill_mailbox

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc"),
]

BIG_BYTES = 180 * 2**20
BUDGET_MB = 150


def _write_big_message(path: Path, size: int) -> str:
    """A CRLF message of about ``size`` bytes (a base64 attachment of random bytes) written in pieces; its sha256."""
    digest = hashlib.sha256()
    head = (
        b"From: alice@example.org\r\nTo: bob@example.org\r\nSubject: the whole scan archive\r\n"
        b"Message-ID: <big-scan@example.org>\r\nDate: Thu, 03 Dec 2026 10:00:00 +0000\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    written = 0
    with path.open("wb") as handle:
        for piece in (head,):
            handle.write(piece)
            digest.update(piece)
            written += len(piece)
        while written < size:
            raw = base64.encodebytes(os.urandom(57 * 16384)).replace(b"\n", b"\r\n")  # 76-column lines
            handle.write(raw)
            digest.update(raw)
            written += len(raw)
    return digest.hexdigest()


def _backup_peak_mb(config: Path) -> tuple[subprocess.CompletedProcess, float]:
    """Run the backup in a child; its result and the peak of its process tree's summed VmRSS in MB."""
    command = archiver_command(config, "backup", "--no-index")
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = 0
    while child.poll() is None:
        peak = max(peak, sum(proc_kb(pid, "VmRSS") for pid in process_tree(child.pid)))
        time.sleep(0.01)
    stdout, stderr = child.communicate()
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr), peak / 1024


def test_a_180_mb_message_is_archived_byte_exact_within_the_memory_budget(
    dovecot, mail_user, tmp_path: Path, config_file, open_archive: OpenArchive
) -> None:
    fill_mailbox(dovecot, mail_user, 5, folders=1, duplicate_ratio=0)
    cur = dovecot.maildir(mail_user.name) / "cur"
    big_sha = _write_big_message(cur / f"{int(time.time())}.big.archiver-test:2,S", BIG_BYTES)
    config = config_file(account_toml(dovecot, mail_user))

    result, peak_mb = _backup_peak_mb(config)

    print(f"peak RSS of the backup's process tree: {peak_mb:.0f} MB")
    assert result.returncode == 0, result.stderr
    assert peak_mb <= BUDGET_MB, f"peak {peak_mb:.0f} MB over the {BUDGET_MB} MB memory budget"
    with open_archive(config) as archive:
        archived = archived_hashes(archive.catalog)
        assert len(archived) == 6 and big_sha in archived.values()  # the server's exact bytes, by their hash
        assert verify_archive(archive).ok
        blob = archive.store.path_of(big_sha)
        row = archive.catalog.db.execute("SELECT subject FROM messages WHERE blob_id = ?", (big_sha,)).fetchone()
        leftovers = list(archive.store.temp_dir.iterdir())
    assert row is not None and row[0] == "the whole scan archive"  # header summary from the spooled head
    assert leftovers == []  # the spool file is gone once the blob is stored
    if shutil.which("zstd"):  # the on-disk format is a plain zstd frame, readable without the tool
        with subprocess.Popen(["zstd", "-dc", str(blob)], stdout=subprocess.PIPE) as zstd:
            assert zstd.stdout is not None
            digest = hashlib.sha256()
            while chunk := zstd.stdout.read(1 << 20):
                digest.update(chunk)
        assert zstd.returncode == 0 and digest.hexdigest() == big_sha
