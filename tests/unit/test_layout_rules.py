"""Rules of the layout that a reader should be able to trust without checking, checked on the source.

Test modules import plain helpers from ``tests/fixtures/`` only, and open archives through the fixtures.

The catalog is the only SQL: no ``sqlite3`` and no ``.execute(`` anywhere in ``archiver/``
or ``web/`` outside ``archiver/catalog/``, not even in a comment or docstring, so that
``grep`` keeps answering "where is the SQL?" with one folder.
"""

from __future__ import annotations

import ast
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


def test_no_test_module_imports_another_test_module_or_a_helper_outside_tests_fixtures() -> None:
    """Test modules name fixtures (conftest.py) and import plain helpers from tests/fixtures/ only: a helper
    borrowed from another test module drags that module's tests, markers and fixtures along with it."""
    tests_dir = Path(__file__).resolve().parents[1]

    def allowed(module: str) -> bool:
        """Anything outside the ``tests`` package, and ``tests.fixtures`` with what is inside it."""
        return module.split(".")[0] != "tests" or module == "tests.fixtures" or module.startswith("tests.fixtures.")

    problems = []
    for path in sorted(tests_dir.rglob("test_*.py")):
        where = path.relative_to(tests_dir.parent)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                problems.append(f"{where}:{node.lineno}: relative import from {'.' * node.level}{node.module or ''}")
            elif isinstance(node, ast.ImportFrom) and node.module == "tests":  # from tests import unit, fixtures…
                named = [a.name for a in node.names if a.name != "fixtures"]
                problems += [f"{where}:{node.lineno}: imports tests.{name}" for name in named]
            elif isinstance(node, ast.ImportFrom) and not allowed(node.module or ""):
                problems.append(f"{where}:{node.lineno}: imports from {node.module}")
            elif isinstance(node, ast.Import):
                problems += [f"{where}:{node.lineno}: imports {a.name}" for a in node.names if not allowed(a.name)]
    assert problems == []


#: Where a test may construct ``Archive`` itself: the factory behind the fixtures, and the tests whose subject is
#: how ``Archive`` opens a given path (a file in its place, modes whatever the umask, the exposure warning).
ARCHIVE_BUILDERS = {"tests/fixtures/archives.py", "tests/unit/test_archive_access.py"}


def test_tests_open_archives_through_the_fixtures() -> None:
    """``open_archive``/``archive`` (``archive_at`` in module-wide fixtures), not ``Archive(...)`` by hand: one
    place decides how a test opens an archive (with the settings its config file gives) and closes what a failing
    test left open. Code a child process runs (a string) is not a call here, so it may still build one."""
    tests_dir = Path(__file__).resolve().parents[1]
    problems = []
    for path in sorted(tests_dir.rglob("*.py")):
        where = path.relative_to(tests_dir.parent).as_posix()
        if where in ARCHIVE_BUILDERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func.value if isinstance(node.func, ast.Attribute) else node.func  # Archive.for_reading(…)
            if isinstance(func, ast.Name) and func.id == "Archive":
                problems.append(f"{where}:{node.lineno}: {ast.unparse(node)}")
    assert all((tests_dir.parent / name).is_file() for name in ARCHIVE_BUILDERS)  # the exemptions still exist
    assert problems == [], "open the archive with the open_archive fixture:\n" + "\n".join(problems)
