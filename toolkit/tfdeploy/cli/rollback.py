"""`tfdeploy rollback --env E --team T --scope S [--to VERSION]`: apply the previous version again.

The version comes from the cell's ledger (fleet/rollback.py); the change itself is the normal
`apply` command invoked with the target tag, so every gate of an apply holds (promotion order,
protected envs' scan, the saved plan's checks, the cell lock, the ledger record, the failure
notification). The record says it was a rollback: `details.rollback_from`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys

import click

from ..errors import TfdeployError, ValidationError
from .common import (
    RepoContext,
    echo_json,
    hold_cell_for_command,
    json_option,
    lock_timeout_option,
    repo_command,
)


@click.command("rollback")
@click.option("--env", required=True, help="The environment, e.g. dev.")
@click.option("--team", required=True, help="The team, e.g. research.")
@click.option("--scope", required=True, help="A Region (us-east-1) or global.")
@click.option("--to", "to_version", metavar="VERSION",
              help="Go back to this version (its tag must exist) instead of the previous successful one.")
@click.option("--auto-approve", is_flag=True, help="Plan and apply without asking (needed without a terminal).")
@json_option
@click.option("--terraform", "terraform_bin", metavar="PATH", envvar="TFDEPLOY_TERRAFORM",
              help="Terraform executable [env: TFDEPLOY_TERRAFORM; default: terraform on PATH, else the "
                   "embedded tfdeploy-terraform].")
@lock_timeout_option
@repo_command
def rollback(env: str, team: str, scope: str, to_version: str | None, auto_approve: bool, as_json: bool,
             terraform_bin: str | None, lock_timeout: float, repo: RepoContext) -> None:
    """Roll a cell back to the version it ran before (from the ledger), through the normal apply.

    Finds the version deployed now (the last successful apply, not destroyed since) and the
    previous successful version before it (or --to VERSION), then plans and applies that
    version's tag exactly as `tfdeploy apply` does: every gate applies and the ledger records
    the rollback. Without --auto-approve it shows the plan and asks first.

    \b
    Examples:
      tfdeploy rollback --env dev --team research --scope us-east-1
      tfdeploy rollback --env prod --team research --scope global --to 1.1 --auto-approve
    """
    from ..engine.tagindex import list_tags
    from ..fleet.ledger import history
    from ..fleet.recording import extra_details
    from ..fleet.rollback import announce, choose, short
    from ..errors import TagError
    from ..model.tags import parse_tag

    settings = repo.settings
    if env not in settings.environments:
        raise ValidationError(f"--env {env} is not one of the configured environments "
                              f"({', '.join(settings.environments)})")
    # The tag grammar checks the team, scope (and --to version) and names the wrong part.
    try:
        probe = parse_tag(f"{env}_{scope}/{team}/{to_version or '0'}", settings.extra_regions)
    except TagError as exc:
        raise ValidationError(f"{exc.what}; check --scope, --team and --to") from None
    cell = probe.cell
    if not auto_approve and (as_json or not sys.stdin.isatty()):
        raise ValidationError(f"rolling back {cell} needs a yes: run it on a terminal to review the plan and "
                              "confirm, or pass --auto-approve (CI); nothing was planned")
    # Held from the ledger read to the apply (re-entrant: the apply takes it again), so no other
    # run on this machine changes the cell between the choice and the change.
    hold_cell_for_command(repo, probe, lock_timeout)
    from ..fleet.reconcile import reconcile

    def warn(text: str) -> None:
        click.echo(f"tfdeploy: warning: {text}", err=True)

    records = reconcile({cell: history(cell, env, settings, os.environ)}, os.environ, warn)[cell]
    chosen = choose(cell, trusted_records(cell, records, repo, _note), to_version)
    target_tag = f"{env}_{scope}/{team}/{chosen.version}"
    entry = next((e for e in list_tags(repo.root, settings.extra_regions) if e.name == target_tag), None)
    if entry is None:
        raise ValidationError(f"tag {target_tag} is not in this repo; run git fetch --tags (rolling back to "
                              f"{chosen.version} needs its tag)")
    if chosen.target is not None and chosen.target.commit and entry.commit != chosen.target.commit:
        raise ValidationError(f"tag {target_tag} now points at commit {short(entry.commit)}, but the ledger "
                              f"says {short(chosen.target.commit)} ran as {chosen.version}; nothing applied "
                              f"(check the tag; tfdeploy apply --tag {target_tag} deploys what it points at now)")
    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    say(f"tfdeploy: {announce(chosen, entry.commit)}")
    if chosen.target is None:
        click.secho(f"tfdeploy: note: {chosen.version} was never applied successfully in {cell} (not in its "
                    "ledger); rolling back to it as asked", fg="yellow", err=True)

    from .deploy import apply, plan

    ctx = click.get_current_context()
    common = {"tag": (target_tag,), "terraform_bin": terraform_bin, "lock_timeout": lock_timeout,
              "repo": str(repo.start), "verbose": 0, **repo.overrides}
    with extra_details(chosen.details):
        if not auto_approve:
            ctx.invoke(plan, **common)
            if not click.confirm(f"Apply this plan to roll {cell} back from {chosen.current.version} to "
                                 f"{chosen.version}?", default=False):
                raise TfdeployError(f"rollback of {cell} declined; nothing applied (the plan of {target_tag} "
                                    "stays saved; tfdeploy apply --tag TAG would apply it)")
        if as_json:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):  # apply's document, folded into ours
                ctx.invoke(apply, **common, auto_approve=True, as_json=True)
            echo_json({"cell": cell, "from": _side(chosen.current.version, chosen.current.tag, chosen.current.commit),
                       "to": _side(chosen.version, target_tag, entry.commit), "apply": json.loads(out.getvalue())})
            return
        ctx.invoke(apply, **common, auto_approve=auto_approve)
    click.echo(f"rolled back {cell} from {chosen.current.version} to {chosen.version} ({target_tag})")


def _note(text: str) -> None:
    click.secho(f"tfdeploy: note: {text}", fg="yellow", err=True)


def trusted_records(cell: str, records: list, repo: RepoContext, note) -> list:
    """The records a rollback may go by (fleet/signing.py): unsigned or badly signed ones (under
    ledger_signing_key) and future-dated ones are left out, and said."""
    from ..fleet.signing import trust_for
    from ..gates.policy import repo_policy
    from ..paths import repo_cache_dir

    policy = repo_policy(repo.root, os.environ)
    counted, left_out = trust_for(policy, os.environ, repo_cache_dir(repo.root, os.environ)).split(records)
    for record, why in left_out:
        note(f"{cell}: ignoring unverified record {record.id} ({record.action} {record.result} of {record.version}, "
             f"{record.finished_at}): {why}")
    return counted


def _side(version: str, tag: str, commit: str) -> dict[str, str]:
    return {"version": version, "tag": tag, "commit": commit}
