"""The README's first command: the demo backs up a throwaway Dovecot, verifies and searches the result."""

from __future__ import annotations

import shutil

import pytest

from archiver.config import load_config
from archiver.verify import verify_archive

pytestmark = pytest.mark.integration


def test_demo_runs_the_main_job_end_to_end(tmp_path, cli, open_archive):
    if shutil.which("dovecot") is None:
        pytest.skip("Dovecot is not installed")
    result = cli(None, "demo", "--dir", str(tmp_path / "demo"), "--messages", "80", "--seed", "3")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("demo: first backup: ok, 80 new message(s)") for line in lines), result.stdout
    assert any(line.startswith("demo: second backup (nothing changed): ok, 0 new message(s)") for line in lines)
    assert any(line.startswith("demo: verify:") and line.endswith("OK") for line in lines)
    assert any(line.startswith("demo: search 'has:attachment budget':") for line in lines)
    config = load_config(tmp_path / "demo" / "archiver.toml")
    with open_archive(config) as archive:
        assert verify_archive(archive).ok
        placements = archive.catalog.db.execute("SELECT COUNT(*) FROM placements").fetchone()[0]
    assert placements == 80
    status = cli(tmp_path / "demo" / "archiver.toml", "status", "--json")
    assert status.returncode == 0, status.stderr
