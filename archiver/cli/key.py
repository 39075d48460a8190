"""``archiver key``: make, check and rotate the key of an encrypted archive (docs/encryption.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from archiver.archive import fetch_key_file, make_layout
from archiver.cli._common import emit_json, json_option
from archiver.config import ArchiveConfig, PasswordSource
from archiver.errors import ArchiveKeyError, ConfigError
from archiver.permissions import private_modes
from archiver.store import BlobStore, open_store
from archiver.store.envelope import PLAIN, SealedEnvelope
from archiver.store.keys import (
    KEY_FILE_NAME,
    KeySecret,
    check_new_secret,
    create_key_file,
    generate_key_file,
    key_file_path,
    key_file_secret,
    passphrase_secret,
    read_key_file,
    rotate,
    secret_from_config,
    unlock,
)
from archiver.store.snapshots import SnapshotShelf

BACKUP_ADVICE = "keep a copy of it, and of the passphrase or key file, away from the archive: both are needed"


def _encrypted_settings(ctx: click.Context) -> ArchiveConfig:
    settings: ArchiveConfig = ctx.obj.config.archive
    if not settings.encryption:
        raise ConfigError(
            "[archive] encryption is off: set encryption = true and one of passphrase_file, passphrase_command, "
            "passphrase_env, passphrase or key_file (docs/encryption.md)"
        )
    return settings


@click.group()
def key() -> None:
    """Make, check and rotate the key of an encrypted archive ([archive] encryption = true)."""


@key.command("init")
@click.option(
    "--generate-key-file", is_flag=True, help="First write a new random key file where [archive] key_file points."
)
@click.pass_context
def init(ctx: click.Context, generate_key_file: bool) -> None:
    """Create keys.json for a new or empty archive; refused once the archive holds unencrypted blobs."""
    settings = _encrypted_settings(ctx)
    root = Path(settings.path)
    if read_key_file(root) is not None:
        raise ArchiveKeyError(f"{key_file_path(root)} exists already: this archive has its key (see key rotate)")
    if settings.store is not None:
        _check_bucket_is_new(settings)
    elif (root / "blobs").is_dir():
        with BlobStore(root, workers=1) as plain:
            if next(iter(plain.iter_ids()), None) is not None:
                raise ArchiveKeyError(
                    f"{root} already holds unencrypted blobs: encryption is chosen when an archive is made. "
                    "Make a new encrypted archive and back up into it (docs/encryption.md, 'An existing archive')"
                )
    if generate_key_file:
        if settings.key_file is None:
            raise ConfigError("--generate-key-file: [archive] key_file is not set")
        generate_key_file_at(settings.key_file)
    secret = secret_from_config(settings)
    check_new_secret(secret)  # all checked: only now is the archive directory made
    make_layout(settings)
    archive_key = create_key_file(root, secret, file_mode=private_modes(settings.group_readable)[1])
    click.echo(f"created {key_file_path(root)} (key {archive_key.key_id}, unlocked by {secret.origin})")
    _upload_key_file(settings, SealedEnvelope(archive_key))
    click.echo(f"{KEY_FILE_NAME}: {BACKUP_ADVICE}")


def _check_bucket_is_new(settings: ArchiveConfig) -> None:
    """``key init`` for an S3 store: refused when the bucket holds a key already or unencrypted blobs."""
    with open_store(settings, PLAIN, readonly=True) as store:
        if isinstance(store, SnapshotShelf) and store.read_key_file() is not None:
            raise ArchiveKeyError(
                f"{settings.store} already holds an encrypted archive's {KEY_FILE_NAME}: the next command fetches it "
                "(archiver key check), and its passphrase or key file opens it"
            )
        if next(iter(store.iter_ids()), None) is not None:
            raise ArchiveKeyError(
                f"{settings.store} already holds unencrypted blobs: encryption is chosen when an archive is made. "
                "Use a new prefix for the encrypted archive (docs/encryption.md, 'An existing archive')"
            )


def _upload_key_file(settings: ArchiveConfig, envelope: SealedEnvelope) -> None:
    """An S3 store gets a copy of ``keys.json`` at once (and with every snapshot): the bucket alone must be enough."""
    if settings.store is None:
        return
    with open_store(settings, envelope) as store:
        if isinstance(store, SnapshotShelf):
            store.put_key_file(key_file_path(Path(settings.path)).read_bytes())
            click.echo(f"copied {KEY_FILE_NAME} to {settings.store}")


def generate_key_file_at(path: Path) -> None:
    generate_key_file(path)
    click.echo(f"wrote a new key file {path} (owner-only)")


@key.command("check")
@json_option()
@click.pass_context
def check(ctx: click.Context, as_json: bool) -> None:
    """Check that the configured passphrase or key file opens the archive's key and its blobs."""
    settings = _encrypted_settings(ctx)
    root = Path(settings.path)
    if settings.store is not None and read_key_file(root) is None:
        make_layout(settings)
        fetch_key_file(settings)  # a new machine: the bucket's copy
    secret = secret_from_config(settings)
    archive_key = unlock(root, secret)
    data = read_key_file(root) or {}
    sampled = opened = 0
    with open_store(settings, SealedEnvelope(archive_key), readonly=True) as store:
        for blob_id in store.iter_ids():  # objects that do not open are logged and skipped by iter_ids
            sampled += 1
            opened += store.check(blob_id) is None
            if sampled == 3:
                break
    protection = data.get("protection", {})
    report = {
        "ok": opened == sampled,
        "key_id": archive_key.key_id,
        "unlocked_by": secret.origin,
        "protection": {k: v for k, v in protection.items() if k != "salt"},
        "created": data.get("created"),
        "rotated": data.get("rotated"),
        "blobs_sampled": sampled,
        "blobs_opened": opened,
    }
    if as_json:
        emit_json(report)
    else:
        kdf = protection.get("kdf", "?")
        if kdf == "argon2id":
            kdf += f" ({protection.get('memory_kib', 0) // 1024} MiB, {protection.get('iterations')} passes)"
        click.echo(f"key {archive_key.key_id}: unlocked by {secret.origin} through {kdf}")
        click.echo(f"created {report['created']}" + (f", rotated {report['rotated']}" if report["rotated"] else ""))
        click.echo(f"{opened} of {sampled} sampled blob(s) open and match their hash")
    if opened != sampled:
        sys.exit(1)


