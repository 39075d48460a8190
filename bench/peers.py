"""The local mail indexers the search index is compared with: ``mu`` (maildir-utils) and ``notmuch``.

Each indexes a Maildir (the one ``mbsync`` pulled, so all three index the same mail) into a
database of its own under the bench's work directory, and answers queries as a process, the way
a user runs it.  Both are installed by ``scripts/setup.sh``; a bench leaves out the one missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from measure import run_child


class Mu:
    """``mu`` with its own ``--muhome``: ``mu init`` once per build, then ``mu index`` (the timed part)."""

    name = "mu"
    column = 1  # its query in index_cost.QUERIES

    def __init__(self, home: Path, maildir: Path) -> None:
        self.home, self.maildir = home, maildir

    @staticmethod
    def installed() -> bool:
        return shutil.which("mu") is not None

    def build(self, peaks: dict | None = None) -> tuple[float, int] | None:
        """(wall seconds, peak RSS KB) of indexing the whole Maildir from an empty database."""
        shutil.rmtree(self.home, ignore_errors=True)
        init = ["mu", "init", f"--muhome={self.home}", f"--maildir={self.maildir}", "--my-address=bench@example.org"]
        subprocess.run(init, check=True, capture_output=True)
        elapsed, rss, result = run_child(["mu", "index", f"--muhome={self.home}", "--quiet"], peaks=peaks)
        return (elapsed, rss) if result.returncode == 0 else None

    def search(self, query: str, limit: int) -> list[str]:
        """The command of a search showing the first ``limit`` matches (newest first, as ``mu find`` lists)."""
        return ["mu", "find", f"--muhome={self.home}", "--skip-dups", f"--maxnum={limit}", query]

    def count(self, query: str) -> int:
        """Messages matching ``query``."""
        found = subprocess.run(
            ["mu", "find", f"--muhome={self.home}", "--skip-dups", "--fields=i", query], capture_output=True, text=True
        )
        return len(found.stdout.splitlines())  # no match: exit code 4 and no output


class Notmuch:
    """``notmuch`` with a config of its own: the database beside the Maildir, ``notmuch new`` builds it."""

    name = "notmuch"
    column = 2

    def __init__(self, database: Path, maildir: Path) -> None:
        self.database, self.maildir = database, maildir
        self.config = database.parent / f"{database.name}.config"

    @staticmethod
    def installed() -> bool:
        return shutil.which("notmuch") is not None

    def build(self, peaks: dict | None = None) -> tuple[float, int] | None:
        """(wall seconds, peak RSS KB) of ``notmuch new`` over the whole Maildir into an empty database."""
        shutil.rmtree(self.database, ignore_errors=True)
        self.database.mkdir(parents=True)
        self.config.write_text(
            f"[database]\npath={self.database}\nmail_root={self.maildir}\n"
            "[user]\nname=Bench\nprimary_email=bench@example.org\n"
            "[new]\ntags=unread;inbox;\n[maildir]\nsynchronize_flags=false\n"
        )
        elapsed, rss, result = run_child(["notmuch", f"--config={self.config}", "new", "--quiet"], peaks=peaks)
        return (elapsed, rss) if result.returncode == 0 else None

    def search(self, query: str, limit: int) -> list[str]:
        """The command of ``notmuch search`` (its default output: one line per thread) for ``limit`` results."""
        return ["notmuch", f"--config={self.config}", "search", f"--limit={limit}", query]

    def count(self, query: str) -> int:
        """Messages matching ``query``."""
        found = subprocess.run(["notmuch", f"--config={self.config}", "count", query], capture_output=True, text=True)
        return int(found.stdout.strip() or 0)
