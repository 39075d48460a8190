"""``token_command``: the operator's helper is run (no shell) for the token, and again when the server refuses it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from archiver.errors import SecretError
from archiver.oauth.tokens import CommandTokenSource

HELPER = """
import pathlib, sys
count = pathlib.Path(sys.argv[1])
n = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(n))
print(f"  token-number-{n}  ")
"""


def helper(tmp_path: Path) -> tuple[list[str], Path]:
    script = tmp_path / "helper.py"
    script.write_text(HELPER)
    runs = tmp_path / "runs"
    return [sys.executable, str(script), str(runs)], runs


def test_the_token_is_stdout_stripped_and_fetched_once(tmp_path: Path) -> None:
    argv, runs = helper(tmp_path)
    source = CommandTokenSource("work", argv)
    assert source.access_token() == "token-number-1"
    assert source.access_token() == "token-number-1"
    assert runs.read_text() == "1"


def test_a_refused_token_runs_the_helper_again(tmp_path: Path) -> None:
    argv, runs = helper(tmp_path)
    source = CommandTokenSource("work", argv)
    source.access_token()
    assert source.refused() == "token-number-2"
    assert source.access_token() == "token-number-2"
    assert runs.read_text() == "2"


def test_no_shell_is_involved(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    source = CommandTokenSource("work", ["/bin/echo", f"tok; touch {marker}"])
    assert source.access_token() == f"tok; touch {marker}"
    assert not marker.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/bin/false"], "account 'work': token_command '/bin/false': failed with exit code 1"),
        (["/bin/true"], "account 'work': token_command '/bin/true': printed no token"),
        (["no-such-helper-xyz"], "account 'work': token_command 'no-such-helper-xyz': not found"),
    ],
)
def test_a_failing_helper_is_one_line(argv: list[str], message: str) -> None:
    with pytest.raises(SecretError) as caught:
        CommandTokenSource("work", argv).access_token()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_helper_that_hangs_is_stopped(tmp_path: Path) -> None:
    source = CommandTokenSource("work", ["/bin/sleep", "30"], timeout=0.5)
    with pytest.raises(SecretError, match=r"did not finish within 0\.5 s$"):
        source.access_token()
