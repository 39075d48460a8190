"""Big literals go from the socket into a file in the store's temp directory, never whole into memory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from archiver.sources.spool import HEAD_BYTES, SPOOL_THRESHOLD, SpooledBody
from archiver.sources.wire import ResponseTimeout, WireReader
from archiver.store import BlobStore


def _serve(data: bytes, then_close: bool = True) -> tuple[socket.socket, socket.socket, threading.Thread]:
    ours, theirs = socket.socketpair()

    def send() -> None:
        theirs.sendall(data)
        if then_close:
            theirs.close()

    sender = threading.Thread(target=send)
    sender.start()
    return ours, theirs, sender


def test_a_literal_over_the_threshold_is_received_into_a_file_byte_exact(tmp_path: Path) -> None:
    literal = os.urandom(SPOOL_THRESHOLD + 12345)
    ours, _, sender = _serve(b"* 1 FETCH (BODY[] {%d}\r\n" % len(literal) + literal + b")\r\n")
    reader = WireReader(ours, "acct: host:1", 5.0, max_literal=2 * len(literal), spool_dir=tmp_path)
    try:
        reader.readline()
        body = reader.read(len(literal))
        assert reader.readline() == b")\r\n"  # the reader is in step with the server after it
    finally:
        sender.join()
        ours.close()
    assert isinstance(body, SpooledBody) and len(body) == len(literal)
    assert Path(body.path).parent == tmp_path and Path(body.path).read_bytes() == literal
    assert body.head() == literal[:HEAD_BYTES]
    with body.open() as handle:
        assert handle.read() == literal
    body.discard()
    assert list(tmp_path.iterdir()) == []


def test_without_a_spool_directory_or_under_the_threshold_a_literal_stays_bytes(tmp_path: Path) -> None:
    small = os.urandom(SPOOL_THRESHOLD)
    ours, _, sender = _serve(small)
    try:
        assert WireReader(ours, "acct: host:1", 5.0, spool_dir=tmp_path).read(len(small)) == small
    finally:
        sender.join()
        ours.close()
    assert list(tmp_path.iterdir()) == []


def test_a_stall_inside_a_spooled_literal_times_out_and_removes_the_file(tmp_path: Path) -> None:
    ours, theirs, sender = _serve(b"x" * (SPOOL_THRESHOLD + 10), then_close=False)
    try:
        reader = WireReader(ours, "acct: host:1", 0.5, spool_dir=tmp_path)
        reader.run_deadline = None
        with pytest.raises(ResponseTimeout):
            reader.read(SPOOL_THRESHOLD * 2)
    finally:
        sender.join()
        theirs.close()
        ours.close()
    assert list(tmp_path.iterdir()) == []


def test_a_killed_backup_leaves_no_spool_file_after_the_next_sweep(tmp_path: Path) -> None:
    """A run killed while receiving a big message: the file carries its pid, so the store's sweep removes it."""
    with BlobStore(tmp_path) as store:
        child = subprocess.Popen(
            [sys.executable, "-c", "import sys, time\nfrom archiver.sources.spool import SpooledBody\n"
             "body = SpooledBody(sys.argv[1]); body.write(b'x' * 100000); print(body.path, flush=True)\n"
             "time.sleep(60)", str(store.temp_dir)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdout is not None
        left = Path(child.stdout.readline().strip())
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        assert left.exists() and left.parent == store.temp_dir
        assert store.sweep_temp_of_dead() == 1
        assert list(store.temp_dir.iterdir()) == []
