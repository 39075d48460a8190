"""The daemon bounds a backup child by max_run_time plus grace: a hung child cannot hold the account's slot for ever."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from archiver.config import Config, config_from_toml_text
from archiver.daemon.child import STOP_GRACE_SECONDS, SubprocessRunner

HANG = """
import subprocess, sys, time
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
open(sys.argv[1], "w").write(str(helper.pid))
time.sleep(120)
"""


class HangingRunner(SubprocessRunner):
    """The real runner (process group, pipes, timeout), with a child that hangs and leaves a helper behind."""

    def __init__(self, pid_file: Path) -> None:
        super().__init__(run_grace=1.0)
        self.pid_file = pid_file

    def command(self, config: Config, name: str) -> list[str]:
        return [sys.executable, "-c", HANG, str(self.pid_file)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie (killed, not yet reaped by init) is dead too
        return stat.read().split(") ")[1][0] != "Z"


def test_a_hung_backup_child_is_stopped_after_max_run_time_plus_grace(tmp_path, open_archive):
    text = f"""
[archive]
path = {json.dumps(str(tmp_path / "archive"))}
max_run_time = 1

[[accounts]]
name = "acct"
protocol = "imap"
host = "127.0.0.1"
port = 9
security = "none"
username = "u"
password = "p"
"""
    config = config_from_toml_text(text, tmp_path / "archiver.toml")
    with open_archive(config) as archive:  # the run row the child would have opened
        run_id = archive.catalog.start_run(archive.catalog.ensure_account("acct", "imap"))
    pid_file = tmp_path / "helper.pid"

    started = time.monotonic()
    outcome = HangingRunner(pid_file)(text, config, "acct")
    seconds = time.monotonic() - started

    assert seconds < 1 + 1 + STOP_GRACE_SECONDS + 2
    assert outcome.status == "failed"
    (problem,) = outcome.problems
    assert "ran past max_run_time (1s)" in problem and "was stopped" in problem
    assert not _alive(int(pid_file.read_text()))  # the whole process group went, not just the child
    with open_archive(config) as archive:
        run = archive.catalog.run(run_id)
        errors = [
            r[0] for r in archive.catalog.db.execute("SELECT message FROM run_errors WHERE run_id = ?", (run_id,))
        ]
    assert run["status"] == "failed"
    assert errors == [problem]
