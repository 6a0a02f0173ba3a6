"""`tfdeploy destroy --tag T ...`: destroy cells' namespaces after showing what goes (engine/destroy.py).

One exact tag: plan the destroy, show it, ask, apply. Many tags or patterns: the fleet runner, in
reverse order (regional cells before their global cell), after one confirmation for the whole list.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..errors import ValidationError
from .common import RepoContext, echo_json, exports_option, json_option
from .deploy import fleet_command
from .fanout import run_fanout, run_single, wants_fanout


@click.command("destroy")
@click.option("--auto-approve", is_flag=True, help="Destroy without asking (CI); needed without a terminal.")
@click.option("--allow-protected", is_flag=True, help="Also destroy in an env listed in protected_envs.")
@click.option("--any-version", is_flag=True,
              help="Also destroy cells whose last successful apply was another version than the tag's "
                   "(by default they are skipped).")
@exports_option
@json_option
@fleet_command
def destroy(tag: tuple[str, ...], run: Any, any_version: bool, repo: RepoContext) -> None:
    """Destroy what the tag's cell deployed: plan the destroy of its module namespace, show it, ask, apply.

    Only the tag's namespace (module.regional or module.global) in the cell's own state is
    planned for destruction; the destroy plan is then applied exactly, once, under the cell lock,
    with apply's saved-plan checks. Without a terminal, --auto-approve is required. Envs in
    protected_envs (default prod) also need --allow-protected. A cell whose last successful apply
    (the ledger) was another version is not destroyed: listed as skipped, unless --any-version.

    \b
    Examples:
      tfdeploy destroy --tag dev_us-east-1/research/1.0
      tfdeploy destroy --tag prod_eu-west-1/research/1.0 --auto-approve --allow-protected
      tfdeploy destroy --tag 'dev_*/research/1.1' --auto-approve   # regional cells first, global last
    """
    from ..engine.destroy import DestroyPlan, refuse_protected

    if wants_fanout(tag, run):
        _destroy_many(repo, tag, run, any_version=any_version)
    tag = tag[0]
    as_json, auto_approve, allow_protected = run.as_json, run.auto_approve, run.allow_protected
    parsed = repo.parse_tag(tag)
    refuse_protected(parsed, [repo.settings], allow_protected=allow_protected)
    if not auto_approve and not sys.stdin.isatty():
        raise ValidationError(f"destroying {tag} needs a yes: run it on a terminal to review and confirm, "
                              "or pass --auto-approve (CI); nothing was planned")
    if not any_version:
        _tags, skipped = _by_version(repo, (parsed,))
        if skipped:
            raise ValidationError(f"{skipped[0].reason}; nothing was planned")
    from ..fleet.actions import destroy_action

    shown: list[DestroyPlan] = []
    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo

    def confirm(session, planned: DestroyPlan) -> bool:
        """What is destroyed is shown either way; a person says yes (or --auto-approve did)."""
        b = session.deployment.backend
        shown.append(planned)
        say(f"destroy {tag}: {planned.summary}  (state s3://{b.bucket}/{b.key})")
        for address in planned.addresses:
            say(f"  - {address}")
        if auto_approve:
            return True
        answer = click.prompt(f"Destroy these {planned.summary.destroy} resource(s) of cell {parsed.cell}? "
                              "Only 'yes' will be accepted", default="", show_default=False, err=as_json)
        return answer.strip() == "yes"

    # One tag: a fleet of one (the fan-out's destroy of a cell, asking this person), shown as one cell.
    job = run_single(repo, parsed, "destroy", run, destroy_action(allow_protected, confirm))
    session, result = job.session, job.stage
    b = session.deployment.backend
    if "nothing to destroy" in result.notes:
        say(f"destroy {tag}: nothing to destroy in s3://{b.bucket}/{b.key}")
    elif not as_json:
        click.echo(f"destroyed {tag}: -{result.counts['destroy']}; state s3://{b.bucket}/{b.key} "
                   f"({b.lock_description})")
        if run.exports:
            click.echo(result.export_lines())
    if as_json:
        echo_json({"deployment": session.deployment.to_dict(), "summary": result.counts,
                   "addresses": list(shown[0].addresses) if shown else [], "result": result.to_dict()})


def _by_version(repo: RepoContext, tags: tuple) -> tuple[tuple, list]:
    """The tags whose cells run their version (or nothing), and the Skips of the others (ledger)."""
    from ..fleet.destroyscope import choose, deployed_versions
    from ..fleet.ledger import LedgerError
    from ..fleet.preflight import Fleet, check_credentials, run_checks
    from ..paths import repo_cache_dir
    from .fleetstate import _flush

    # No credentials: say so once, not as a ledger read error.
    run_checks(Fleet(repo.root, repo.settings, os.environ, repo.overrides, tags, {}), [check_credentials])
    try:
        _flush(repo)  # a record an earlier command kept may be the newest apply of a cell
        running = deployed_versions(tags, repo.settings, os.environ, repo_cache_dir(repo.root, os.environ))
    except LedgerError as exc:
        raise ValidationError(f"{exc}; without the ledger no one can say which version each cell runs, so "
                              "nothing was destroyed (--any-version destroys without asking it)") from None
    chosen, skipped = choose(tags, running)
    return tuple(chosen), skipped


def _destroy_many(repo: RepoContext, tag_args: tuple[str, ...], run: Any, *, any_version: bool) -> None:
    """The fleet path: every selected cell is checked against protected_envs, cells running another
    version than their tag's are left out (unless --any-version), the whole list is shown and
    confirmed once (or --auto-approve), then cells are destroyed in reverse order."""
    from ..engine.destroy import refuse_protected
    from dataclasses import replace

    from ..fleet.results import SKIPPED, CellResult

    as_json, auto_approve, allow_protected = run.as_json, run.auto_approve, run.allow_protected
    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo

    def narrow(tags: tuple) -> tuple[tuple, list[CellResult]]:
        for tag in tags:  # before any AWS call: a refusal needs none
            refuse_protected(tag, [repo.settings], allow_protected=allow_protected)
        if any_version:
            return tags, []
        chosen, skipped = _by_version(repo, tags)
        for skip in skipped:
            say(f"skipped: {skip.reason}")
        return chosen, [CellResult(tag=s.tag.name, cell=s.tag.cell, result=SKIPPED, error=s.reason,
                                   chosen_skip=True) for s in skipped]

    def confirm(steps: list) -> None:
        say(f"destroy {len(steps)} cells, in this order: " + ", ".join(step.tag.name for step in steps))
        if auto_approve:
            return
        if not sys.stdin.isatty():
            raise ValidationError(f"destroying {len(steps)} cells needs a yes: run it on a terminal to review "
                                  "and confirm, or pass --auto-approve (CI); nothing was planned")
        answer = click.prompt(f"Destroy what these {len(steps)} cells deployed? Only 'yes' will be accepted",
                              default="", show_default=False, err=as_json)
        if answer.strip() != "yes":
            raise ValidationError("not destroyed: not confirmed; nothing was planned")

    # Each cell runs approved: the whole list was confirmed once above.
    run_fanout(repo, tag_args, "destroy", replace(run, detailed_exitcode=False, auto_approve=True),
               confirm=confirm, narrow=narrow)
