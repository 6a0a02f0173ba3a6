"""`tfdeploy release`: create (and push) the annotated tags of one release (fleet/release.py)."""

from __future__ import annotations

import os

import click

from .cells import parse_scopes, regions_alias, scope_options, with_regions
from .common import RepoContext, echo_json, json_option, repo_command


@click.command("release")
@click.option("--env", required=True, help="Environment of the release, e.g. dev.")
@click.option("--team", required=True, help="Team of the release, e.g. research.")
@click.option("--version", "version", required=True, help="Version, e.g. 1.1 (no leading v).")
@scope_options
@regions_alias
@click.option("--ref", help="Commit to tag (must be on the default branch) [default: the branch's tip].")
@click.option("--push", is_flag=True, help="Push exactly these tags (atomically where the remote supports it).")
@click.option("--remote", default="origin", show_default=True, help="Remote for --push.")
@click.option("--dry-run", is_flag=True, help="Check and print the tags; create nothing.")
@json_option
@repo_command
def release(env: str, team: str, version: str, scope: tuple[str, ...], include_global: bool, regions: str | None,
            ref: str | None, push: bool, remote: str, dry_run: bool, as_json: bool, repo: RepoContext) -> None:
    """Create the annotated tags of a release at one commit, all or none.

    Checks everything against the commit being tagged before the first tag is made: the version's
    grammar, a configured env, the team's envs/ files, a <region>.tfvars for each Region and
    the team's allowed_regions, tags that already exist (here, and on the remote with --push).
    Then prints the tags and the command that deploys them. --scope all tags every Region with
    envs/<env>/<team>/<region>.tfvars; --global (or --scope global) tags the global cell too
    (deployed first).

    \b
    Examples:
      tfdeploy release --env dev --team research --version 1.1 --scope all --global
      tfdeploy release --env prod --team research --version 1.1 --scope us-east-1,eu-west-1 --push
      tfdeploy release --env dev --team research --version 1.2 --scope all --dry-run --json
    """
    from ..fleet import release as rel

    scopes = parse_scopes(with_regions(scope, regions), include_global,
                          extra=repo.settings.extra_regions)
    request = rel.ReleaseRequest(env, team, version, scopes.regions, scopes.with_global)
    if request.regions == () and not request.include_global:
        raise click.UsageError("pass --scope R1,R2 (or all) and/or --global")
    # The branch comes from the working tree's settings, as `plan` checks a tag's branch.
    commit = rel.release_commit(repo.root, ref, repo.settings.default_branch)
    config = rel.read_commit_config(repo.root, commit, request, environ=os.environ, overrides=repo.overrides)
    existing = rel.existing_tag_names(repo.root)
    tags = rel.plan_release(request, config.settings, config.team, config.tfvars_regions, existing)
    names = [t.name for t in tags]
    pushed = None
    if not dry_run:
        rel.check_identity(repo.root)
        if push:
            rel.check_remote(repo.root, remote, names)
        rel.create_tags(repo.root, commit, names, rel.release_message(request, tags))
        if push:
            pushed = rel.push_tags(repo.root, remote, names)
    hint = rel.deploy_hint(request, tags, existing)
    if as_json:
        echo_json([{"tag": t.name, "cell": t.cell, "scope": t.scope_name, "commit": commit,
                    "created": not dry_run, "pushed": pushed is not None} for t in tags])
        return
    verb = "would create" if dry_run else "created"
    click.echo(f"release {request.name} at {commit[:12]}: {verb} {len(names)} tag(s)")
    for name in names:
        click.echo(f"  {name}")
    if pushed:
        click.echo(f"pushed to {remote} ({pushed})")
    click.echo(f"deploy: {hint}")
