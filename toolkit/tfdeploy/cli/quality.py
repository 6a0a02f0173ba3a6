"""`tfdeploy lint` and `tfdeploy scan`: the quality-gate stages on a Terraform directory.

Human output: a findings table, notices, one summary line, then (with --exports) KEY=VALUE lines
a script can read. Exit codes: 0 passed (or an allowed skip), 1 findings that fail the policy, 2 usage or
config error, 3 a required tool is missing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import click

from ..errors import ConfigError
from ..results import StageResult
from .common import (
    RepoContext,
    echo_json,
    exports_option,
    hold_cell_for_command,
    json_option,
    lock_timeout_option,
    repo_command,
    tag_options,
)


def _stage_options(allow: tuple[str, ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        func = exports_option(func)
        func = click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path),
                            help="Where <stage>.result.json goes [default: DIR/.tfdeploy-results].")(func)
        func = click.option("--junit", "junit", type=click.Path(dir_okay=False, path_type=Path),
                            help="Also write a JUnit XML report here (CodeBuild test reports).")(func)
        func = click.option("--allow-missing", "allow_missing", multiple=True, type=click.Choice(allow),
                            help="Skip this tool, visibly, when it is not installed (repeatable).")(func)
        func = click.option("--dir", "directory", default=".", show_default=True,
                            type=click.Path(exists=True, file_okay=False, path_type=Path),
                            help="Terraform root directory to check.")(func)
        return func
    return decorate


def _repo_for(repo: RepoContext, directory: Path) -> RepoContext:
    """Without --repo, the repo is the one containing --dir (not the current directory)."""
    if repo.start == Path("."):
        return RepoContext(directory, repo.overrides, repo.verbose)
    return repo


def _tag_workdir(repo: RepoContext, tag: str, source, lock_timeout: float):
    """Export the tag's commit into its work dir (as plan would) and return it."""
    from ..engine.stages import open_workdir

    parsed = repo.parse_tag(tag)
    hold_cell_for_command(repo, parsed, lock_timeout)  # until the command ends
    workdir = open_workdir(repo.root, parsed, overrides=repo.overrides, environ=os.environ, options=source)
    click.echo(f"tfdeploy: {tag} @ {workdir.source.commit[:12]}; work dir {workdir.path}", err=True)
    return workdir


def _report(result: StageResult, as_json: bool, results_dir: Path, exports: bool) -> None:
    from ..gates.findings import render_result

    path = results_dir / f"{result.stage}.result.json"
    if as_json:
        echo_json({**result.to_dict(), "result_file": str(path)})
    else:
        click.echo(f"wrote {path}", err=True)
        click.echo(render_result(result, exports=exports))
    if result.status == "failed":
        raise click.exceptions.Exit(1)


@click.command("lint")
@_stage_options(("tflint",))
@json_option
@lock_timeout_option
@tag_options(required=False)
@repo_command
def lint(directory: Path, allow_missing: tuple[str, ...], junit: Path | None, results_dir: Path | None,
         exports: bool, as_json: bool, lock_timeout: float, tag: str | None, source, repo: RepoContext) -> None:
    """Lint Terraform: terraform fmt -check, terraform validate (when initialised), tflint.

    tflint uses the repo's .tflint.hcl. A missing tflint fails with exit 3 unless
    --allow-missing tflint, which skips it visibly (TFLINT_STATUS=skipped).

    With --tag, lints the tagged commit in the tag's work dir (as plan would deploy it), after
    terraform init -backend=false. When that init fails only because a provider or remote module
    could not be downloaded (no network), validate is skipped, naming what was not checked; any
    other init error (a missing module dir, invalid HCL) fails the stage.

    \b
    Examples:
      tfdeploy lint --tag dev_us-east-1/research/1.0
      tfdeploy lint --dir .
      tfdeploy lint --dir . --junit reports/lint.xml --allow-missing tflint
    """
    from ..gates.findings import default_results_dir
    from ..gates.lint import run_lint

    init_kwargs = {}
    if tag:
        from ..engine.stages import init_without_backend

        workdir = _tag_workdir(repo, tag, source, lock_timeout)
        directory = workdir.path
        failure = init_without_backend(workdir, repo.root, os.environ)
        init_kwargs = {"initialised": failure is None, "init_failure": failure}
    else:
        repo = _repo_for(repo, directory)
    results_dir = results_dir or default_results_dir(directory.resolve())
    from ..engine.stages import terraform_base_env

    result = run_lint(directory, repo_root=repo.root, allow_missing=allow_missing,
                      environ=terraform_base_env(repo.root, os.environ),
                      results_dir=results_dir, junit_path=junit, **init_kwargs)
    _report(result, as_json, results_dir, exports)


@click.command("scan")
@_stage_options(("checkov",))
@click.option("--env", metavar="ENV",
              help="Environment whose policy applies: soft fail in scan_soft_fail_envs "
                   "(setting, default: dev), hard fail elsewhere and without --env.")
