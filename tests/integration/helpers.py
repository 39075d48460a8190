"""Shared helpers for integration tests: configs pointing at the Dovecot fixture, CLI runs."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from archiver.config import Config, config_from_toml_text
from archiver.devtools.sample_mail import generate_mailbox


def fill_mailbox(dovecot, user, count: int, seed: int = 7, **options: object) -> dict[str, list[int]]:
    """Append ``count`` generated messages (``generate_mailbox`` options) to the user's mailbox: folder -> UIDs."""
    by_folder: dict[str, list] = defaultdict(list)
    for sample in generate_mailbox(count, seed=seed, **options):
        by_folder[sample.folder].append((sample.raw, sample.flags, sample.internaldate))
    return {folder: dovecot.append_many(user.name, folder, items) for folder, items in by_folder.items()}


def account_toml(
    dovecot,
    user,
    name: str = "acct",
    security: str = "starttls",
    extra: str = "",
    password: str | None = None,
    protocol: str = "imap",
) -> str:
    """An ``[[accounts]]`` table for the Dovecot fixture (IMAP or POP3; plain+STARTTLS/STLS port or implicit TLS)."""
    ports = {"imap": (dovecot.imap_port, dovecot.imaps_port), "pop3": (dovecot.pop3_port, dovecot.pop3s_port)}
    plain, tls = ports[protocol]
    port = {"starttls": plain, "none": plain, "tls": tls}[security]
    return f"""
[[accounts]]
name = "{name}"
protocol = "{protocol}"
host = "127.0.0.1"
port = {port}
security = "{security}"
username = "{user.name}"
password = {json.dumps(password if password is not None else user.password)}
tls_ca_file = {json.dumps(str(dovecot.ca_file))}
timeout = 20
{extra}
"""


def write_config(tmp_path: Path, accounts: str, archive_extra: str = "") -> Path:
    text = f"[archive]\npath = {json.dumps(str(tmp_path / 'archive'))}\n{archive_extra}\n{accounts}"
    path = tmp_path / "archiver.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def load(path: Path) -> Config:
    return config_from_toml_text(path.read_text(), path)


def run_cli(
    config_path: Path | None, *args: str, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "archiver"]
    if config_path is not None:
        command += ["--config", str(config_path)]
    return subprocess.run(
        command + list(args), capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


def server_hashes(dovecot, user, folders) -> dict[tuple[str, int], str]:
    """sha256 of every message on the server, by (folder, uid)."""
    hashes = {}
    for folder in folders:
        for uid, (raw, _flags, _date) in dovecot.fetch_all(user.name, user.password, folder).items():
            hashes[(folder, uid)] = hashlib.sha256(raw).hexdigest()
    return hashes


def archived_hashes(catalog, account: str = "acct") -> dict[tuple[str, int], str]:
    """blob id of every present placement, by (folder, uid)."""
    rows = catalog.db.execute(
        "SELECT f.name, p.uid, p.blob_id FROM placements p JOIN folders f ON f.id = p.folder_id "
        "JOIN accounts a ON a.id = f.account_id WHERE a.name = ? AND p.gone_since_run IS NULL",
        (account,),
    )
    return {(row[0], row[1]): row[2] for row in rows}
