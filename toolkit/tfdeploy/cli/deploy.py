"""`tfdeploy init|plan|apply|output|show` for one tag."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable

import click

from .common import (
    RepoContext,
    echo_json,
    exports_option,
    hold_cell_for_command,
    json_option,
    lock_timeout_option,
    repo_command,
    shown_path,
    tag_options,
)
from .fanout import fanout_options, run_fanout, run_options, run_single, wants_fanout


def tag_command(func: Callable[..., Any], many: bool = False) -> Callable[..., Any]:
    """Options every Terraform stage shares: the tag, where the code comes from, which terraform.

    `many`: --tag may repeat and be a pattern (plan, apply, destroy); `tag` is then a tuple."""
    func = click.option("--terraform", "terraform_bin", metavar="PATH", envvar="TFDEPLOY_TERRAFORM",
                        help="Terraform executable [env: TFDEPLOY_TERRAFORM; default: terraform on "
                             "PATH, else the embedded tfdeploy-terraform].")(func)
    return repo_command(tag_options(required=True, many=many)(lock_timeout_option(func)))


def fleet_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """A stage that runs one cell per exact --tag, or a fleet of cells (fan-out); its run options
    arrive as one `run: RunOptions` (fleet/options.py)."""
    return tag_command(fanout_options(run_options(func)), many=True)


def _warn(text: str) -> None:
    click.secho(f"tfdeploy: warning: {text}", fg="yellow", err=True)


def _open(repo: RepoContext, parsed: Any, source, terraform_bin, as_json: bool, reuse: bool = False,
          lock_timeout: float = 0):
    """Hold the cell and open its session for the Tag the command parsed (its only parse)."""
    from ..engine.stages import open_session

    # Held until the command ends: no other run of this cell on this machine meanwhile.
    hold_cell_for_command(repo, parsed, lock_timeout)
    tag = parsed.name
    # With --json, Terraform's live output goes to stderr so stdout carries only the document.
    sink = sys.stderr if as_json else sys.stdout
    session = open_session(repo.root, parsed, overrides=repo.overrides, environ=os.environ,
                           options=source, terraform_bin=terraform_bin, sink=sink, reuse_workdir=reuse,
                           lock_timeout_s=lock_timeout)
    for kept in session.workdir.rescued:
        click.secho(f"WARNING: a state Terraform could not save was left in the old work dir: "
                    f"{kept.sentence(tag)}", fg="yellow", err=True)
    if session.workdir.source.worktree:
        click.secho(f"WARNING: --worktree: planning the WORKING TREE of {repo.root}, not the tagged "
                    f"commit of {tag}. Do not apply this to a shared environment.", fg="yellow", err=True)
    where = f"sandbox {session.sandbox_endpoint}" if session.sandbox_endpoint else "AWS"
    click.echo(f"tfdeploy: {tag} @ {session.workdir.source.commit[:12]} -> {session.deployment.target_module} "
               f"in {session.deployment.region} ({where}); work dir {session.workdir.path}", err=True)
    return session


@click.command()
@tag_command
def init(tag: str, source, terraform_bin: str | None, lock_timeout: float, repo: RepoContext) -> None:
    """Prepare the tag's work dir and run terraform init with its backend.

    \b
    Example:
      tfdeploy init --tag dev_us-east-1/research/1.0
    """
    from ..engine.stages import init as run_init

    session = _open(repo, repo.parse_tag(tag), source, terraform_bin, False, lock_timeout=lock_timeout)
    run_init(session)
    b = session.deployment.backend
    click.echo(f"initialised: state s3://{b.bucket}/{b.key}, lock {b.lock_description}")


@click.command()
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when there are no changes, 2 when there are.")
@exports_option
@json_option
@fleet_command
def plan(tag: tuple[str, ...], run: Any, repo: RepoContext) -> None:
    """Plan the tagged commit for the tag's Region (or global) into a saved plan.

    Exports the tagged commit into .tfdeploy/work/<env>-<scope>-<team>/, writes the generated
    provider and tfvars there, runs terraform init with the tag's backend, then plans only the tag's
    namespace (module.regional or module.global). `tfdeploy apply` applies exactly this plan.

    \b
    Examples:
      tfdeploy plan --tag dev_us-east-1/research/1.0
      tfdeploy plan --tag dev_global/research/1.0 --json
      tfdeploy plan --tag dev_us-east-1/research/1.0 --worktree   # try uncommitted changes
      tfdeploy plan --tag 'dev_*/research/1.1' --parallel 4       # every cell of a release
    """
    from ..engine.stages import PlanSummary

    if wants_fanout(tag, run):
        run_fanout(repo, tag, "plan", run)
    # One tag: a fleet of one (the fan-out's plan of a cell), shown as one cell.
    tag = tag[0]
    as_json = run.as_json
    job = run_single(repo, repo.parse_tag(tag), "plan", run)
    session, result = job.session, job.stage
    summary = PlanSummary(*(int(result.counts.get(k, 0)) for k in ("add", "change", "destroy")))
    if as_json:
        echo_json({"deployment": session.deployment.to_dict(), "source": session.workdir.source.to_dict(),
                   "summary": result.counts, "plan_file": str(session.plan_path),
                   "plan": json.loads(session.ensure_plan_json().read_text(encoding="utf-8"))})
    else:
        click.echo(f"plan {tag}: {summary}  (saved: {shown_path(session.plan_path)})")
        if run.exports:
            click.echo(result.export_lines())
    if run.detailed_exitcode and summary.has_changes:
        sys.exit(2)


def promotion_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--skip-promotion-check --reason TEXT (apply): the override, recorded in the ledger."""
    func = click.option("--reason", metavar="TEXT",
                        help="Why the promotion check is skipped (required with --skip-promotion-check; "
                             "recorded in the ledger).")(func)
    return click.option("--skip-promotion-check", is_flag=True,
                        help="Apply although the commit has not succeeded in the previous env of "
                             "`environments` [env: TFDEPLOY_SKIP_PROMOTION_CHECK_REASON=TEXT skips with "
                             "that reason]. Never lifts the scan a protected env needs.")(func)


