"""`tfdeploy state migrate-lock`: switch a cell's lock mode deliberately."""

from __future__ import annotations

import os

import click

from .common import RepoContext, repo_command, tag_options


@click.command("migrate-lock")
@click.option("--to", "to", required=True, type=click.Choice(["s3", "dynamodb"]),
              help="The lock mode the cell's state is kept in from now on.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@tag_options(required=True)
@repo_command
def migrate_lock(tag: str, source, to: str, yes: bool, repo: RepoContext) -> None:
    """Switch the lock mode of a tag's cell (s3 <-> dynamodb), under its locks.

    Every run of a cell must use the mode recorded beside its state; a run in the other mode is
    refused. Going to dynamodb writes the state digest Terraform expects in the lock table; going
    to s3 removes it. Then the new mode is recorded. Afterwards run with --set lock=TO.

    \b
    Example:
      tfdeploy state migrate-lock --tag dev_us-east-1/research/1.0 --to s3
    """
    from dataclasses import replace

    from ..aws.sandbox import active_endpoint
    from ..engine.lockmode import migrate_lock as run_migration
    from ..engine.lockmode import migration_steps
    from ..engine.stages import terraform_environment
    from ..model.deployment import resolve

    deployment = resolve(tag, repo.settings, repo.root)
    backend = replace(deployment.backend, dynamodb_table=deployment.backend.lock_table if to == "dynamodb" else None)
    env, endpoint, _ = terraform_environment(repo.root, os.environ)
    endpoint = endpoint or active_endpoint(os.environ)
    steps = migration_steps(backend, to)
    if not yes:
        click.echo(f"migrate-lock {deployment.tag.cell} to {to}:\n" + "\n".join(f"  - {s}" for s in steps))
        click.confirm("Proceed?", abort=True)
    before = run_migration(backend, to, environ=env, endpoint=endpoint, env=deployment.tag.env)
    click.echo(f"cell {deployment.tag.cell}: lock mode was {before}, now {to} (recorded at "
               f"s3://{backend.bucket}/{backend.key}.tfdeploy-lock-mode.json); run with --set lock={to}")
