"""The command group: every command module is found under its command's name, and only loaded when used."""

from __future__ import annotations

import subprocess
import sys

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
