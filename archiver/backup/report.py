"""What one backup run of one account did, in one shape for everyone who shows it.

The CLI (``archiver backup`` and its ``--json``), the daemon (the child's result
line) and the web UI (a job's page) all read :meth:`RunReport.as_dict`, so a
run reads the same wherever it is looked at, and a key added here reaches all three.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class FolderOutcome:
    """One folder's part of a run; ``error`` is one user-facing line when the folder is not complete."""

    name: str
    unchanged: bool = False
    new: int = 0
    gone: int = 0
    flags_changed: int = 0
    adopted: int = 0  # new UIDs recognised as archived messages (no body fetched): remap.py
    stub_bytes: int = 0  # header bytes fetched to recognise them (Message-ID lines; whole headers without one)
    error: str | None = None
    # Something the user should know that is not a failure (a POP3 server without UIDL costs a round trip
    # per message and run).
    note: str | None = None


@dataclass
class RunReport:
    """What a run did; ``problems`` holds one user-facing line per failure."""

    account: str
    run_id: int | None = None
    status: str = "running"
    folders: list[FolderOutcome] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    messages_new: int = 0
    blobs_new: int = 0
    bytes_fetched: int = 0
    bytes_stored: int = 0
    seconds: float = 0.0
    # The run stopped because the archive could not take writes (disk full, catalog failing): the index
    # update, which writes to the same disk, is skipped rather than reported as a second failure.
    archive_failed: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready plain data: an object of ``archiver backup --json`` (which adds the index keys)."""
        return {
            "account": self.account,
            "run": self.run_id,
            "status": self.status,
            "messages_new": self.messages_new,
            "blobs_new": self.blobs_new,
            "bytes_fetched": self.bytes_fetched,
            "bytes_stored": self.bytes_stored,
            "seconds": round(self.seconds, 3),
            "problems": list(self.problems),
            "folders": [asdict(folder) for folder in self.folders],
            "archive_failed": self.archive_failed,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        """The report back from :meth:`as_dict`'s data (the daemon reads its child's line): unknown keys are
        ignored and every value is converted, so a line from an older or newer child still reads."""
        folders = [
            FolderOutcome(**{k: v for k, v in folder.items() if k in _FOLDER_FIELDS})
            for folder in data.get("folders", ())
            if isinstance(folder, dict)
        ]
        return cls(
            account=str(data.get("account", "")),
            run_id=data.get("run"),
            status=str(data.get("status", "failed")),
            folders=folders,
            problems=[str(p) for p in data.get("problems", ())],
            messages_new=int(data.get("messages_new", 0)),
            blobs_new=int(data.get("blobs_new", 0)),
            bytes_fetched=int(data.get("bytes_fetched", 0)),
            bytes_stored=int(data.get("bytes_stored", 0)),
            seconds=float(data.get("seconds", 0.0)),
            archive_failed=bool(data.get("archive_failed", False)),
        )


_FOLDER_FIELDS = {f.name for f in fields(FolderOutcome)}

__all__ = ["FolderOutcome", "RunReport"]