@click.command()
@click.option("--auto-approve", is_flag=True,
              help="Plan, check and apply in one command, without stopping for review (the plan is "
                   "checked exactly as a reviewed saved plan is).")
@click.option("--detailed-exitcode", is_flag=True,
              help="Exit 2 when every cell succeeded and any had changes (0: none had).")
@promotion_options
@exports_option
@json_option
@fleet_command
def apply(tag: tuple[str, ...], run: Any, repo: RepoContext) -> None:
    """Apply the saved plan of the same tag and commit.

    Refuses a plan made from another tag or commit (the tag moved) or a plan file that changed.
    With --auto-approve, plans into a saved plan, checks it as a reviewed one (backend, variables,
    addresses) and applies it, in one command.

    Promotion order: in env N of `environments`, the tagged commit must have been applied
    successfully for the team in env N-1 (see the ledger), unless --skip-promotion-check
    --reason TEXT. In a protected env (protected_envs), the commit must pass a checkov scan.

    \b
    Examples:
      tfdeploy plan --tag dev_us-east-1/research/1.0 && tfdeploy apply --tag dev_us-east-1/research/1.0
      tfdeploy apply --tag dev_global/research/1.0 --auto-approve
      tfdeploy apply --tag 'dev_*/research/1.1' --auto-approve --parallel 4   # global first
      tfdeploy apply --tag qa_us-east-1/research/1.1 --auto-approve --skip-promotion-check --reason 'CHG-7'
    """
    if wants_fanout(tag, run):
        run_fanout(repo, tag, "apply", run)
    # One tag: a fleet of one. The fan-out's apply of a cell (fleet/actions.apply_action: the
    # gates, the saved plan's checks, the ledger record) and the run's notification, shown as
    # one cell; a failure raises the cell's own error line and exit code.
    tag = tag[0]
    as_json = run.as_json
    job = run_single(repo, repo.parse_tag(tag), "apply", run)
    session, result = job.session, job.stage
    b = session.deployment.backend
    if as_json:
        echo_json({"deployment": session.deployment.to_dict(), "result": result.to_dict()})
    else:
        click.echo(f"applied {tag}: {result.exports['PLAN_SUMMARY']}; state s3://{b.bucket}/{b.key} "
                   f"({b.lock_description})")
        if run.exports:
            click.echo(result.export_lines())
    if run.detailed_exitcode and any(result.counts.get(k) for k in ("add", "change", "destroy")):
        sys.exit(2)


@click.command()
@click.option("--show-sensitive", is_flag=True,
              help="Print outputs marked sensitive in clear (default: <sensitive>, as Terraform does).")
@json_option
@tag_command
def output(tag: str, source, terraform_bin: str | None, show_sensitive: bool, as_json: bool,
           lock_timeout: float,
           repo: RepoContext) -> None:
    """Show the deployment's Terraform outputs (from its remote state).

    Outputs marked sensitive print as <sensitive> unless --show-sensitive.

    \b
    Example:
      tfdeploy output --tag dev_us-east-1/research/1.0 --json
    """
    from ..engine.redact import redact_outputs
    from ..engine.stages import init as run_init

    session = _open(repo, repo.parse_tag(tag), source, terraform_bin, True, lock_timeout=lock_timeout)
    run_init(session, quiet=True)
    shown = session.terraform.check("output", "-json", stream=False)
    values = json.loads(shown.stdout or "{}")
    if not show_sensitive:
        values = redact_outputs(values)
    if as_json:
        echo_json(values)
    elif not values:
        click.echo("no outputs")
    else:
        for name, item in values.items():
            value = item.get("value")
            click.echo(f"{name} = {value if value == '<sensitive>' else json.dumps(value)}")


