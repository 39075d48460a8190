"""Export archived mail to files other mail programs read: mbox, Maildir, or a tree of .eml files.

Library API::

    export(archive, scope, fmt, out_dir, progress=None) -> ExportReport
        fmt: "mbox" | "maildir" | "eml"; scope: :class:`archiver.scope.Scope` (messages, folders,
        account, as of a date or run).  ``out_dir`` must be missing or empty.
        ExportReport(format, root, folders: [FolderExport(folder, path, messages, bytes)], failures, seconds); .ok

Layouts (the folder path is the archived folder name split on its own hierarchy delimiter):

* ``mbox``: one file per folder, ``<out>/<part>/<part>.mbox``, mboxrd: each message starts with
  ``From MAILER-DAEMON <INTERNALDATE in UTC, asctime>`` (:func:`archiver.files.formats.from_line`), a body line matching
  ``^>*From `` gets one more ``>``, a message not ending in a newline gets one, and a blank line
  separates messages.  Reading back undoes exactly that; the one newline added to a message that
  had none (Dovecot keeps such messages as sent) is told apart by the manifest's blob id, so
  ``archiver import`` gives every message back byte for byte.
* ``maildir``: Maildir++ (what Dovecot, Courier, mutt, notmuch and Python's ``mailbox`` read):
  INBOX is ``<out>/cur``, folder ``a/b`` is ``<out>/.a.b/cur`` (components modified-UTF-7 encoded,
  a ``.`` inside a component becomes ``_``, an empty one ``_``; at most 100 bytes, a longer name
  cut with a hash of the whole: see :func:`archiver.names.maildir_dirname`).  Messages go to ``cur/`` named
  ``<time>.<placement>_<blob12>.archiver,S=<size>:2,<flags>``; flags as Maildir letters
  (D F P R S T; keywords as a-z letters listed in ``dovecot-keywords``), file mtime = INTERNALDATE.
* ``eml``: ``<out>/<part>/<part>/<YYYYMMDD-HHMMSS> <subject>.eml``, exact bytes, mtime = INTERNALDATE.
  Every path component is safe on Windows, macOS and Linux: no control characters or ``<>:"/\\|?*``,
  no reserved device names (CON, NUL, COM1…), no trailing dot or space, NFC, at most 100 UTF-8
  bytes; names that collide (case-insensitively) get ``~2``, ``~3``…

Where a message has no INTERNALDATE (POP3 gives none) its Date header stands in for From lines,
file names and mtimes; the manifest still records the INTERNALDATE as archived (empty).

Every format also gets ``MANIFEST.tsv`` (path, ordinal in the file, blob id, folder, flags,
INTERNALDATE with its offset), which ``archiver import`` reads to bring flags and dates back.
Bytes are streamed from the store (constant memory) and their sha256 is checked on the way; a message
whose blob fails the check is left out and reported.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from archiver.archive import Archive
from archiver.errors import ArchiverError, IntegrityError, RestoreError
from archiver.files.formats import (
    FORMATS,
    MANIFEST,
    ManifestEntry,
    MboxrdEscaper,
    from_line,
    maildir_info,
    write_maildir_keywords,
    write_manifest_header,
    write_manifest_line,
)
from archiver.names import maildir_dirname, safe_component, split_folder, unique_name
from archiver.progress import Progress
from archiver.scope import Item, Scope, select_items

_CHUNK = 1 << 20


@dataclass
class FolderExport:
    folder: str
    path: str
    messages: int = 0
    bytes: int = 0


@dataclass
class ExportReport:
    format: str
    root: str
    folders: list[FolderExport] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def messages(self) -> int:
        return sum(f.messages for f in self.folders)


def _epoch(item: Item) -> float:
    """The arrival time for file dates and names: INTERNALDATE, else the Date header (POP3), else 0."""
    return datetime.fromisoformat(item.arrival).timestamp() if item.arrival else 0.0


# -- writers --------------------------------------------------------------------------------------
class _Tree:
    """Safe, collision-free directories for folder paths under a root."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dirs: dict[tuple[str, ...], Path] = {(): root}
        self._taken: dict[Path, set[str]] = {}

    def taken(self, directory: Path) -> set[str]:
        return self._taken.setdefault(directory, set())

    def directory(self, parts: tuple[str, ...]) -> Path:
        if parts not in self._dirs:
            parent = self.directory(parts[:-1])
            path = parent / unique_name(self.taken(parent), safe_component(parts[-1]))
            path.mkdir(parents=True, exist_ok=True)
            self._dirs[parts] = path
        return self._dirs[parts]


