"""Commands are imported when they run (or when --help lists them), not at every start-up."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click
import tfdeploy.cli as cli_package
from click.testing import CliRunner
from tfdeploy.cli import LAZY_COMMANDS, cli


def _top_level_commands() -> dict[str, str]:
    """name -> defining module, for every command defined in a tfdeploy.cli module that is not
    some group's subcommand (those are reached through their group)."""
    own = []
    for info in pkgutil.iter_modules(cli_package.__path__):
        module = importlib.import_module(f"tfdeploy.cli.{info.name}")
        own += [(info.name, value) for value in vars(module).values()
                if isinstance(value, click.Command) and getattr(value.callback, "__module__", None) == module.__name__]
    subcommands = {id(sub) for _, value in own if isinstance(value, click.Group) for sub in value.commands.values()}
    return {value.name: module for module, value in own if id(value) not in subcommands}


def test_every_command_is_reachable_by_name_from_its_own_module():
    eager = {"resolve", "tags"}  # defined in tfdeploy.cli itself
    defined = {name: module for name, module in _top_level_commands().items() if name not in eager}
    assert LAZY_COMMANDS == defined
    with click.Context(cli) as ctx:
        for name, module in LAZY_COMMANDS.items():
            command = cli.get_command(ctx, name)
            assert command is not None and command.name == name
            assert command.callback.__module__ == f"tfdeploy.cli.{module}"
        assert set(cli.list_commands(ctx)) == set(LAZY_COMMANDS) | eager


def test_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    # Under the task headings ("Deploy commands:", ...): every line indented by two spaces.
    listed = {line.split()[0] for line in result.output.split("Deploy commands:")[1].splitlines()
              if line.startswith("  ") and line.strip()}
    assert listed == set(LAZY_COMMANDS) | {"resolve", "tags"}


def test_one_command_imports_no_other_command_module(tmp_path):
    code = (
        "import sys\n"
        "from tfdeploy.cli import cli\n"
        "try:\n"
        "    cli(sys.argv[1:])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('CLI=' + ','.join(sorted(m[len('tfdeploy.cli.'):] for m in sys.modules\n"
        "                               if m.startswith('tfdeploy.cli.'))))\n"
    )
    command_modules = set(LAZY_COMMANDS.values())
    for argv, modules in ((["resolve", "--tag", "dev_us-east-1/research/1.0", "--repo", str(tmp_path)], set()),
                          (["plan", "--help"], {"deploy"}),
                          (["status", "--help"], {"fleetstate"})):
        proc = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
        imported = set(proc.stdout.strip().splitlines()[-1].removeprefix("CLI=").split(","))
        assert imported & command_modules == modules, (argv, proc.stderr)


def test_an_unknown_command_is_one_line_with_exit_2_and_suggests_a_lazy_command():
    result = CliRunner().invoke(cli, ["aply", "--tag", "x"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "aply" in result.stderr
    if hasattr(click.exceptions, "NoSuchCommand"):  # click 8.2+ suggests close names
        assert "did you mean 'apply'" in result.stderr


def test_several_close_commands_are_suggested_on_the_same_one_line():
    result = CliRunner().invoke(cli, ["sandbx"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    if hasattr(click.exceptions, "NoSuchCommand"):
        assert result.stderr.startswith("tfdeploy: error: No such command 'sandbx' (did you mean one of "
                                        "'sandbox', 'scan'); see ")