@click.command()
@json_option
@tag_command
def show(tag: str, source, terraform_bin: str | None, as_json: bool, lock_timeout: float,
         repo: RepoContext) -> None:
    """Show the deployment's current state (terraform show).

    \b
    Example:
      tfdeploy show --tag dev_global/research/1.0
    """
    from ..engine.stages import init as run_init

    session = _open(repo, repo.parse_tag(tag), source, terraform_bin, as_json, lock_timeout=lock_timeout)
    run_init(session, quiet=True)
    if as_json:
        from ..engine.redact import redact_show

        shown = session.terraform.check("show", "-json", stream=False)
        echo_json(redact_show(json.loads(shown.stdout or "{}")))
    else:
        # Terraform's own text shows values derived from sensitive ones unmarked; scrub them.
        from ..engine.redact import scrub_text, sensitive_values

        shown = session.terraform.check("show", "-json", stream=False)
        secrets = sensitive_values(json.loads(shown.stdout or "{}"))
        text = session.terraform.check("show", "-no-color", stream=False).stdout
        click.echo(scrub_text(text, secrets), nl=False)


@click.command("run")
@click.option("--auto-approve", is_flag=True, help="Apply the plan without stopping for review.")
@click.option("--allow-missing", multiple=True, type=click.Choice(["tflint", "checkov"]),
              help="Skip this tool, visibly, when it is not installed (repeatable).")
@json_option
@tag_command
@run_options
def run(tag: str, run: Any, allow_missing: tuple[str, ...], repo: RepoContext) -> None:
    """Run the pipeline's stages for a tag in order: lint, scan, plan, apply.

    Stops at the first stage that fails. Without --auto-approve, stops after the plan so you
    can review it (then: tfdeploy apply --tag TAG).

    \b
    Examples:
      tfdeploy run --tag dev_us-east-1/research/1.0
      tfdeploy run --tag dev_us-east-1/research/1.0 --auto-approve --allow-missing tflint
    """
    from ..engine.flow import Flow
    from ..gates.findings import render_result

    say = (lambda text: click.echo(text, err=True)) if run.as_json else click.echo
    flow = Flow(tag, say)
    _run_stages(repo, repo.parse_tag(tag), run, flow, allow_missing)
    report = flow.report
    if run.as_json:
        echo_json(report.to_dict())
    else:
        for result in report.results:
            if result.findings:
                click.echo(render_result(result, exports=False))
        click.echo(f"run {tag}: " + ", ".join(f"{r.stage} {r.status}" for r in report.results))
    if not report.ok:
        if report.error:
            click.echo(f"tfdeploy: error: {report.error}", err=True)
        sys.exit(3 if report.error and "not found" in report.error else 1)


def _run_stages(repo: RepoContext, parsed: Any, run: Any, flow: Any, allow_missing: tuple[str, ...]) -> None:
    """`run`'s stages on the one path: its plan is `plan` of the tag (lint and scan run first,
    on the cell's work dir) and its apply is `apply` of that saved plan, each through the runner
    (run_single) with its cell action, ledger record and notification; one cell lock for all."""
    from ..engine.flow import Stopped
    from ..errors import TfdeployError
    from ..fleet.actions import apply_action, plan_action
    from ..fleet.options import PromotionOverride
    from ..results import SKIPPED, StageResult

    gates = flow.gates(repo_root=repo.root, settings=repo.settings, environ=os.environ,
                       allow_missing=allow_missing, terraform_bin=run.terraform_bin)
    try:
        # Recorded as auto-approved when nobody will review it (run --auto-approve).
        planned = run_single(repo, parsed, "plan", run, plan_action(gates, auto_approved=run.auto_approve))
        flow.end(planned.stage)
        if not run.auto_approve:
            flow.run("apply", lambda: StageResult("apply", SKIPPED, notes=(
                f"not applied: review the plan, then run tfdeploy apply --tag {parsed.name} "
                "(or tfdeploy run --auto-approve)",)))
            return
        flow.start("apply")
        # The saved plan just made, checked against the tag now, with the gates of every apply
        # (promotion, a protected env's scan under the committed policy): `apply --tag`'s action.
        override = PromotionOverride.requested(False, None, os.environ)
        applied = run_single(repo, parsed, "apply", run, apply_action(False, override))
        flow.end(applied.stage)
    except Stopped:
        pass  # a gate failed: its stage's line and findings say why
    except TfdeployError as exc:
        if flow.running is None:
            raise  # before any stage (the cell busy, the tag's git checks): one line, as every command
        flow.fail(exc)
