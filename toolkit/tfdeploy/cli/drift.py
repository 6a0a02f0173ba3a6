"""`tfdeploy drift`: does every deployed cell still match the tag it last applied?"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import click

from ..errors import ValidationError
from .cells import Scopes, parse_scopes, scope_options
from .common import (
    RepoContext,
    echo_json,
    json_option,
    lock_timeout_option,
    repo_command,
    shown_path,
)


def _warn(text: str) -> None:
    click.echo(f"tfdeploy: warning: {text}", err=True)


@click.command("drift")
@click.option("--env", help="Only this environment.")
@click.option("--team", help="Only this team.")
@scope_options
@click.option("--parallel", type=click.IntRange(1, 64), default=None, metavar="N",
              help="Cells checked at once (default: 2 per CPU, 2 to 8, no more than fit in memory at 600 MB each).")
@click.option("--terraform", "terraform_bin", metavar="PATH", envvar="TFDEPLOY_TERRAFORM",
              help="Terraform executable (default: the one tfdeploy manages).")
@lock_timeout_option
@json_option
@repo_command
def drift(env: str | None, team: str | None, scope: tuple[str, ...], include_global: bool, parallel: int | None,
          terraform_bin: str | None, lock_timeout: float, as_json: bool, repo: RepoContext) -> None:
    """Check every deployed cell for drift: a refresh-and-plan at the tag it last applied.

    Which cells and which tag come from the deployment ledger (the last successful apply, not
    destroyed since). Each cell's plan runs in a work dir of its own, in parallel, one log per
    cell: nothing is applied, no saved plan is left for `apply`, and the state is only read
    (under its lock). A cell whose applied tag is gone, or now points at another commit, is
    skipped with the reason.

    Every check is recorded in the ledger, so `tfdeploy status` marks drifted cells and
    `tfdeploy history` lists the checks. When any cell drifted and `notify_topic_arn` is set,
    one notification lists them.

    Exit codes: 0 all in sync, 2 any drifted, 1 any cell could not be checked (failed or
    skipped).

    \b
    Examples:
      tfdeploy drift                                   every deployed cell
      tfdeploy drift --env prod --team research
      tfdeploy drift --env prod --scope us-east-1 --global
      tfdeploy drift --env dev --parallel 4 --json     for a scheduled job
    """
    from ..fleet.schedule import default_parallel

    settings = repo.settings
    if env is not None and env not in settings.environments:
        raise ValidationError(f"--env {env} is not one of the configured environments "
                              f"({', '.join(settings.environments)})")
    scopes = parse_scopes(scope, include_global, extra=settings.extra_regions)
    run_drift(repo, env=env, team=team, parallel=parallel or default_parallel(), terraform_bin=terraform_bin,
              lock_timeout=lock_timeout, as_json=as_json, scopes=scopes)


def run_drift(repo: RepoContext, *, env: str | None, team: str | None, parallel: int,
              terraform_bin: str | None, lock_timeout: float, as_json: bool, scopes: Scopes | None = None) -> None:
    from ..engine.gitsource import tag_source
    from ..engine.stages import SourceOptions, find_terraform
    from ..errors import TfdeployError
    from ..fleet import drift as d
    from ..fleet.actions import drift_action
    from ..fleet.display import make_display
    from ..fleet.ledger import flush_outbox, latest
    from ..fleet.results import (
        RUNS_DIR,
        RunRecord,
        new_run_id,
        now_iso,
        selection_key,
        write_record,
    )
    from ..fleet.runner import Shared, run_cells
    from ..fleet.schedule import Step
    from ..model.tags import parse_tag
    from ..paths import repo_cache_dir

    out = sys.stderr if as_json else sys.stdout  # with --json, stdout carries only the document
    say = functools.partial(click.echo, file=out)
    display = make_display(out)  # before any work: a bad display setting is refused first
    settings = repo.settings
    cache = repo_cache_dir(repo.root, os.environ)
    for where in flush_outbox(cache, os.environ, _warn):
        click.echo(f"tfdeploy: kept ledger record written: {where}", err=True)
    envs = [env] if env else list(settings.environments)
    from ..fleet.reconcile import reconcile

    found = reconcile(latest(settings, os.environ, envs, [team] if team else None, cache_dir=cache), os.environ, _warn)
    deployed = [record for record in d.deployed_cells(found, settings.environments, extra_regions=settings.extra_regions,
                                                      env=env, team=team)
                if scopes is None or scopes.matches(record.scope)]
    if not deployed:
        say("no deployed cells to check" + (" for these filters" if env or team or (scopes and scopes.given) else "")
            + ": the ledger records no successful apply")
        if as_json:
            echo_json(d.document([]))
        sys.exit(0)

    # Once, in the main thread: is each applied tag still here, at the applied commit?
    skipped: list[d.CellCheck] = []
    sources: dict[str, Any] = {}
    steps = []
    for record in deployed:
        try:
            tag = parse_tag(record.tag, settings.extra_regions)
            # Not the branch or annotation checks of an apply: nothing is deployed; what matters
            # is that the code is the code that was applied.
            source = tag_source(repo.root, record.tag, default_branch=settings.default_branch,
                                allow_lightweight=True, skip_branch_check=True)
            problem = d.source_problem(record, source.commit)
        except TfdeployError as exc:
            problem = d.source_problem(record, None, str(exc))
        if problem:
            skipped.append(d.CellCheck(record.cell, record.tag, d.SKIPPED, error=problem))
            continue
        sources[tag.name] = source
        steps.append(Step(tag, ()))  # independent checks: no global-first ordering needed
    runs = cache / RUNS_DIR
    run = RunRecord(run_id=new_run_id(), action="drift", tag_args=[f"env={env or '*'}", f"team={team or '*'}"],
                    key=selection_key("drift", [env or "*", team or "*"]), started_at=now_iso())
    log_dir = runs / run.run_id
    found: dict[str, list[dict[str, Any]]] = {}
    signum = None
    checked: list[d.CellCheck] = []
    if steps:
        from ..fleet.preflight import Fleet, run_checks

        # What every check shares (credentials, state buckets, signing keys): one line, not one per cell.
        run_checks(Fleet(repo.root, settings, os.environ, repo.overrides, [step.tag for step in steps], sources))
        shared = Shared(repo.root, repo.overrides, os.environ, SourceOptions(),
                        find_terraform(terraform_bin, repo.root, os.environ), lock_timeout, sources)
        say(f"tfdeploy: drift check of {len(steps)} cells, {min(parallel, len(steps))} at a time; "
            f"logs in {shown_path(log_dir)}")
        with display:
            for check in skipped:
                display.note(f"[{check.cell}] skipped: {check.error}")
            outcome = run_cells(steps, drift_action(found), shared=shared, log_dir=log_dir, parallel=parallel,
                                display=display, action_name="drift")
        signum = outcome.signum
        run.finished_at, run.interrupted = now_iso(), signum is not None
        write_record(runs, run, outcome.results)
        checked = [d.CellCheck(r.cell, r.tag, r.result, found.get(r.cell, []) if r.result == d.DRIFTED else [],
                               r.log, r.error) for r in outcome.results]
    checks = sorted(checked + skipped, key=lambda c: c.cell)
    say(d.render(checks))
    if as_json:
        echo_json(d.document(checks))
    drifted = [c for c in checks if c.result == d.DRIFTED]
    if drifted:
        _notify(drifted, settings)
    code = d.exit_code(checks, signum)
    if signum is not None:
        from ..engine.supervise import signal_name

        click.echo(f"tfdeploy: error: interrupted ({signal_name(signum)}); running checks were stopped, "
                   "no new ones started; run tfdeploy drift again", err=True)
    elif code == 1:
        bad = [c for c in checks if c.result not in (d.IN_SYNC, d.DRIFTED)]
        click.echo(f"tfdeploy: error: {len(bad)} of {len(checks)} cells could not be checked "
                   f"({', '.join(f'{c.cell}: {c.result}' for c in bad)}); see the reasons above"
                   + (f"; {len(drifted)} drifted" if drifted else ""), err=True)
    elif code == 2:
        click.echo(f"tfdeploy: {len(drifted)} of {len(checks)} cells drifted: "
                   f"{', '.join(c.cell for c in drifted)}", err=True)
    sys.exit(code)


def _notify(drifted: list[Any], settings: Any) -> None:
    from ..fleet.notify import notify

    names = ", ".join(c.cell for c in drifted)
    first = drifted[0]
    payload = {"tag": first.tag if len(drifted) == 1 else None, "cell": first.cell if len(drifted) == 1 else None,
               "result": "drifted", "command": "tfdeploy drift",
               "drifted": [{"cell": c.cell, "tag": c.tag, "resources": c.resources} for c in drifted]}
    notify("drift-detected", f"tfdeploy: drift in {len(drifted)} cell(s): {names}", payload, settings, os.environ)
