"""The runner's turns (fleet/runner.py, fleet/turns.py) with a test double for a cell's Terraform:
`FakeTerraformAction` sleeps where Terraform would run and counts how many run at once. What is
checked: many later cells planning ahead of a slow canary never deadlock the slots or the
threads, never run more Terraforms than --parallel, apply only after the canary, and are skipped
when it fails; nothing plans ahead of a global cell. The real Terraform path is
tests/fleet/test_plan_ahead.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tfdeploy.errors import TfdeployError
from tfdeploy.fleet.runner import Shared, plans_ahead, run_cells
from tfdeploy.fleet.schedule import schedule
from tfdeploy.fleet.turns import may_plan_ahead
from tfdeploy.model.tags import parse_tag

REGIONS = ("eu-central-1", "us-east-1", "us-west-2", "eu-west-1", "eu-west-2", "ap-south-1",
           "ap-northeast-1", "sa-east-1", "ca-central-1", "eu-north-1", "us-east-2")


class QuietDisplay:
    def add(self, cell: str, tag: str) -> None: ...
    def event(self, event) -> None: ...
    def tick(self) -> None: ...


class FakeTerraformAction:
    """Stands in for `apply --auto-approve`'s action: "plan" and "apply" are sleeps, counted while
    they run; a cell in `failing` fails its apply."""

    def __init__(self, canary_s: float = 0.6, step_s: float = 0.05, failing: tuple[str, ...] = ()):
        self.canary_s, self.step_s, self.failing = canary_s, step_s, failing
        self.canary = ""  # set by run(): the first Region of the schedule
        self.lock = threading.Lock()
        self.now = self.most = 0
        self.events: list[tuple[float, str, str]] = []

    def _terraform(self, cell: str, what: str, seconds: float) -> None:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            self.events.append((time.monotonic(), cell, what))
        time.sleep(seconds)
        with self.lock:
            self.now -= 1
            self.events.append((time.monotonic(), cell, f"{what} done"))

    def __call__(self, job):
        cell = job.tag.cell
        self._terraform(cell, "plan", self.step_s)
        if job.turn is not None:
            job.turn()
        self._terraform(cell, "apply", self.canary_s if cell == self.canary else self.step_s)
        if cell in self.failing:
            raise TfdeployError("apply failed")
        job.release()
        return "applied", (1, 0, 0)

    def when(self, cell: str, what: str) -> float:
        return next(t for t, c, w in self.events if c == cell and w == what)


def run(tmp_path: Path, scopes: tuple[str, ...], action, parallel: int, bake_s: float = 0.0):
    tags = [parse_tag(f"dev_{scope}/research/1.0") for scope in scopes]
    shared = Shared(tmp_path, {}, {}, None, "terraform", 0, {})
    steps = schedule(tags, "apply")
    action.canary = next(s.tag.cell for s in steps if s.tag.region)
    done = threading.Event()
    outcome = []

    def go() -> None:
        outcome.append(run_cells(steps, action, shared=shared, log_dir=tmp_path / "logs",
                                 parallel=parallel, display=QuietDisplay(), action_name="apply",
                                 bake_s=bake_s))
        done.set()

    threading.Thread(target=go, daemon=True).start()
    assert done.wait(60), "the run never ended: a deadlock between slots, threads and turns"
    return {r.cell: r for r in outcome[0].results}


@pytest.mark.parametrize("parallel", [1, 2, 4])
def test_many_cells_planning_ahead_of_a_slow_canary_never_deadlock_or_overrun_parallel(tmp_path, parallel):
    action = plans_ahead(FakeTerraformAction())
    results = run(tmp_path, REGIONS, action, parallel)
    assert {r.result for r in results.values()} == {"applied"}, results
    assert action.most <= parallel
    canary = action.canary
    assert canary == "dev-ap-northeast-1-research"  # the first Region by code: model/waves.py
    canary_done = action.when(canary, "apply done")
    later = [c for c in results if c != canary]
    # Applies only after the canary; with room for it (parallel > 1) some planned during its apply.
    assert all(action.when(c, "apply") >= canary_done for c in later)
    if parallel > 1:
        assert any(action.when(c, "plan done") < canary_done for c in later)


def test_a_failed_canary_skips_the_cells_that_planned_ahead_and_applies_none(tmp_path):
    action = plans_ahead(FakeTerraformAction(failing=("dev-eu-central-1-research",)))
    results = run(tmp_path, REGIONS[:5], action, 4)
    assert results["dev-eu-central-1-research"].result == "failed"
    for cell in ("dev-us-east-1-research", "dev-us-west-2-research", "dev-eu-west-1-research",
                 "dev-eu-west-2-research"):
        assert results[cell].result == "skipped"
        assert results[cell].error == "dev-eu-central-1-research did not succeed; its plan was discarded"
        assert not any(c == cell and w == "apply" for _t, c, w in action.events)


def test_a_cell_that_planned_ahead_applies_only_after_the_bake_between_waves(tmp_path):
    action = plans_ahead(FakeTerraformAction(canary_s=0.3))
    results = run(tmp_path, ("eu-central-1", "us-east-1", "us-west-2"), action, 4, bake_s=1.5)
    assert {r.result for r in results.values()} == {"applied"}
    canary_done = action.when("dev-eu-central-1-research", "apply done")
    for cell in ("dev-us-east-1-research", "dev-us-west-2-research"):
        assert action.when(cell, "plan done") < canary_done  # planned during the canary's apply
        assert action.when(cell, "apply") >= canary_done + 1.5  # ...applied after the bake


def test_nothing_plans_ahead_of_a_global_cell_nor_without_the_mark(tmp_path):
    marked = plans_ahead(FakeTerraformAction())
    run(tmp_path, ("global", "eu-central-1", "us-east-1"), marked, 4)
    global_done = marked.when("dev-global-research", "apply done")
    assert marked.when("dev-eu-central-1-research", "plan") >= global_done
    # A later cell plans ahead of the canary, never of the global cell.
    assert marked.when("dev-us-east-1-research", "plan") >= global_done
    assert marked.when("dev-us-east-1-research", "plan done") < marked.when("dev-eu-central-1-research", "apply done")
    unmarked = FakeTerraformAction()  # e.g. a reviewed apply: its plans exist already
    run(tmp_path, ("eu-central-1", "us-east-1"), unmarked, 4)
    assert unmarked.when("dev-us-east-1-research", "plan") >= unmarked.when("dev-eu-central-1-research", "apply done")


def test_may_plan_ahead_only_after_a_started_wave_of_regions():
    steps = schedule([parse_tag(f"dev_{s}/research/1.0") for s in ("global", "eu-central-1", "us-east-1")], "apply")
    by_cell = {s.tag.cell: s for s in steps}
    glob, canary, later = (by_cell[f"dev-{s}-research"] for s in ("global", "eu-central-1", "us-east-1"))
    assert not may_plan_ahead(glob, {"dev-global-research"}, set())  # nothing before it: it just starts
    assert not may_plan_ahead(canary, {"dev-global-research"}, {"dev-global-research"})  # after a global cell
    assert not may_plan_ahead(later, {"dev-global-research"}, {"dev-global-research"})  # canary not started
    assert may_plan_ahead(later, {"dev-global-research"}, {"dev-global-research", "dev-eu-central-1-research"})
