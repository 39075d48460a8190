"""The command group: every command module is found under its command's name, and only loaded when used."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from archiver.cli import COMMAND_MODULES, main


def test_every_command_module_registers_the_command_named_after_it():
    context = main.make_context("archiver", ["--help"], resilient_parsing=True)
    for module in COMMAND_MODULES:
        name = module.removesuffix("_cmd")
        command = main.get_command(context, name)
        assert command is not None and command.name == name, module


def test_help_lists_every_command(cli):
    result = cli.invoke(None, "--help")
    assert result.exit_code == 0
    for module in COMMAND_MODULES:
        assert f"  {module.removesuffix('_cmd')} " in result.output


def test_running_one_command_does_not_import_the_others():
    code = (
        "import sys\n"
        "from archiver.cli import main\n"
        "try:\n"
        "    main(['status', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m in ('whoosh', 'flask', 'archiver.cli.search')))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_unknown_command_is_a_usage_error(cli):
    result = cli.invoke(None, "no-such-command")
    assert result.exit_code == 2
    assert "No such command" in result.output


def test_the_web_package_adds_serve_through_its_entry_point():
    """``archiver serve`` lives in web/cli.py (web imports archiver, never the reverse); the group finds it."""
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "  serve " in result.output
    served = CliRunner().invoke(main, ["serve", "--help"])
    assert served.exit_code == 0 and "--hash-password" in served.output


def test_a_wrong_option_is_one_line_and_creates_no_archive(tmp_path):
    """Options are checked before a command opens the archive (opening to write would create it)."""
    config = tmp_path / "archiver.toml"
    config.write_text(f'[archive]\npath = "{tmp_path / "archive"}"\n[[accounts]]\nname = "alpha"\nprotocol = "local"\n')
    config.chmod(0o600)
    wrong = {
        ("backup", "--account", "alpah"): "no account named 'alpah'",
        ("restore", "--account", "alpha", "--to", "beta"): "no account named 'beta'",
        ("restore", "--account", "alpha", "--in-place", "--prefix", "X"): "--in-place and --prefix exclude each other",
        ("restore", "--folder", "INBOX"): "name the target account with --to",
        ("ls", "--account", "alpha", "--as-of", "2024-01-01", "--run", "1"): "give --as-of or --run, not both",
    }
    for args, message in wrong.items():
        result = CliRunner().invoke(main, ["--config", str(config), *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output
        assert not (tmp_path / "archive").exists(), args
