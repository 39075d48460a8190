"""Who may read the archive: owner only, unless the operator grants a group on purpose.

Why: the catalog holds every subject and address and the index every word of
every message, so an archive made under the usual umask 022 (directories 0755,
files 0644) let any local account read the mail.  Per-file modes cannot cover
what other libraries create (SQLite's ``-wal``/``-shm``, Whoosh segments and
locks), so the ``archiver`` command narrows the process umask once, as soon as
it knows the config, and every file any layer creates afterwards is owner-only.
The archive's top level is also given :func:`private_modes` explicitly, so an
archive made by a program embedding the library (its own umask) is private too.

``[archive] group_readable = true`` keeps group read access (umask 027) for a
backup operator group, and stops :func:`warn_if_exposed` from warning about it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("archiver.permissions")

PRIVATE_UMASK = 0o077  # directories 0700, files 0600
GROUP_UMASK = 0o027  # directories 0750, files 0640: for a backup operator group, on purpose

_warned: set[Path] = set()


def private_modes(group_readable: bool = False) -> tuple[int, int]:
    """The (directory, file) modes the umask of :func:`protect_new_files` gives: 0700/0600 or 0750/0640."""
    umask = GROUP_UMASK if group_readable else PRIVATE_UMASK
    return 0o777 & ~umask, 0o666 & ~umask


def protect_new_files(group_readable: bool = False) -> None:
    """Set the process umask so every file created from now on is owner-only (or also group-readable).

    Process-wide on purpose: it reaches the files of SQLite, Whoosh and export
    alike, and child processes inherit it.  Called by the CLI once the config is
    loaded, not by the library, so a program embedding archiver keeps its own.
    """
    os.umask(GROUP_UMASK if group_readable else PRIVATE_UMASK)


def exposure(root: Path, group_readable: bool = False) -> str | None:
    """Describe the first top-level archive entry others (or, unless allowed, the group) can access, or None.

    Only the archive directory and its direct entries are looked at: without
    search (x) permission on a directory nothing below it is reachable, so a
    private top level keeps every blob and index segment private.
    """
    mask = 0o007 if group_readable else 0o077
    try:
        entries = [root, *sorted(root.iterdir())]
    except OSError:
        return None  # not there yet, or not ours to list: opening it reports what matters
    for entry in entries:
        try:
            mode = entry.lstat().st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode) or not mode & mask:
            continue
        who = "others" if mode & 0o007 else "its group"
        return f"{entry} is accessible by {who} (mode {stat.S_IMODE(mode):04o})"
    return None


def warn_if_exposed(root: Path, group_readable: bool = False) -> None:
    """Log one warning per process and archive when mail in it is readable by other local users.

    A warning, not a refusal (as for a readable config): a backup beats none,
    and the operator may have a reason; the message says how to fix it.
    """
    root = Path(root)
    if root in _warned:
        return
    problem = exposure(root, group_readable)
    if problem is None:
        return
    _warned.add(root)
    fix = "chmod -R o-rwx" if group_readable else "chmod -R go-rwx"
    log.warning(
        "archive %s: %s, so other local users can read the mail in it; run %s %s "
        "(to let a backup group read it on purpose, see [archive] group_readable)",
        root,
        problem,
        fix,
        root,
    )