@click.option("--baseline", type=click.Path(dir_okay=False, path_type=Path),
              help="checkov baseline file: failures listed there count as skipped "
                   "[default: setting checkov_baseline].")
@click.option("--plan", "plan_json", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Scan this plan JSON (terraform show -json) instead; --dir is the code it came from.")
@click.option("--checkov", "checkov_path", metavar="PATH",
              help="The checkov executable to run [default: $TFDEPLOY_CHECKOV, PATH, <repo>/.venv-checkov, "
                   "the managed install of `tfdeploy tools install checkov`].")
@click.option("--saved-plan", is_flag=True,
              help="With --tag: scan the tag's saved plan (from tfdeploy plan) instead of the code.")
@json_option
@lock_timeout_option
@tag_options(required=False)
@repo_command
def scan(directory: Path, allow_missing: tuple[str, ...], junit: Path | None, results_dir: Path | None,
         exports: bool, env: str | None, baseline: Path | None, plan_json: Path | None, checkov_path: str | None,
         saved_plan: bool, as_json: bool, lock_timeout: float, tag: str | None, source, repo: RepoContext) -> None:
    """Security-scan Terraform with checkov (offline: --skip-download).

    Failed checks fail the stage except in soft-fail envs. Inline skips need a reason
    (#checkov:skip=CKV_AWS_20:<why>); one without fails the stage in every env.

    With --tag, scans the tagged commit in the tag's work dir under the tag's env policy.

    \b
    Examples:
      tfdeploy scan --tag prod_eu-central-1/risk/2.0
      tfdeploy scan --dir . --env prod
      tfdeploy scan --dir . --env dev --junit reports/checkov.xml
      tfdeploy scan --dir . --env prod --plan plan.json
      tfdeploy plan --tag dev_global/research/1.0 && tfdeploy scan --tag dev_global/research/1.0 --saved-plan
    """
    from ..gates.findings import default_results_dir
    from ..gates.scan import run_scan, scan_plan

    if saved_plan and not tag:
        raise click.UsageError("--saved-plan needs --tag (the plan saved by tfdeploy plan --tag TAG)")
    if tag and (env is not None or baseline is not None):
        # A tag's scan is a gate: its env and accepted findings are the committed policy's.
        raise ConfigError(f"{'--env' if env is not None else '--baseline'} cannot be given with --tag: a "
                          "tag's scan runs under its own env's committed policy (scan_soft_fail_envs, "
                          "checkov_baseline in pyproject.toml); drop the option")
    if saved_plan:
        from ..engine.stages import open_workdir, saved_plan_json

        parsed = repo.parse_tag(tag)
        hold_cell_for_command(repo, parsed, lock_timeout)
        workdir = open_workdir(repo.root, parsed, overrides=repo.overrides, environ=os.environ, reuse=True)
        directory = workdir.path
        env = env or workdir.deployment.tag.env
        plan_json = saved_plan_json(workdir, repo.root, os.environ)
    elif tag:
        workdir = _tag_workdir(repo, tag, source, lock_timeout)
        directory = workdir.path
        env = env or workdir.deployment.tag.env
    else:
        repo = _repo_for(repo, directory)
    # A tag's scan covers what its cell deploys (gates/scope.py), as the apply's protected scan does.
    target = workdir.deployment.target_module if tag else None
    settings = repo.settings
    if env is not None and env not in settings.environments:
        raise ConfigError(f"--env {env} is not one of the configured environments "
                          f"({', '.join(settings.environments)})")
    soft_fail_envs = settings.scan_soft_fail_envs
    if tag:
        # The committed policy of the default branch and the tagged commit, the stricter of the
        # two, as an apply's protected scan reads it (gates/policy.py).
        from ..gates.policy import policy_settings, stricter_baseline
        from ..gates.protected import soft_fail_envs as strict_soft_fail

        policy = policy_settings(repo.root, directory, os.environ)
        soft_fail_envs = tuple(sorted(strict_soft_fail(policy)))
        accepted = stricter_baseline(policy)
        baseline = directory / accepted if accepted else None
    elif baseline is None and settings.checkov_baseline:
        baseline = repo.root / settings.checkov_baseline
    results_dir = results_dir or default_results_dir(directory.resolve())
    environ = {**os.environ, "TFDEPLOY_CHECKOV": checkov_path} if checkov_path else None
    common = dict(repo_root=repo.root, env=env, soft_fail_envs=soft_fail_envs, baseline=baseline,
                  allow_missing=allow_missing, results_dir=results_dir, junit_path=junit, environ=environ)
    if plan_json is not None:
        result = scan_plan(plan_json, source_dir=directory, target=target, **common)
    else:
        result = run_scan(directory, target=target, **common)
    _report(result, as_json, results_dir, exports)
