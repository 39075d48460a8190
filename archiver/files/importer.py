"""Import mbox files, Maildirs and .eml trees into a ``protocol = "local"`` account.

Old archives (a provider's takeout mbox, a Maildir from a retired server, a folder of .eml files)
join the same blob store, catalog and search index as backed-up mail, deduplicated by content: a
message already archived from IMAP adds a placement, never a second blob.

Library API::

    import_path(archive, account, source, fmt=None, folder=None) -> ImportReport
        account: the AccountConfig of a "local" account; source: a file or directory;
        fmt: "mbox" | "maildir" | "eml" | None (detected); folder: parent folder for what is imported.
        ImportReport(account, run_id, status, messages, placements_new, blobs_new, bytes, folders, problems)

Each import is one catalog run of the account (``archiver status`` shows it).  Placement identity:
``uidvalidity`` is 1 and ``uid`` is text naming the message inside the source, stable across
re-imports of the same files: ``<file>#<n>`` (n-th message of an mbox), the Maildir unique name, or
the .eml path relative to the source.  Importing the same source again therefore adds nothing, and
a second, different source into the same folder never overwrites the first one's placements.

Flags and INTERNALDATE come from an ``archiver export`` MANIFEST.tsv when one is present (exact,
offset included, the original folder names, and for an mbox whether a message had a final newline:
the blob id tells, see :func:`archiver.files.formats.original_bytes`); otherwise from the Maildir file name (+
``dovecot-keywords``) and file mtime, the mbox ``From `` line date and ``Status``/``X-Status``
headers, or the .eml file's mtime.  Folder names: an mbox file's path without ``.mbox``; Maildir++
``.a.b`` (modified UTF-7) or nested directories; an .eml file's directory (root files: INBOX).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from archiver.archive import Archive
from archiver.catalog import NewPlacement
from archiver.config import AccountConfig
from archiver.errors import ArchiverError, RestoreError
from archiver.files.formats import (
    FORMATS,
    maildir_folder,
    maildir_name_flags,
    original_bytes,
    read_maildir_keywords,
    read_manifest,
    read_mbox,
    status_flags,
)
from archiver.mail.headers import summarize_headers

log = logging.getLogger("archiver.importer")

UIDVALIDITY = 1
BATCH_MESSAGES = 500
BATCH_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Incoming:
    folder: str
    uid: str
    raw: bytes
    flags: tuple[str, ...]
    internaldate: str | None


@dataclass
class ImportReport:
    account: str
    run_id: int | None = None
    status: str = "running"
    messages: int = 0
    placements_new: int = 0
    blobs_new: int = 0
    bytes: int = 0
    folders: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# -- reading sources (pure file reading, no catalog; the formats are archiver.files.formats) -----
def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime).astimezone().isoformat()


def read_source(source: Path, fmt: str, folder: str | None) -> Iterator[Incoming]:
    """Every message of the source, folder by folder."""
    root = source if source.is_dir() else source.parent
    manifest = read_manifest(root)

    def name(default: str, key: str) -> str:
        base = manifest[key].folder if key in manifest else default
        if folder:
            return folder if base == "INBOX" else f"{folder}/{base}"
        return base

    def meta(key: str, flags: tuple[str, ...], when: str | None) -> tuple[tuple[str, ...], str | None]:
        return (manifest[key].flags, manifest[key].internaldate) if key in manifest else (flags, when)

    if fmt == "mbox":
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*.mbox") if p.is_file())
        for path in files:
            rel = path.relative_to(root).as_posix()
            default = "INBOX" if (folder and source.is_file()) else rel.removesuffix(".mbox")
            for key, raw, date, _n in read_mbox(path, rel):
                if key in manifest:
                    raw = original_bytes(raw, manifest[key].blob_id)
                flags, when = meta(key, status_flags(raw), date)
                yield Incoming(name(default, key), key, raw, flags, when)
    elif fmt == "maildir":
        for cur in sorted(p for p in source.rglob("cur") if p.is_dir()):
            directory = cur.parent
            keywords = read_maildir_keywords(directory)
            default = maildir_folder(directory.relative_to(source))
            for path in sorted(list(cur.iterdir()) + list((directory / "new").glob("*"))):
                if not path.is_file():
                    continue
                unique, flags_in_name = maildir_name_flags(path.name, keywords)
                key = path.relative_to(root).as_posix()
                flags, when = meta(key, flags_in_name, _mtime(path))
                yield Incoming(name(default, key), unique, path.read_bytes(), flags, when)
    else:
        files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.suffix.lower() == ".eml")
        for path in files:
            key = path.relative_to(root).as_posix()
            parent = path.parent.relative_to(root)
            default = "INBOX" if parent == Path(".") else parent.as_posix()
            flags, when = meta(key, (), _mtime(path))
            yield Incoming(name(default, key), key, path.read_bytes(), flags, when)


def detect_format(source: Path) -> str:
    if source.is_file():
        with source.open("rb") as handle:
            return "mbox" if handle.read(5) == b"From " else "eml"
    if not source.is_dir():
        raise RestoreError(f"{source}: no such file or directory")
    if (source / "cur").is_dir() or any(p.name == "cur" for p in source.glob("*/cur")):
        return "maildir"
    if next(source.rglob("*.mbox"), None) is not None:
        return "mbox"
    return "eml"


# -- writing into the archive ----------------------------------------------------------------------
def import_path(
    archive: Archive, account: AccountConfig, source: Path, fmt: str | None = None, folder: str | None = None
) -> ImportReport:
    """Import a file or tree into a local account as one run; never half-records a batch."""
    if account.protocol != "local":
        raise RestoreError(f'{account.name}: import needs an account with protocol = "local" (is {account.protocol!r})')
    source = Path(source)
    fmt = fmt or detect_format(source)
    if fmt not in FORMATS:
        raise RestoreError(f"unknown import format {fmt!r} (choose one of: {', '.join(FORMATS)})")
    report = ImportReport(account.name)
    started = time.monotonic()
    catalog = archive.catalog
    with archive.account_lock(account.name):
        account_id = catalog.ensure_account(account.name, "local")
        report.run_id = run_id = catalog.start_run(account_id)
        folder_ids: dict[str, int] = {}
        known: dict[str, set[int | str]] = {}  # uids already in each folder: a re-import adds nothing
        batch: list[Incoming] = []

        def flush() -> None:
            if not batch:
                return
            stored = archive.store.put_batch([m.raw for m in batch])  # durable before the catalog
            by_folder: dict[str, list[NewPlacement]] = {}
            for message, blob in zip(batch, stored, strict=True):
                placement = NewPlacement(
                    message.uid,
                    blob.blob_id,
                    message.flags,
                    message.internaldate,
                    blob.size,
                    blob.stored_size,
                    summarize_headers(message.raw),
                )
                by_folder.setdefault(message.folder, []).append(placement)
            for name, placements in by_folder.items():
                if name not in folder_ids:
                    folder_ids[name] = catalog.ensure_folder(account_id, name, "/", None, run_id).id
                    known[name] = catalog.present_uids(folder_ids[name], UIDVALIDITY)
                placements = [p for p in placements if p.uid not in known[name]]  # imported before
                known[name].update(p.uid for p in placements)
                if not placements:
                    continue
                totals = catalog.add_placements(run_id, folder_ids[name], UIDVALIDITY, placements)
                report.placements_new += totals.messages_new
                report.blobs_new += totals.blobs_new
            batch.clear()

        size = 0
        try:
            for message in read_source(source, fmt, folder):
                batch.append(message)
                size += len(message.raw)
                report.messages += 1
                report.bytes += len(message.raw)
                report.folders[message.folder] = report.folders.get(message.folder, 0) + 1
                if len(batch) >= BATCH_MESSAGES or size >= BATCH_BYTES:
                    flush()
                    size = 0
            flush()
            report.status = "ok"
        except (ArchiverError, OSError) as exc:
            message = str(exc) if isinstance(exc, ArchiverError) else f"{getattr(exc, 'filename', source)}: {exc}"
            report.problems.append(message)
            catalog.record_error(run_id, None, message)
            report.status = "failed"
        finally:
            catalog.finish_run(run_id, report.status, len(report.folders), 0, 0 if report.ok else 1)
    _update_search_index(archive, run_id)
    report.seconds = time.monotonic() - started
    return report


def _update_search_index(archive: Archive, run_id: int) -> None:
    """Index what the import added (blob → catalog → index); a failure is logged and recorded on the run."""
    try:
        from archiver.index import update_index  # here, not at the top: Whoosh loads only once an import has run

        update_index(archive)
    except Exception as exc:
        log.error("search index not updated (the next run catches up): %s", exc)
        archive.catalog.record_error(run_id, None, f"search index not updated: {exc}")
