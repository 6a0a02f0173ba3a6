"""`tfdeploy run`: the stages in pipeline order for one tag, stopping at the first failure.

lint -> scan -> plan -> apply, all on the same work dir (the tagged commit), exactly the order
the CodePipeline runs them in. Apply happens only when asked (`--auto-approve`): a local run
otherwise stops after showing the plan.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Collection, Mapping

from ..errors import TfdeployError
from ..model.settings import Settings
from ..model.tags import Tag
from ..results import FAILED, SKIPPED, StageResult
from .stages import SourceOptions, hold_cell, init_without_backend, open_session, plan, terraform_base_env

STAGE_ORDER = ("lint", "scan", "plan", "apply")


@dataclass
class FlowReport:
    tag: str
    results: list[StageResult] = field(default_factory=list)
    stopped_at: str | None = None  # the stage that failed, if any
    error: str | None = None  # a tool or config error (not findings) that stopped the run
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return self.stopped_at is None

    def to_dict(self) -> dict[str, Any]:
        return {"tag": self.tag, "ok": self.ok, "stopped_at": self.stopped_at, "error": self.error,
                "stages": [r.to_dict() for r in self.results]}


def run_flow(repo_root: Path, tag: Tag, *, overrides: Mapping[str, Any], settings: Settings,
             environ: Mapping[str, str] = os.environ, options: SourceOptions = SourceOptions(),
             allow_missing: Collection[str] = (), auto_approve: bool = False,
             terraform_bin: str | None = None, sink: IO[str] | None = None,
             progress: Callable[[str], None] = print, lock_timeout_s: float = 0) -> FlowReport:
    # One cell lock for the whole run: no other run of the cell slips in between plan and apply.
    with hold_cell(repo_root, tag, environ=environ, timeout_s=lock_timeout_s):
        return _run_flow(repo_root, tag, overrides=overrides, settings=settings, environ=environ,
                         options=options, allow_missing=allow_missing, auto_approve=auto_approve,
                         terraform_bin=terraform_bin, sink=sink, progress=progress,
                         lock_timeout_s=lock_timeout_s)


def _run_flow(repo_root: Path, tag: Tag, *, overrides: Mapping[str, Any], settings: Settings,
              environ: Mapping[str, str], options: SourceOptions, allow_missing: Collection[str],
              auto_approve: bool, terraform_bin: str | None, sink: IO[str] | None,
              progress: Callable[[str], None], lock_timeout_s: float) -> FlowReport:
    from ..gates.lint import run_lint
    from ..gates.scan import run_scan

    report = FlowReport(tag.name)
    session = open_session(repo_root, tag, overrides=overrides, environ=environ, options=options,
                           terraform_bin=terraform_bin, sink=sink, err_sink=sink, lock_timeout_s=lock_timeout_s)
    workdir = session.workdir
    env = session.deployment.tag.env

    def lint() -> StageResult:
        failure = init_without_backend(workdir, repo_root, environ, terraform_bin)
        return run_lint(workdir.path, repo_root=repo_root, allow_missing=allow_missing,
                        environ=terraform_base_env(repo_root, environ),
                        results_dir=workdir.results_dir, initialised=failure is None,
                        init_failure=failure)

    def scan() -> StageResult:
        baseline = workdir.path / settings.checkov_baseline if settings.checkov_baseline else None
        return run_scan(workdir.path, target=session.deployment.target_module, repo_root=repo_root, env=env,
                        soft_fail_envs=settings.scan_soft_fail_envs, baseline=baseline,
                        allow_missing=allow_missing, environ=environ, results_dir=workdir.results_dir)

    def apply() -> StageResult:
        if not auto_approve:
            return StageResult("apply", SKIPPED, notes=(
                f"not applied: review the plan, then run tfdeploy apply --tag {tag.name} "
                "(or tfdeploy run --auto-approve)",))
        # The same gates and apply as `tfdeploy apply` (fleet/applycell.py): the protected scan
        # runs again under the committed policy, whatever the scan stage above decided.
        from ..fleet.applycell import apply_cell
        from ..fleet.options import PromotionOverride
        from ..fleet.recording import recorded

        # Recorded in the ledger like every apply that reaches Terraform (a refusal is not).
        with recorded("apply", environ, lambda text: progress(f"tfdeploy: warning: {text}")) as rec:
            return apply_cell(rec, session, environ, auto_approve=False, current=workdir.source,
                              override=PromotionOverride.requested(False, None, environ), note=progress)

    steps: dict[str, Callable[[], StageResult]] = {
        "lint": lint, "scan": scan, "plan": lambda: plan(session)[0], "apply": apply}
    for number, name in enumerate(STAGE_ORDER, start=1):
        progress(f"[{number}/{len(STAGE_ORDER)}] {name} ...")
        started = time.monotonic()
        try:
            result = steps[name]()
        except TfdeployError as exc:
            # A tool or config error ends the run like a failed stage; its exit code is kept.
            result = StageResult(name, FAILED, round(time.monotonic() - started, 3), notes=(str(exc),))
            report.error, report.exit_code = str(exc), exc.exit_code
        report.results.append(result)
        summary = f" {result.exports['PLAN_SUMMARY']}" if "PLAN_SUMMARY" in result.exports else ""
        progress(f"[{number}/{len(STAGE_ORDER)}] {name} {result.status}{summary} ({result.duration_s:.1f}s)"
                 + "".join(f"\n      {note}" for note in result.notes))
        if result.status == FAILED:
            report.stopped_at = name
            report.exit_code = report.exit_code or 1
            break
    return report