@key.command("rotate")
@click.option("--new-passphrase-file", type=click.Path(path_type=Path), help="Read the new passphrase from PATH.")
@click.option("--new-passphrase-env", metavar="VAR", help="Read the new passphrase from environment variable VAR.")
@click.option("--new-key-file", type=click.Path(path_type=Path), help="Protect the key with the key file PATH.")
@click.option("--generate-key-file", is_flag=True, help="With --new-key-file: write a new random key file there.")
@click.pass_context
def rotate_command(
    ctx: click.Context,
    new_passphrase_file: Path | None,
    new_passphrase_env: str | None,
    new_key_file: Path | None,
    generate_key_file: bool,
) -> None:
    """Re-wrap the archive's key under a new passphrase or key file; the old one stops working at once.

    No blob is rewritten.  Without an option the new passphrase is asked for twice on the terminal.
    Afterwards point [archive] at the new passphrase or key file before the next run.
    """
    settings = _encrypted_settings(ctx)
    root = Path(settings.path)
    given = [o for o in (new_passphrase_file, new_passphrase_env, new_key_file) if o is not None]
    if len(given) > 1:
        raise ConfigError("give at most one of --new-passphrase-file, --new-passphrase-env, --new-key-file")
    if generate_key_file and new_key_file is None:
        raise ConfigError("--generate-key-file needs --new-key-file PATH")
    old = secret_from_config(settings)
    unlock(root, old)  # a wrong current passphrase is reported before the new one is asked for or written
    if generate_key_file and new_key_file is not None:
        generate_key_file_at(new_key_file)
    new = _new_secret(new_passphrase_file, new_passphrase_env, new_key_file)
    check_new_secret(new)
    archive_key = rotate(root, old, new, file_mode=private_modes(settings.group_readable)[1])
    click.echo(f"{key_file_path(root)}: key {archive_key.key_id} is now unlocked by {new.origin} only")
    _upload_key_file(settings, SealedEnvelope(archive_key))
    click.echo("now point [archive] at it (passphrase_file, passphrase_env, … or key_file) before the next run")
    click.echo(f"{KEY_FILE_NAME} changed: {BACKUP_ADVICE}")


def _new_secret(passphrase_file: Path | None, passphrase_env: str | None, key_file: Path | None) -> KeySecret:
    if key_file is not None:
        return key_file_secret(key_file, "--new-key-file")
    if passphrase_file is not None:
        source = PasswordSource("file", file=passphrase_file, key="--new-passphrase-file")
        return passphrase_secret(source.resolve(), f"passphrase_file {passphrase_file}")
    if passphrase_env is not None:
        source = PasswordSource("env", env=passphrase_env, key="--new-passphrase-env")
        return passphrase_secret(source.resolve(), f"passphrase_env {passphrase_env}")
    if not sys.stdin.isatty():
        raise ConfigError("no new passphrase: give --new-passphrase-file, --new-passphrase-env or --new-key-file")
    typed = click.prompt("new passphrase", hide_input=True, confirmation_prompt=True)
    return passphrase_secret(typed, "the passphrase typed")
