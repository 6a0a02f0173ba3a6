"""The whole command tree at once, for generated docs (mkdocs-click) and anything else that walks it.

The `tfdeploy` group imports a command's module only when that command runs or `--help` lists it
(`LAZY_COMMANDS`), so `cli.commands` holds just the eagerly defined ones. Tools that read
`group.commands`, as mkdocs-click does, would document two commands out of thirty. Importing this
module loads every command into the group first; the CLI itself never imports it, so start-up
stays as fast as before (tests/core/test_cli_lazy.py).

    ::: mkdocs-click
        :module: tfdeploy.cli.reference
        :command: cli
"""

from __future__ import annotations

import click

from . import cli as _cli


def load_all_commands(group: click.Group) -> click.Group:
    """Load every command `group` lists (lazy ones included) into `group.commands`, and the same
    for its subgroups; returns the group. Listing goes through click's own `list_commands` and
    `get_command`, so any lazily loading group works, not only tfdeploy's."""
    with click.Context(group, info_name=group.name) as ctx:
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            if command is None:
                raise LookupError(f"{group.name} lists command {name!r} but cannot load it")
            if isinstance(command, click.Group):
                load_all_commands(command)
    return group


#: The `tfdeploy` group with every command loaded: what the CLI reference page documents.
cli = load_all_commands(_cli)
