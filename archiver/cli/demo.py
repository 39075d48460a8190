"""``archiver demo``: the whole job on embedded defaults, against a throwaway Dovecot.

Starts a private Dovecot on loopback (random ports, self-signed certificate),
fills it with seeded sample mail, writes a config that points at it over
STARTTLS with certificate checking, backs it up twice (the second run shows the
no-change short-circuit), then prints status and verifies the archive.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import click

from archiver import index
from archiver.archive import Archive
from archiver.backup import run_backup
from archiver.cli._common import human_bytes
from archiver.config import load_config
from archiver.devtools.sample_mail import generate_mailbox
from archiver.devtools.sandbox import DovecotSandbox
from archiver.permissions import protect_new_files
from archiver.verify import verify_archive

DEMO_USER = "demo"


def write_demo_config(root: Path, sandbox: DovecotSandbox, password_file: Path) -> Path:
    """A config for the sandbox account; paths quoted as TOML basic strings."""
    text = f"""# Written by `archiver demo`.
[archive]
path = {json.dumps(str(root / "archive"))}

[[accounts]]
name = "demo"
protocol = "imap"
host = "127.0.0.1"
port = {sandbox.imap_port}
security = "starttls"
username = "{DEMO_USER}"
password_file = {json.dumps(str(password_file))}
tls_ca_file = {json.dumps(str(sandbox.ca_file))}
"""
    path = root / "archiver.toml"
    path.write_text(text)
    path.chmod(0o600)
    return path


DEMO_QUERY = "has:attachment budget"  # shows the index the backup just updated


@click.command()
@click.option(
    "--dir",
    "directory",
    default="./demo-archive",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where the demo's Dovecot, config and archive go.",
)
@click.option("--messages", default=500, show_default=True, help="How many sample messages to generate.")
@click.option("--seed", default=1, show_default=True)
def demo(directory: Path, messages: int, seed: int) -> None:
    """Back up a throwaway local Dovecot filled with sample mail, then show status and verify."""
    root = directory.resolve()
    root.mkdir(parents=True, exist_ok=True)
    password = "demo-" + os.urandom(6).hex()
    password_file = root / "demo.password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    with DovecotSandbox(root / "dovecot") as sandbox:
        sandbox.add_user(DEMO_USER, password)
        by_folder: dict[str, list] = defaultdict(list)
        for sample in generate_mailbox(messages, seed=seed):
            by_folder[sample.folder].append((sample.raw, sample.flags, sample.internaldate))
        for folder, items in by_folder.items():
            sandbox.append_many(DEMO_USER, folder, items)
        click.echo(
            f"demo: Dovecot on 127.0.0.1:{sandbox.imap_port} (STARTTLS) with {messages} sample messages "
            f"in {len(by_folder)} folders"
        )
        config_path = write_demo_config(root, sandbox, password_file)
        config = load_config(config_path)
        protect_new_files(config.archive.group_readable)  # after the sandbox: Dovecot's user reads its files
        account = config.accounts[0]
        with Archive(config.archive) as archive:
            for label in ("first backup", "second backup (nothing changed)"):
                report = run_backup(config, account, archive=archive)
                click.echo(
                    f"demo: {label}: {report.status}, {report.messages_new} new message(s), "
                    f"{human_bytes(report.bytes_fetched)} fetched, {human_bytes(report.bytes_stored)} stored, "
                    f"{report.seconds:.2f}s"
                )
                for problem in report.problems:
                    click.echo(f"demo: problem: {problem}", err=True)
            totals = archive.catalog.archive_totals()
            checked = verify_archive(archive)
            found = index.search(archive, DEMO_QUERY, accounts=index.ALL_ACCOUNTS)
        ratio = totals["stored_bytes"] / max(totals["raw_bytes"], 1)
        click.echo(
            f"demo: archive {config.archive.path}: {totals['blobs']} unique messages, "
            f"{human_bytes(totals['raw_bytes'])} raw -> {human_bytes(totals['stored_bytes'])} on disk "
            f"({ratio:.2f})"
        )
        click.echo(
            f"demo: verify: {checked.blobs_checked} blobs re-hashed, "
            f"{'OK' if checked.ok else 'PROBLEMS: ' + '; '.join(checked.problems)}"
        )
    click.echo(f"demo: search {DEMO_QUERY!r}: {found.total} message(s)")
    program = Path(sys.executable).with_name("archiver")
    program_text = str(program) if program.exists() else "archiver"
    click.echo(f"demo: Dovecot stopped. Explore the archive with: {program_text} --config {config_path} status")
    if not checked.ok or not report.ok:
        sys.exit(1)
