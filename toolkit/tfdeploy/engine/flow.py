"""`tfdeploy run`: the stages in pipeline order for one tag, stopping at the first failure.

lint -> scan -> plan -> apply, all on the same work dir (the tagged commit), exactly the order
the CodePipeline runs them in. The plan and the apply are those of `plan` and `apply` of one tag
(the runner's cell actions, with their recording and notification: cli/deploy.py `run`); this
module keeps the stages' order, their progress lines and report, and runs the two gates on the
cell's work dir once the plan's action has opened it. Apply happens only when asked
(`--auto-approve`): a local run otherwise stops after showing the plan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Mapping

from ..errors import TfdeployError
from ..model.settings import Settings
from ..results import FAILED, StageResult

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


class Stopped(TfdeployError):
    """A gate failed (its findings, or its error, are in the report): the cell's run ends there,
    before its plan."""


class Flow:
    """The run's stages as they happen: a line as each starts and ends, and the report."""

    def __init__(self, tag: str, progress: Callable[[str], None]):
        self.report = FlowReport(tag)
        self._progress = progress
        self._stage: str | None = None
        self._started = 0.0

    @property
    def running(self) -> str | None:
        """The stage started and not yet ended, if any."""
        return self._stage

    def _counter(self, name: str) -> str:
        return f"[{STAGE_ORDER.index(name) + 1}/{len(STAGE_ORDER)}]"

    def start(self, name: str) -> None:
        self._stage, self._started = name, time.monotonic()
        self._progress(f"{self._counter(name)} {name} ...")

    def end(self, result: StageResult) -> StageResult:
        self._stage = None
        self.report.results.append(result)
        summary = f" {result.exports['PLAN_SUMMARY']}" if "PLAN_SUMMARY" in result.exports else ""
        self._progress(f"{self._counter(result.stage)} {result.stage} {result.status}{summary} "
                       f"({result.duration_s:.1f}s)" + "".join(f"\n      {note}" for note in result.notes))
        if result.status == FAILED:
            self.report.stopped_at = result.stage
            self.report.exit_code = self.report.exit_code or 1
        return result

    def fail(self, exc: TfdeployError) -> StageResult:
        """A tool or config error ends the running stage like a failed stage; its exit code is kept."""
        assert self._stage is not None
        self.report.error, self.report.exit_code = str(exc), exc.exit_code
        return self.end(StageResult(self._stage, FAILED, round(time.monotonic() - self._started, 3),
                                    notes=(str(exc),)))

    def run(self, name: str, step: Callable[[], StageResult]) -> StageResult:
        self.start(name)
        try:
            result = step()
        except TfdeployError as exc:
            return self.fail(exc)
        return self.end(result)

    def gates(self, *, repo_root: Path, settings: Settings, environ: Mapping[str, str],
              allow_missing: Collection[str], terraform_bin: str | None) -> Callable[[Any], None]:
        """What the plan's action runs on the cell's opened work dir before it plans
        (fleet/actions.plan_action): lint, then scan, then the plan stage starts. The first gate
        that fails raises `Stopped`: the cell ends there, unplanned."""

        def before_plan(session: Any) -> None:
            steps = _gate_steps(session, repo_root=repo_root, settings=settings, environ=environ,
                                allow_missing=allow_missing, terraform_bin=terraform_bin)
            for name, step in steps:
                result = self.run(name, step)
                if result.status == FAILED:
                    raise Stopped(f"{name} failed")
            self.start("plan")

        return before_plan


def _gate_steps(session: Any, *, repo_root: Path, settings: Settings, environ: Mapping[str, str],
                allow_missing: Collection[str],
                terraform_bin: str | None) -> list[tuple[str, Callable[[], StageResult]]]:
    """lint and scan of the cell's work dir (the tagged commit, with its generated files)."""
    from ..gates.lint import run_lint
    from ..gates.scan import run_scan
    from .stages import init_without_backend, terraform_base_env

    workdir = session.workdir

    def lint() -> StageResult:
        failure = init_without_backend(workdir, repo_root, environ, terraform_bin)
        return run_lint(workdir.path, repo_root=repo_root, allow_missing=allow_missing,
                        environ=terraform_base_env(repo_root, environ),
                        results_dir=workdir.results_dir, initialised=failure is None,
                        init_failure=failure)

    def scan() -> StageResult:
        baseline = workdir.path / settings.checkov_baseline if settings.checkov_baseline else None
        return run_scan(workdir.path, target=session.deployment.target_module, repo_root=repo_root,
                        env=session.deployment.tag.env, soft_fail_envs=settings.scan_soft_fail_envs,
                        baseline=baseline, allow_missing=allow_missing, environ=environ,
                        results_dir=workdir.results_dir)

    return [("lint", lint), ("scan", scan)]
