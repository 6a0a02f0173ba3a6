"""Every command teaches: --help works and shows at least one example."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner
from tfdeploy.cli import cli


def _commands(command, path):
    """Every command path, through click's own lookup: commands loaded lazily count too."""
    yield path
    if isinstance(command, click.Group):
        with click.Context(command) as ctx:
            for name in command.list_commands(ctx):
                yield from _commands(command.get_command(ctx, name), [*path, name])


@pytest.mark.parametrize("path", list(_commands(cli, [])), ids=lambda p: " ".join(p) or "tfdeploy")
def test_help_has_an_example(path):
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output


def test_unknown_option_is_a_usage_error():
    result = CliRunner().invoke(cli, ["resolve", "--tagg", "x"])
    assert result.exit_code == 2
    assert "No such option" in result.output