class Exporter:
    def __init__(self, archive: Archive, fmt: str, root: Path, report: ExportReport) -> None:
        self.archive, self.fmt, self.root, self.report = archive, fmt, root, report
        self.tree = _Tree(root)
        if fmt == "maildir":  # the root is the INBOX maildir, even when INBOX is not exported
            for sub in ("cur", "new", "tmp"):
                (root / sub).mkdir(exist_ok=True)
        self.manifest = (root / MANIFEST).open("w", encoding="utf-8", newline="\n")
        write_manifest_header(self.manifest)

    def close(self) -> None:
        self.manifest.close()

    def _record(self, path: Path, ordinal: int, item: Item) -> None:
        entry = ManifestEntry(item.folder, item.flags, item.internaldate, item.blob_id)
        write_manifest_line(self.manifest, str(path.relative_to(self.root)), ordinal, entry)

    def _stream(self, item: Item, write: Callable[[bytes], object]) -> None:
        """Copy a blob's bytes through ``write``, checking its sha256 (raises IntegrityError)."""
        digest = hashlib.sha256()
        with self.archive.store.open(item.blob_id) as reader:
            while chunk := reader.read(_CHUNK):
                digest.update(chunk)
                write(chunk)
        if digest.hexdigest() != item.blob_id:
            raise IntegrityError(f"blob {item.blob_id} does not match its hash")

    def _fail(self, item: Item, exc: Exception) -> None:
        self.report.failures.append(
            f"{item.folder}: message {item.blob_id[:12]} (placement {item.placement_id}): {exc}"
        )

    def folder(self, folder: str, delimiter: str | None, items: list[Item] | itertools.groupby) -> None:
        parts = tuple(split_folder(folder, delimiter))
        getattr(self, f"_{self.fmt}")(folder, parts, items)

    def _mbox(self, folder: str, parts: tuple[str, ...], items) -> None:
        directory = self.tree.directory(parts[:-1])
        path = directory / unique_name(self.tree.taken(directory), safe_component(parts[-1]), ".mbox")
        result = FolderExport(folder, str(path))
        self.report.folders.append(result)
        partial = path.with_name(path.name + ".part")
        try:
            with partial.open("wb") as out:
                for item in items:
                    start = out.tell()
                    try:
                        out.write(from_line(item.arrival))
                        escaper = MboxrdEscaper(out.write)
                        self._stream(item, escaper.feed)
                        escaper.close()
                    except (ArchiverError, OSError) as exc:
                        out.seek(start)
                        out.truncate()
                        self._fail(item, exc)
                        continue
                    result.messages += 1
                    result.bytes += item.size
                    self._record(path, result.messages, item)
            partial.replace(path)
        except BaseException:  # whatever stops the folder (a bug, a cancel, Ctrl-C): no .part left behind
            partial.unlink(missing_ok=True)
            raise

    def _eml(self, folder: str, parts: tuple[str, ...], items) -> None:
        directory = self.tree.directory(parts)
        result = FolderExport(folder, str(directory))
        self.report.folders.append(result)
        taken = self.tree.taken(directory)
        for item in items:
            stamp = datetime.fromisoformat(item.arrival).strftime("%Y%m%d-%H%M%S") if item.arrival else "undated"
            name = safe_component(f"{stamp} {item.subject or ''}".strip(), 96)
            path = directory / unique_name(taken, name, ".eml")
            self._write_file(path, path.with_name(path.name + ".part"), item, result)

    def _maildir(self, folder: str, parts: tuple[str, ...], items) -> None:
        if parts == ("INBOX",):
            directory = self.root
        else:
            directory = self.root / unique_name(self.tree.taken(self.root), maildir_dirname(parts))
        for sub in ("cur", "new", "tmp"):
            (directory / sub).mkdir(parents=True, exist_ok=True)
        if directory != self.root:
            (directory / "maildirfolder").touch()
        result = FolderExport(folder, str(directory))
        self.report.folders.append(result)
        keywords: dict[str, str] = {}

        def letter(keyword: str) -> str | None:
            if keyword not in keywords and len(keywords) < 26:
                keywords[keyword] = chr(ord("a") + len(keywords))
            return keywords.get(keyword)

        for item in items:
            stamp = int(_epoch(item))
            base = f"{stamp}.{item.placement_id}_{item.blob_id[:12]}.archiver,S={item.size}"
            path = directory / "cur" / (base + maildir_info(item.flags, letter))
            self._write_file(path, directory / "tmp" / base, item, result)
        write_maildir_keywords(directory, keywords)

    def _write_file(self, path: Path, temp: Path, item: Item, result: FolderExport) -> None:
        try:
            with temp.open("wb") as out:
                self._stream(item, out.write)
            if item.arrival:
                os.utime(temp, (_epoch(item), _epoch(item)))
            temp.replace(path)
        except BaseException as exc:  # no temp file left behind, whatever the failure
            temp.unlink(missing_ok=True)
            if not isinstance(exc, ArchiverError | OSError):
                raise
            self._fail(item, exc)
            return
        result.messages += 1
        result.bytes += item.size
        self._record(path, 0, item)


def export(archive: Archive, scope: Scope, fmt: str, out_dir: Path, progress: Progress | None = None) -> ExportReport:
    """Write the scope's messages under ``out_dir`` in ``fmt``; per-message problems land in the report."""
    if fmt not in FORMATS:
        raise RestoreError(f"unknown export format {fmt!r} (choose one of: {', '.join(FORMATS)})")
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise RestoreError(f"{out_dir} exists and is not an empty directory: choose a new one")
    _, _, items = select_items(archive.catalog, scope)
    progress = progress or Progress()
    started = time.monotonic()
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ExportReport(fmt, str(out_dir))
    exporter = Exporter(archive, fmt, out_dir, report)
    try:
        for (folder, delimiter), group in itertools.groupby(items, key=lambda i: (i.folder, i.delimiter)):
            progress.folder(folder, 0, 0)
            exporter.folder(folder, delimiter, _counting(group, progress))
    finally:
        exporter.close()
        report.seconds = time.monotonic() - started
    return report


def _counting(items, progress: Progress):
    for item in items:
        yield item
        progress.advance(1, item.size)
