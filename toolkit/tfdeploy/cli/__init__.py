"""The `tfdeploy` command line. Commands here only wire options to the modules that do the work.

Exit codes: 0 ok, 1 failure, 2 usage or validation error, 3 a required tool is missing.
"""

from __future__ import annotations

import click

from .. import __version__
from .common import RepoContext, TfdeployGroup, echo_json, json_option, repo_command, tag_option


# Every command but `resolve` and `tags` (defined below), by name: the module of tfdeploy.cli that
# defines it (under the same name). A command's module is imported when it runs or when --help
# lists it, so one command never pays for building every other command's options (~13 ms of each
# start-up).
LAZY_COMMANDS = {
    "lint": "quality", "scan": "quality",
    "init": "deploy", "plan": "deploy", "apply": "deploy", "output": "deploy", "show": "deploy",
    "run": "deploy",
    "destroy": "destroy", "state": "state", "locks": "locks", "unlock": "locks",
    "status": "fleetstate", "history": "fleetstate", "drift": "drift",
    "bootstrap": "aws", "sandbox": "aws",
    "buildspec": "delivery", "events": "delivery", "publish": "delivery", "ci": "delivery",
    "tools": "tools", "scaffold": "scaffold", "release": "release", "promote": "promote",
    "rollback": "rollback", "demo": "demo", "doctor": "doctor", "pipeline": "pipeline",
    "settings": "settings",
}

# What --help shows under each heading, by task (docs/reference/cli.md has the same tables).
SECTIONS = {
    "Deploy": ("resolve", "plan", "apply", "destroy", "run", "init", "output", "show", "lint", "scan"),
    "Fleet": ("tags", "release", "promote", "status", "history", "rollback", "drift"),
    "State": ("bootstrap", "locks", "unlock", "state"),
    "Pipeline": ("buildspec", "events", "publish", "ci", "pipeline"),
    "Set-up": ("settings", "demo", "scaffold", "sandbox", "tools", "doctor"),
}


@click.group(cls=TfdeployGroup, lazy_commands=LAZY_COMMANDS, sections=SECTIONS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tfdeploy")
def cli() -> None:
    """Deploy versioned Terraform to many AWS accounts and Regions from git tags.

    A tag like dev_us-east-1/research/1.0 names the environment, the scope (a Region or
    `global`), the team and the version. tfdeploy turns it into the state bucket and key, the lock,
    the assume-role provider and the module namespace, then runs Terraform for it.

    \b
    Examples:
      tfdeploy resolve --tag dev_us-east-1/research/1.0   what a tag deploys, and where
      tfdeploy tags list                                  deployment tags in this repo
    """


@cli.command()
@tag_option(required=True)
@click.option("--worktree", is_flag=True,
              help="Read settings and envs/ from the working tree instead of the tagged commit (announced).")
@json_option
@repo_command
def resolve(tag: str, worktree: bool, as_json: bool, repo: RepoContext) -> None:
    """Show everything a tag resolves to: account, role, state bucket/key, lock, module.

    Reads the settings and envs/ of the tagged commit, like plan (the working tree with
    --worktree, or when the tag does not exist yet; both said on stderr). Touches no AWS API.

    \b
    Examples:
      tfdeploy resolve --tag dev_us-east-1/research/1.0
      tfdeploy resolve --tag dev_global/research/1.0 --json
      tfdeploy resolve --tag dev_us-east-1/research/1.1 --worktree   # before tagging
      TF_BACKEND_CONFIG_PREFIX=acme tfdeploy resolve --tag qa_eu-central-1/risk/2.1 --set lock=s3
    """
    import os

    from ..engine.tagview import resolve_tag
    from .report import deployment_summary, settings_origin

    def note(text: str) -> None:
        click.echo(f"tfdeploy: {text}", err=True)

    used_worktree: list[bool] = []

    def worktree_settings():
        used_worktree.append(True)
        return repo.settings  # prints the origins itself with -v

    deployment, settings = resolve_tag(repo.root, tag, environ=os.environ, overrides=repo.overrides,
                                       worktree=worktree, note=note, worktree_settings=worktree_settings)
    if repo.verbose and not used_worktree:
        click.echo(settings_origin(settings), err=True)
    if as_json:
        echo_json(deployment.to_dict())
    else:
        click.echo(deployment_summary(deployment))


@cli.group()
def tags() -> None:
    """Deployment tags in the repo.

    \b
    Example:
      tfdeploy tags list --env dev
    """


@tags.command("list")
@click.option("--env", help="Only tags of this environment.")
@click.option("--team", help="Only tags of this team.")
@json_option
@repo_command
def tags_list(env: str | None, team: str | None, as_json: bool, repo: RepoContext) -> None:
    """List the repo's tags, parsed, newest first. Malformed tags are shown with the reason.

    \b
    Examples:
      tfdeploy tags list
      tfdeploy tags list --env dev --team research --json
    """
    from ..engine.tagindex import filter_entries, list_tags
    from .report import tag_table

    entries = filter_entries(list_tags(repo.root, repo.settings.extra_regions), env, team)
    if as_json:
        echo_json([e.to_dict() for e in entries])
    elif not entries:
        click.echo("no tags" + (" match the filters" if env or team else " in this repo"))
    else:
        click.echo(tag_table(entries))


def main() -> None:
    """Run the CLI (the console script is `tfdeploy.entry:main`, which installs signals first)."""
    from ..entry import main as entry_main

    entry_main()
