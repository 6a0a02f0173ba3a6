"""One run per cell per machine: the cell lock (issue 9, item 1). Real Terraform, moto, git."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.e2e.conftest import tfdeploy
from tests.safety.helpers_celllock import (
    CELL,
    TAG,
    finish,
    holder_script,
    last_line,
    leftovers,
    slow_repo,
    start,
    state_object,
)

pytestmark = pytest.mark.safety


def test_four_concurrent_applies_without_wait_one_wins_the_others_say_busy(tmp_path, sandbox_env):
    repo = slow_repo(tmp_path / "infra", delay=4)
    procs = [start(repo, "apply", "--tag", TAG, "--auto-approve") for _ in range(4)]
    results = [finish(p) for p in procs]

    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 1, 1, 1], results
    for code, out, err in results:
        assert "Traceback" not in err and "getwd" not in err and "Backend initialization required" not in err
        if code:
            line = last_line(err)
            assert line.startswith(f"tfdeploy: error: cell {CELL} is busy: pid "), err
            assert f"tfdeploy apply --tag {TAG}" in line and "--lock-timeout" in line
    assert leftovers(repo) == []
    state = state_object()
    assert [r["module"] for r in state["resources"]] == ["module.regional"]


def test_four_concurrent_applies_with_lock_timeout_run_one_after_another(tmp_path, sandbox_env):
    versions = ("1.0", "1.1", "1.2", "1.3")
    tags = tuple(f"dev_us-east-1/research/{v}" for v in versions)  # four versions of ONE cell
    repo = slow_repo(tmp_path / "infra", delay=2, tags=tags)
    procs = [start(repo, "apply", "--tag", name, "--auto-approve", "--lock-timeout", "300s") for name in tags]
    results = [finish(p) for p in procs]

    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    for _, out, err in results:
        assert "Traceback" not in err
    assert leftovers(repo) == []
    state = state_object()
    # Every apply changed the cell (another version each time), so each wrote state at least once.
    assert state["serial"] >= 4
    (cell,) = [r for r in state["resources"] if r["module"] == "module.regional"]
    assert cell["instances"][0]["attributes"]["input"]["value"]["version"] in versions


def test_busy_cell_refuses_every_command_in_one_line(tmp_path, sandbox_env):
    repo = slow_repo(tmp_path / "infra", delay=0)
    tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve")
    holder = subprocess.Popen(holder_script(repo / ".tfdeploy", 120), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        for args in (["init"], ["plan"], ["apply"], ["apply", "--auto-approve"], ["output"], ["show"],
                     ["lint", "--allow-missing", "tflint"], ["scan"], ["run"]):
            proc = tfdeploy(repo, *args, "--tag", TAG, check=False)
            assert proc.returncode == 1, (args, proc.stderr)
            assert "Traceback" not in proc.stderr
            line = last_line(proc.stderr)
            assert line.startswith(f"tfdeploy: error: cell {CELL} is busy: pid {holder.pid} "
                                   f"(tfdeploy apply --tag {TAG}) since "), (args, proc.stderr)
        started = time.monotonic()
        waited = tfdeploy(repo, "plan", "--tag", TAG, "--lock-timeout", "2s", check=False)
        assert waited.returncode == 1 and time.monotonic() - started >= 2
        assert f"cell {CELL} is still busy after 2s: pid {holder.pid}" in last_line(waited.stderr)
    finally:
        holder.kill()
        holder.wait()


def test_lock_left_by_a_killed_process_and_its_half_swapped_dirs_are_no_problem(tmp_path, sandbox_env):
    repo = slow_repo(tmp_path / "infra", delay=0)
    tfdeploy(repo, "plan", "--tag", TAG)
    holder = subprocess.Popen(holder_script(repo / ".tfdeploy", 120), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    os.kill(holder.pid, signal.SIGKILL)  # the lock file stays, with a dead pid in it
    holder.wait()
    assert (repo / ".tfdeploy" / "locks" / f"{CELL}.lock").is_file()
    # What a run killed mid-swap leaves: a half-built staging dir and a moved-aside old dir.
    work = repo / ".tfdeploy" / "work"
    (work / f".{CELL}.k3j2h1x0").mkdir()
    (work / f".{CELL}.old.999999").mkdir()

    tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve")
    assert leftovers(repo) == []
    assert state_object()["resources"]


def test_lock_timeout_reaches_terraforms_state_lock(tmp_path, sandbox_env):
    """A Terraform state lock held by another machine (here: a run with another cache dir) is
    waited for with the same --lock-timeout."""
    repo = slow_repo(tmp_path / "infra", delay=6)
    other = start(repo, "apply", "--tag", TAG, "--auto-approve",
                  env={"TFDEPLOY_CACHE_DIR": str(tmp_path / "other-machine")})
    time.sleep(0.5)
    import boto3

    from tests.safety.helpers_celllock import wait_for

    table = boto3.client("dynamodb", region_name="us-east-1")
    wait_for(lambda: any("Info" in i for i in table.scan(TableName="demo-tfstate-lock-dev")["Items"]),
             what="the other run's state lock")
    mine = tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve", "--lock-timeout", "120s", check=False)
    code, _, err = finish(other)
    assert code == 0, err
    assert mine.returncode == 0, mine.stderr
