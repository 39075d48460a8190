"""Rules of the package layout that a reader should be able to trust without checking (issue 14).

The catalog is the only SQL: no ``sqlite3`` and no ``.execute(`` anywhere in ``archiver/``
or ``web/`` outside ``archiver/catalog/``, not even in a comment or docstring, so that
``grep`` keeps answering "where is the SQL?" with one folder.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SQL_MARKS = re.compile(r"sqlite3|\.execute\(")


def sql_outside_catalog(root: Path) -> list[str]:
    """``path:line: text`` for every line of ``root``'s archiver/ and web/ outside archiver/catalog/ naming SQL."""
    home = root / "archiver" / "catalog"
    found = []
    for path in sorted([*(root / "archiver").rglob("*.py"), *(root / "web").rglob("*.py")]):
        if path.is_relative_to(home):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if SQL_MARKS.search(line):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def test_sql_lives_only_in_the_catalog_package() -> None:
    assert (ROOT / "archiver" / "catalog" / "__init__.py").is_file()  # the tree was found, not an empty walk
    offending = sql_outside_catalog(ROOT)
    assert not offending, "SQL outside archiver/catalog/ (add a catalog method instead):\n" + "\n".join(offending)


def test_the_rule_names_file_and_line_and_exempts_the_catalog(tmp_path: Path) -> None:
    (tmp_path / "archiver" / "catalog").mkdir(parents=True)
    (tmp_path / "web").mkdir()
    (tmp_path / "archiver" / "catalog" / "runs.py").write_text('import sqlite3\ndb.execute("SELECT 1")\n')
    (tmp_path / "archiver" / "stray.py").write_text('"""A module."""\n\nrows = catalog.db.execute("SELECT 1")\n')
    (tmp_path / "web" / "page.py").write_text("import sqlite3\n")
    assert sql_outside_catalog(tmp_path) == [
        'archiver/stray.py:3: rows = catalog.db.execute("SELECT 1")',
        "web/page.py:1: import sqlite3",
    ]
