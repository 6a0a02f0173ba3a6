"""`tfdeploy scaffold DIR`: write a ready infra repo."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("directory", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--backend-prefix", required=True, metavar="P",
              help="Prefix of the state buckets and lock tables (<P>-<env>).")
@click.option("--team", "teams", multiple=True, metavar="T", help="A team (repeatable) [default: platform].")
@click.option("--env", "envs", multiple=True, metavar="E",
              help="An environment, in promotion order (repeatable) [default: dev, prod].")
@click.option("--region", "regions", multiple=True, metavar="R",
              help="A Region the teams deploy to (repeatable; the first also holds the state and the "
                   "global deployments) [default: us-east-1].")
@click.option("--pipeline-module-source", metavar="SOURCE",
              help="Terraform source of tfdeploy's modules/pipeline for pipeline/main.tf "
                   "[default: a placeholder git::https://example.com/REPLACE-WITH-TFDEPLOY-REPO.git//"
                   "modules/pipeline?ref=v<toolkit version>; point it at your copy of the tfdeploy repo].")
@click.option("--force", is_flag=True,
              help="Add the files to a non-empty DIR (e.g. an existing git repo); never overwrites a file.")
def scaffold(directory: Path, backend_prefix: str, teams: tuple[str, ...], envs: tuple[str, ...],
             regions: tuple[str, ...], pipeline_module_source: str | None, force: bool) -> None:
    """Write a ready infra repo into DIR: settings, root module, envs/, buildspecs/, pipeline/.

    DIR must be new or empty (or --force: nothing is ever overwritten). Every name is checked
    before anything is written. Accounts in envs/ are placeholders (000000000000): replace them.

    \b
    Examples:
      tfdeploy scaffold infra --backend-prefix acme-tfstate
      tfdeploy scaffold infra --backend-prefix acme-tfstate --team research --team risk \\
          --env dev --env prod --region us-east-1 --region eu-central-1
    """
    from ..adopt.scaffold import (
        DEFAULT_PIPELINE_MODULE_SOURCE,
        ScaffoldOptions,
        next_steps,
        scaffold_files,
        validate,
        write_scaffold,
    )

    options = ScaffoldOptions(
        backend_prefix=backend_prefix,
        teams=teams or ("platform",),
        envs=envs or ("dev", "prod"),
        regions=regions or ("us-east-1",),
        pipeline_module_source=pipeline_module_source or DEFAULT_PIPELINE_MODULE_SOURCE,
    )
    validate(options)
    written = write_scaffold(directory, scaffold_files(options), force=force)
    for rel in written:
        click.echo(f"wrote {directory / rel}")
    click.echo(next_steps(directory, options, Path.cwd()))
