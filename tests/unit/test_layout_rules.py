"""Rules about where code lives, checked on the source so they stay true."""

from __future__ import annotations

import ast
from pathlib import Path


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
