"""The package layering stays true: import-linter's contracts, Whoosh only in the index, no hidden circles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIRST_PARTY = ("archiver", "web")

#: Imports inside functions that are there on purpose: each keeps an expensive import (Whoosh, authlib,
#: requests) off the paths that do not need it.  One that only hides an import circle does not belong here:
#: move the shared code to a module both sides can import instead.
LAZY_IMPORTS = {
    ("archiver/cli/auth.py", "archiver.oauth.device"): "authlib and requests, only for `archiver auth`",
    ("archiver/cli/auth.py", "archiver.oauth.loopback"): "authlib and requests, only for `archiver auth`",
    ("archiver/config/oauth.py", "archiver.oauth.client"): "authlib and requests, only for oauth2 accounts",
    ("archiver/config/oauth.py", "archiver.oauth.tokens"): "authlib and requests, only for oauth2 accounts",
    ("web/oauth_page.py", "archiver.oauth.device"): "authlib and requests, only when an admin connects an account",
    ("web/oauth_page.py", "archiver.oauth.loopback"): "authlib and requests, only when an admin connects an account",
    ("archiver/files/importer.py", "archiver.index"): "Whoosh, only once an import is done",
    ("archiver/backup/indexing.py", "archiver.index"): "Whoosh, only when the run added something to index",
    ("archiver/config/oauth.py", "archiver.oauth.store"): "tempfile and subprocess, only where a token file is used",
    ("archiver/config/secrets.py", "archiver.secret_io"): "subprocess and selectors, only once a secret is read",
    ("archiver/config/provider.py", "archiver.discovery.presets"): "the providers' table, for provider = … only",
    ("archiver/index/api.py", "archiver.index"): "the indexing code (workers, the mail parser), never for a search",
    ("archiver/index/searcher.py", "archiver.index.snippets"): "the mail parser, only for a page showing snippets",
    ("archiver/store/keys.py", "archiver.secret_io"): "subprocess, only to read an encrypted archive's key file",
    ("archiver/store/__init__.py", "archiver.store.s3"): "boto3, only for an archive whose blobs are in S3",
}


def python_files() -> list[Path]:
    return sorted(p for package in FIRST_PARTY for p in (ROOT / package).rglob("*.py"))


def imported_modules(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
        return [node.module]
    return []


def test_the_import_linter_contracts_are_kept() -> None:
    """pyproject.toml's contracts: archiver's layers, and web importing archiver, never the reverse."""
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    done = subprocess.run([str(lint_imports), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    broken = [line for line in done.stdout.splitlines() if "not allowed" in line or line.startswith("- ")]
    assert done.returncode == 0, "\n".join(broken) or done.stdout[-2000:] + done.stderr[-2000:]


def test_only_the_index_package_imports_whoosh() -> None:
    offenders = []
    for path in python_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("archiver/index/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if any(module.split(".")[0] == "whoosh" for module in imported_modules(node)):
                offenders.append(f"{relative}:{node.lineno}")
    assert not offenders, f"Whoosh imported outside archiver/index/: {offenders}"


def test_only_the_s3_backend_imports_boto3() -> None:
    """The object-store client is one backend's business: the rest of archiver sees a BlobBackend.

    (The throwaway SeaweedFS of the tests and benches, in devtools, inspects its bucket with it too.)
    """
    offenders = []
    for path in python_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative in ("archiver/store/s3_client.py", "archiver/devtools/seaweed.py"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if any(module.split(".")[0] in ("boto3", "botocore") for module in imported_modules(node)):
                offenders.append(f"{relative}:{node.lineno}")
    assert not offenders, f"boto3 imported outside archiver/store/s3_client.py: {offenders}"


def function_level_imports() -> dict[tuple[str, str], str]:
    found = {}
    for path in python_files():
        relative = path.relative_to(ROOT).as_posix()
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(function):
                for module in imported_modules(node):
                    if module.split(".")[0] in FIRST_PARTY:
                        found[relative, module] = f"{relative}:{node.lineno} imports {module} inside a function"
    return found


def test_no_function_level_import_hides_a_circle() -> None:
    unexplained = [where for key, where in function_level_imports().items() if key not in LAZY_IMPORTS]
    assert not unexplained, (
        "first-party imports inside functions hide import circles; move them to the top "
        "(or, for a costly import kept off a hot path, add them to LAZY_IMPORTS with the reason): "
        + "; ".join(unexplained)
    )


def test_the_lazy_import_list_has_no_stale_entries() -> None:
    present = function_level_imports()
    stale = [f"{path} -> {module}" for path, module in LAZY_IMPORTS if (path, module) not in present]
    assert not stale, f"LAZY_IMPORTS names imports that are gone: {stale}"
