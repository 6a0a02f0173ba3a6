"""`tfdeploy promote`: tag the next env at the commit that succeeded in this one (fleet/promote.py)."""

from __future__ import annotations

import os

import click

from ..errors import ValidationError
from .cells import Scopes, parse_scopes, regions_alias, scope_options, with_regions
from .common import RepoContext, echo_json, json_option, repo_command


def promote_scopes(scope: tuple[str, ...], include_global: bool, extra: frozenset[str] = frozenset()) -> Scopes:
    """--scope/--global of promote (pure). `--global` alone once meant "only the global cell"; it
    now means "include the global cell" as everywhere, which alone would select nothing more than
    the default: refused, naming the form that says what was meant."""
    if include_global and not scope:
        raise ValidationError("promote --global alone no longer means only the global cell: pass --scope "
                              "global for that, or no --scope for every scope it succeeded in")
    return parse_scopes(scope, include_global, extra=extra)


@click.command("promote")
@click.option("--from", "source", required=True, metavar="ENV", help="The env the version succeeded in, e.g. qa.")
@click.option("--to", "target", required=True, metavar="ENV",
              help="The next env in `environments` (promotion order), e.g. prod.")
@click.option("--team", required=True, help="Team, e.g. research.")
@click.option("--version", "version", required=True, help="Version, e.g. 1.2.")
@scope_options
@regions_alias
@click.option("--push", is_flag=True, help="Push the created tags (atomically where the remote supports it).")
@click.option("--remote", default="origin", show_default=True, help="Remote for --push.")
@click.option("--dry-run", is_flag=True, help="Check and print the tags; create nothing.")
@json_option
@repo_command
def promote(source: str, target: str, team: str, version: str, scope: tuple[str, ...], include_global: bool,
            regions: str | None, push: bool, remote: str, dry_run: bool, as_json: bool, repo: RepoContext) -> None:
    """Create the next env's tags at the commit that succeeded in this env.

    For each scope where VERSION last applied successfully in --from (the ledger), creates the
    annotated tag <to>_<scope>/<team>/<version> at the commit <from>_<scope>/<team>/<version>
    points to. Tags that exist are skipped (said). Refused when --to is not right after --from in
    `environments`, when the version has no successful apply in --from, or when --to has no
    tfvars for a scope (checked against the commit being tagged, as release does).

    Without --scope, every scope the version succeeded in; --scope names some (all: every Region
    it succeeded in), --global adds the global cell, --scope global is the global cell alone.

    \b
    Examples:
      tfdeploy promote --from dev --to qa --team research --version 1.2
      tfdeploy promote --from qa --to prod --team research --version 1.2 --scope us-east-1 --global --push
      tfdeploy promote --from qa --to prod --team research --version 1.2 --scope global
    """
    from ..fleet import promote as pro
    from ..fleet import release as rel

    scopes = promote_scopes(with_regions(scope, regions), include_global, repo.settings.extra_regions)
    request = pro.PromoteRequest(source, target, team, version, scopes.regions, scopes.with_global)
    pro.check_order(source, target, [repo.settings.environments])
    records = pro.ledger_records(request, repo.settings, os.environ)
    found = pro.deployed(records, request)
    scopes = pro.choose_scopes(request, found)
    names = [rel.tag_name(env, s, team, version) for s in scopes for env in (source, target)]
    planned = pro.plan_promotion(request, scopes, found, pro.tag_commits(repo.root, names))
    new = [p for p in planned if not p.skipped]
    existing = rel.existing_tag_names(repo.root)
    # Every commit to tag is checked as release checks it (its settings' order, E2's envs/ files).
    by_commit: dict[str, list[pro.Promotion]] = {}
    for p in new:
        by_commit.setdefault(p.commit, []).append(p)
    for commit, group in by_commit.items():
        release = pro.release_request(request, [p.scope for p in group])
        config = rel.read_commit_config(repo.root, commit, release, environ=os.environ, overrides=repo.overrides)
        pro.check_order(source, target, [config.settings.environments])
        rel.plan_release(release, config.settings, config.team, config.tfvars_regions, existing)
    pushed = None
    if new and not dry_run:
        rel.check_identity(repo.root)
        if push:
            rel.check_remote(repo.root, remote, [p.tag for p in new])
        for commit, group in by_commit.items():
            rel.create_tags(repo.root, commit, [p.tag for p in group], pro.message(request, group))
        if push:
            pushed = rel.push_tags(repo.root, remote, [p.tag for p in new])
    if as_json:
        echo_json([p.to_dict(created=not p.skipped and not dry_run, pushed=pushed is not None and not p.skipped)
                   for p in planned])
        return
    verb = "would create" if dry_run else "created"
    click.echo(f"promote {request.name}: {verb} {len(new)} tag(s)")
    for p in planned:
        click.echo(f"  skipped {p.tag} ({p.skipped})" if p.skipped else f"  {p.tag} at {p.commit[:12]}")
    if pushed:
        click.echo(f"pushed to {remote} ({pushed})")
    if new:
        hint = rel.deploy_hint(rel.ReleaseRequest(target, team, version, None, False),
                               [rel.parse_tag(p.tag, repo.settings.extra_regions) for p in new], existing)
        click.echo(f"deploy: {hint}")
