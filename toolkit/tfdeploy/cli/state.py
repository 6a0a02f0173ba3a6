"""`tfdeploy state ...`: operations on a cell's remote state and its locks."""

from __future__ import annotations

import click

from .lockmode import migrate_lock


@click.group()
def state() -> None:
    """Operations on a cell's state and its locks.

    \b
    Example:
      tfdeploy state migrate-lock --tag dev_us-east-1/research/1.0 --to s3
    """


state.add_command(migrate_lock)
