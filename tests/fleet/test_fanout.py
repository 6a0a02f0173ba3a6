"""Fan-out end to end: real git tags, the embedded Terraform, moto. One release of 3 Regions and
global, in parallel; one cell fails alone; --only-failed after the fix; a failing global skips its
Regions; a busy cell retried."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy
from tests.statecheck import state_keys, state_of

BUCKET = "demo-tfstate-dev"
TEAM_VARS = "envs/dev/research/variables.tfvars"
REGIONS = ("us-east-1", "eu-central-1", "us-west-2")


def commit(repo: Path, files: dict[str, str], message: str) -> None:
    for rel, text in files.items():
        (repo / rel).write_text(text)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", message)


def stamps(log: str) -> tuple[str, str]:
    """When a cell started and finished, from the first and last lines of its log."""
    text = Path(log).read_text()
    started = re.search(r"^# tfdeploy \w+ \S+: started (\S+)$", text, re.M).group(1)
    finished = re.findall(r"^# finished (\S+): ", text, re.M)[-1]
    return started, finished


def apply_began(log: str) -> str:
    """When a cell's apply began: its turn after planning ahead of it (fleet/turns.py), else the
    cell's start (it started at its turn)."""
    text = Path(log).read_text()
    turn = re.search(r"^tfdeploy: turn at (\S+): ", text, re.M)
    return turn.group(1) if turn else stamps(log)[0]


def interrupted_after(run, line: str, settle_s: float) -> str:
    """SIGTERM a fan-out of eu-central-1 then us-east-1 (--parallel 1) once it printed `line` and
    `settle_s` more passed (inside the first cell's slow apply); its output, once it ended 143
    with the first cell interrupted and the second never started."""
    import os
    import signal

    run.wait_for(line)
    time.sleep(settle_s)
    os.kill(run.proc.pid, signal.SIGTERM)
    assert run.finish() == 143, run.stderr
    out = "".join(run.out)
    assert re.search(r"^dev-eu-central-1-research\s+\S+\s+interrupted\s", out, re.M), out
    assert re.search(r"^dev-us-east-1-research\s+\S+\s+skipped\s", out, re.M), out
    assert "Traceback" not in run.stderr
    return out


def assert_first_cell_saved_and_unlocked() -> None:
    """Terraform saved what it created and released its lock; the other cell was never touched."""
    import boto3

    assert state_keys(BUCKET) == ["research/dev-eu-central-1/terraform.tfstate"]
    assert [r["type"] for r in state_of(BUCKET, "research/dev-eu-central-1/terraform.tfstate")["resources"]] == [
        "terraform_data"]
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName="demo-tfstate-lock-dev")["Items"]
    assert not any("Info" in i for i in items)


def message_of(key: str) -> str:
    state = state_of(BUCKET, key)
    [resource] = state["resources"]
    assert resource["module"] == "module.regional"
    [instance] = resource["instances"]
    assert instance.get("status") != "tainted", instance
    return instance["attributes"]["input"]["value"]["message"]


def test_release_fans_out_global_first_a_failure_stays_alone_and_only_failed_reruns_it(repo):
    # us-west-2 allowed and broken: its provisioner runs `sleep -1`, which exits 1. It is in the
    # last wave (global, then the canary eu-central-1, then us-east-1 and us-west-2), so its
    # failure stays alone (before waves, eu-central-1 was the broken one; as the canary its failure
    # now stops the other Regions: test_a_failing_canary_stops_the_other_regions).
    commit(repo, {TEAM_VARS: 'account = "111111111111"\nallowed_regions = ["us-east-1", "eu-central-1", '
                             '"us-west-2"]\n',
                  "envs/dev/research/us-west-2.tfvars": "apply_delay_seconds = -1\n"}, "release 1.0")
    for scope in (*REGIONS, "global"):
        tag(repo, f"dev_{scope}/research/1.0")
    tag(repo, "dev_us-east-1/risk/1.0")  # another team: not selected
    tfdeploy(repo, "bootstrap", "--env", "dev")

    run = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "3",
                   "--json", check=False)
    assert run.returncode == 1, run.stderr
    doc = json.loads(run.stdout)
    assert doc["ok"] is False
    results = {c["cell"]: c for c in doc["cells"]}
    assert list(results) == ["dev-global-research", "dev-eu-central-1-research", "dev-us-east-1-research",
                             "dev-us-west-2-research"]
    assert {c: r["result"] for c, r in results.items()} == {
        "dev-global-research": "applied", "dev-eu-central-1-research": "applied",
        "dev-us-east-1-research": "applied", "dev-us-west-2-research": "failed"}
    assert all(set(c) == {"tag", "cell", "result", "add", "change", "destroy", "duration_s", "log"}
               for c in doc["cells"])
    assert (results["dev-eu-central-1-research"]["add"], results["dev-eu-central-1-research"]["destroy"]) == (1, 0)
    # The global cell finished before any regional cell started.
    global_done = stamps(results["dev-global-research"]["log"])[1]
    assert all(stamps(results[f"dev-{r}-research"]["log"])[0] >= global_done for r in REGIONS)
    # The failure: reported in one line naming the cell, its log's tail under its name.
    assert "[dev-us-west-2-research] failed" in run.stderr
    assert re.search(r"^\[dev-us-west-2-research\] \| .*sleep", run.stderr, re.M), run.stderr
    assert run.stderr.strip().splitlines()[-1].startswith(
        "tfdeploy: error: 1 of 4 cells did not succeed (dev-us-west-2-research)")
    assert "Traceback" not in run.stderr
    # Terraform's own output is in the logs, not interleaved in the run's output.
    assert "Apply complete!" in Path(results["dev-us-east-1-research"]["log"]).read_text()
    assert "Apply complete!" not in run.stderr + run.stdout
    # States at the right keys; the other team untouched.
    assert message_of("research/dev-eu-central-1/terraform.tfstate") == "hello from eu-central-1"
    assert message_of("research/dev-us-east-1/terraform.tfstate") == "hello from N. Virginia from us-east-1"
    assert "research/dev-global/terraform.tfstate" in state_keys(BUCKET)
    assert not any(k.startswith("risk/") for k in state_keys(BUCKET))

    # Fix the Region's tfvars, move its tag to the fix, run only what failed.
    commit(repo, {"envs/dev/research/us-west-2.tfvars": 'greeting = "hallo"\n'}, "fix us-west-2")
    git(repo, "tag", "-f", "-a", "dev_us-west-2/research/1.0", "-m", "release (fixed)")
    again = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--only-failed", "--json")
    assert [(c["cell"], c["result"]) for c in json.loads(again.stdout)["cells"]] == [
        ("dev-us-west-2-research", "applied")]
    assert message_of("research/dev-us-west-2/terraform.tfstate") == "hallo from us-west-2"
    assert state_keys(BUCKET) == sorted(f"research/dev-{s}/terraform.tfstate" for s in (*REGIONS, "global"))
    done = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--only-failed")
    assert "nothing to run again" in done.stdout

    # Exact tags repeated; nothing changed -> --detailed-exitcode 0; a busy cell is retried.
    from tfdeploy.engine.celllock import cell_lock

    held, seen_busy = threading.Event(), threading.Event()

    def hold_until_the_fanout_found_it_busy():
        # Released once the fan-out said the cell is busy (not after a fixed time: how soon the
        # fan-out reaches the cell depends on the machine's load and on its checks before cells).
        with cell_lock(repo / ".tfdeploy", "dev-us-east-1-research"):
            held.set()
            seen_busy.wait(60)

    holder = threading.Thread(target=hold_until_the_fanout_found_it_busy)
    holder.start()
    held.wait(5)
    import subprocess

    from tests.e2e.conftest import TFDEPLOY

    proc = subprocess.Popen([TFDEPLOY, "plan", "--tag", "dev_us-east-1/research/1.0", "--tag",
                             "dev_us-west-2/research/1.0", "--retry", "1", "--detailed-exitcode"],
                            cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "] retry: " in line:
            seen_busy.set()
    seen_busy.set()
    err = proc.stderr.read()
    proc.wait(timeout=300)
    holder.join()
    plan = subprocess.CompletedProcess(proc.args, proc.returncode, "".join(lines), err)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert re.search(r"^\[dev-us-east-1-research\] retry: attempt 2 of 2 in 2s after: cell "
                     r"dev-us-east-1-research is busy", plan.stdout, re.M), plan.stdout
    assert "[dev-us-east-1-research] planned +0 ~0 -0" in plan.stdout


def test_a_failing_global_skips_its_regions(repo):
    # A malformed global-only tfvars: the global cell fails.
    commit(repo, {"envs/dev/research/global.tfvars": 'apply_delay_seconds = \n'}, "broken global")
    tag(repo, "dev_global/research/2.0")
    tag(repo, "dev_us-east-1/research/2.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    run = tfdeploy(repo, "plan", "--tag", "dev_*/research/2.0", check=False)
    assert run.returncode == 1
    assert "[dev-global-research] failed" in run.stdout
    assert ("[dev-us-east-1-research] skipped: dev-global-research did not succeed" in run.stdout), run.stdout
    assert "[dev-us-east-1-research] start" not in run.stdout
    assert state_keys(BUCKET) == []
    assert run.stderr.strip().splitlines() == [
        "tfdeploy: error: 2 of 2 cells did not succeed (dev-global-research, dev-us-east-1-research); see "
        "their logs, fix, then run the same command with --only-failed"]
    missing = tfdeploy(repo, "plan", "--tag", "prod_*/research/2.0", check=False)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "tfdeploy: error: --tag 'prod_*/research/2.0' matches no deployment tag in this repo; see "
        "tfdeploy tags list"]


def test_a_failing_canary_stops_the_other_regions_and_only_failed_reruns_them(repo):
    """Waves (default global, one canary Region, the rest): the canary eu-central-1 fails, so
    us-east-1 and us-west-2 never start; the global cell stays applied; --only-failed after the fix
    runs the canary first again, then the rest, and never re-applies the global cell."""
    commit(repo, {TEAM_VARS: 'account = "111111111111"\nallowed_regions = ["us-east-1", "eu-central-1", '
                             '"us-west-2"]\n',
                  "envs/dev/research/eu-central-1.tfvars": "apply_delay_seconds = -1\n"}, "release 1.0")
    for scope in (*REGIONS, "global"):
        tag(repo, f"dev_{scope}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    run = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "3",
                   "--json", check=False)
    assert run.returncode == 1, run.stderr
    cells = [(c["cell"], c["result"]) for c in json.loads(run.stdout)["cells"]]
    assert cells == [("dev-global-research", "applied"), ("dev-eu-central-1-research", "failed"),
                     ("dev-us-east-1-research", "skipped"), ("dev-us-west-2-research", "skipped")]
    assert "[dev-us-east-1-research] skipped: dev-eu-central-1-research did not succeed" in run.stderr
    # The canary's failed apply saved what it did; the other Regions never ran.
    assert state_keys(BUCKET) == ["research/dev-eu-central-1/terraform.tfstate",
                                  "research/dev-global/terraform.tfstate"]
    commit(repo, {"envs/dev/research/eu-central-1.tfvars": 'greeting = "hallo"\n'}, "fix eu-central-1")
    git(repo, "tag", "-f", "-a", "dev_eu-central-1/research/1.0", "-m", "release (fixed)")
    again = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--only-failed", "--json")
    rerun = {c["cell"]: c for c in json.loads(again.stdout)["cells"]}
    assert list(rerun) == ["dev-eu-central-1-research", "dev-us-east-1-research", "dev-us-west-2-research"]
    assert {c["result"] for c in rerun.values()} == {"applied"}
    canary_done = stamps(rerun["dev-eu-central-1-research"]["log"])[1]
    assert all(apply_began(rerun[f"dev-{r}-research"]["log"]) >= canary_done for r in ("us-east-1", "us-west-2"))
    assert message_of("research/dev-eu-central-1/terraform.tfstate") == "hallo from eu-central-1"


def test_interrupt_stops_running_cells_gracefully_and_starts_no_more(repo):
    from tests.safety.test_signals import Run

    for scope in ("eu-central-1", "us-east-1"):
        tag(repo, f"dev_{scope}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    run = Run(repo, "apply", "--tag", "dev_eu-central-1/research/1.0", "--tag", "dev_us-east-1/research/1.0",
              "--auto-approve", "--parallel", "1", env={"TF_VAR_apply_delay_seconds": "4"})
    out = interrupted_after(run, "[dev-eu-central-1-research] plan +1 ~0 -0", 1.5)
    assert "[dev-us-east-1-research] start" not in out
    errors = [line for line in run.stderr.splitlines() if line.startswith("tfdeploy: error:")]
    assert errors == ["tfdeploy: error: interrupted (SIGTERM); running cells were stopped gracefully, no new "
                      "ones started; see the matrix, then run again with --only-failed"], run.stderr
    assert_first_cell_saved_and_unlocked()
    other = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--only-failed",
                     check=False)
    assert other.returncode == 2 and "no previous apply of --tag dev_*/research/1.0" in other.stderr
    again = tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.0", "--tag",
                     "dev_eu-central-1/research/1.0", "--auto-approve", "--only-failed")
    assert "running again 2 of 2 cells" in again.stdout
    assert sorted(state_keys(BUCKET)) == ["research/dev-eu-central-1/terraform.tfstate",
                                          "research/dev-us-east-1/terraform.tfstate"]


def test_fanout_destroy_runs_regions_before_global_and_refuses_protected_envs(repo):
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'protected_envs = ["qa"]\n')  # policy: committed
    git(repo, "commit", "-qam", "qa is protected")
    for scope in ("us-east-1", "global"):
        tag(repo, f"dev_{scope}/research/1.0")
        tag(repo, f"qa_{scope}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve")
    keys = ["research/dev-global/terraform.tfstate", "research/dev-us-east-1/terraform.tfstate"]
    assert all(state_of(BUCKET, key)["resources"] for key in keys)

    # Without a terminal a fleet destroy needs --auto-approve; nothing is planned or changed.
    refused = tfdeploy(repo, "destroy", "--tag", "dev_*/research/1.0", check=False)
    assert refused.returncode == 2 and "needs a yes" in refused.stderr.strip().splitlines()[-1]
    assert all(state_of(BUCKET, key)["resources"] for key in keys)
    # A protected env anywhere in the selection refuses the whole run before any cell starts.
    protected = tfdeploy(repo, "destroy", "--tag", "dev_*/research/1.0", "--tag", "qa_*/research/1.0",
                         "--auto-approve", check=False)
    assert protected.returncode == 2 and "--allow-protected" in protected.stderr.strip().splitlines()[-1]
    assert all(state_of(BUCKET, key)["resources"] for key in keys)

    run = tfdeploy(repo, "destroy", "--tag", "dev_*/research/1.0", "--auto-approve", "--json")
    doc = json.loads(run.stdout)
    results = {c["cell"]: c for c in doc["cells"]}
    assert doc["ok"] and [c["result"] for c in doc["cells"]] == ["destroyed", "destroyed"]
    assert list(results) == ["dev-us-east-1-research", "dev-global-research"]  # reverse of apply
    # (>=: the global cell may start in the millisecond the Region's last log line was written)
    assert stamps(results["dev-global-research"]["log"])[0] >= stamps(results["dev-us-east-1-research"]["log"])[1]
    assert results["dev-us-east-1-research"]["destroy"] == 1
    assert all(state_of(BUCKET, key)["resources"] == [] for key in keys)


def test_parallel_bounds_the_cells_in_terraform_at_once(repo, tmp_path, terraform_bin):
    """`--parallel N`: never more than N cells between their first and last Terraform command,
    though a cell hands its slot on before its ledger record is written (fleet/runner.py)."""
    commit(repo, {TEAM_VARS: 'account = "111111111111"\nallowed_regions = ["us-east-1", "eu-central-1", '
                             '"us-west-2"]\n'}, "release 1.0")
    for scope in (*REGIONS, "global"):
        tag(repo, f"dev_{scope}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    log = tmp_path / "terraform-calls.log"
    wrapper = tmp_path / "terraform"
    wrapper.write_text(f'#!/bin/sh\necho "start $(date +%s.%N) $$ $PWD" >> "{log}"\n"{terraform_bin}" "$@"\n'
                       f'rc=$?\necho "end $(date +%s.%N) $$ $PWD" >> "{log}"\nexit $rc\n')
    wrapper.chmod(0o755)
    run = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "2",
                   "--json", env={"TFDEPLOY_TERRAFORM": str(wrapper)})
    assert {c["result"] for c in json.loads(run.stdout)["cells"]} == {"applied"}
    # Each Terraform process, start to end (a later wave's cell plans ahead, then waits for the
    # canary with no Terraform running: fleet/turns.py).
    spans: dict[str, list[float]] = {}
    cells = set()
    for line in log.read_text().splitlines():
        _what, when, pid, where = line.split(" ", 3)
        cells.add(Path(where).name)
        span = spans.setdefault(pid, [float(when), float(when)])
        span[0], span[1] = min(span[0], float(when)), max(span[1], float(when))
    assert len(cells) == 4, cells
    edges = sorted([(start, 1) for start, _ in spans.values()] + [(end, -1) for _, end in spans.values()],
                   key=lambda edge: (edge[0], edge[1]))
    at_once, most = 0, 0
    for _when, step in edges:
        at_once += step
        most = max(most, at_once)
    assert most == 2, spans  # the three Regions ran two at a time after global, never three


def test_ci_lines_say_which_cells_still_run_and_their_latest_terraform_step(repo):
    """A cell whose apply takes a while, with the silence before a heartbeat set to 1 s
    (TFDEPLOY_HEARTBEAT_S): the CI output names it and what its Terraform was doing."""
    commit(repo, {TEAM_VARS: 'account = "111111111111"\nallowed_regions = ["us-east-1", "us-west-2"]\n',
                  "envs/dev/research/us-west-2.tfvars": "apply_delay_seconds = 4\n"}, "slow us-west-2")
    for region in ("us-east-1", "us-west-2"):
        tag(repo, f"dev_{region}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    run = tfdeploy(repo, "apply", "--tag", "dev_us-*/research/1.0", "--auto-approve",
                   env={"TFDEPLOY_HEARTBEAT_S": "1"})
    beats = [line for line in run.stdout.splitlines() if line.startswith("[fleet] still running: ")]
    # Its latest step, without the module.regional every resource of the cell shares.
    assert any(re.match(r"\[fleet\] still running: dev-us-west-2-research \d+s \(terraform_data\.\w+: "
                        r"(Creating|Provisioning|\(local-exec\))", line) for line in beats), run.stdout
    assert "Apply complete!" not in run.stdout  # a step, never Terraform's output itself

    bad = tfdeploy(repo, "apply", "--tag", "dev_us-*/research/1.0", "--auto-approve",
                   env={"TFDEPLOY_HEARTBEAT_S": "soon"}, check=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stdout == ""  # refused before any work
    assert bad.stderr.strip().splitlines() == [
        "tfdeploy: error: TFDEPLOY_HEARTBEAT_S='soon' is not a number of seconds above 0; set it to e.g. 60, "
        "or unset it"], bad.stderr


def test_a_reviewed_rollout_applying_saved_plans_shows_the_steps_too(repo):
    """plan, review, then apply the saved plans: the way a protected env rolls out. Applying a
    saved plan said nothing of its Terraform's steps: only `apply --auto-approve` did."""
    commit(repo, {TEAM_VARS: 'account = "111111111111"\nallowed_regions = ["us-east-1", "us-west-2"]\n',
                  "envs/dev/research/us-west-2.tfvars": "apply_delay_seconds = 4\n"}, "slow us-west-2")
    for region in ("us-east-1", "us-west-2"):
        tag(repo, f"dev_{region}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    planned = tfdeploy(repo, "plan", "--tag", "dev_us-*/research/1.0", "--json")
    assert [c["add"] for c in json.loads(planned.stdout)["cells"]] == [1, 1]
    run = tfdeploy(repo, "apply", "--tag", "dev_us-*/research/1.0", "--json", env={"TFDEPLOY_HEARTBEAT_S": "1"})
    cells = {c["cell"]: c for c in json.loads(run.stdout)["cells"]}
    assert {c: (r["result"], r["add"]) for c, r in cells.items()} == {
        "dev-us-east-1-research": ("applied", 1), "dev-us-west-2-research": ("applied", 1)}
    beats = [line for line in run.stderr.splitlines() if line.startswith("[fleet] still running: ")]
    assert any(re.match(r"\[fleet\] still running: dev-us-west-2-research \d+s \(terraform_data\.\w+: "
                        r"(Creating|Provisioning|\(local-exec\))", line) for line in beats), run.stderr
    log = Path(cells["dev-us-west-2-research"]["log"]).read_text()
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in log  # Terraform's words, in its log
    assert message_of("research/dev-us-west-2/terraform.tfstate") == "hello from us-west-2"


def test_interrupting_a_fanout_of_saved_plans_stops_them_gracefully_and_spends_the_plan(repo):
    """The apply of a saved plan runs with -json when a fleet follows its steps: an interrupt
    still stops it cleanly (state saved, lock released), and its plan is never applied again."""
    from tests.safety.test_signals import Run

    for scope in ("eu-central-1", "us-east-1"):
        tag(repo, f"dev_{scope}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    slow = {"TF_VAR_apply_delay_seconds": "4"}
    tfdeploy(repo, "plan", "--tag", "dev_eu-central-1/research/1.0", "--tag", "dev_us-east-1/research/1.0", env=slow)
    run = Run(repo, "apply", "--tag", "dev_eu-central-1/research/1.0", "--tag", "dev_us-east-1/research/1.0",
              "--parallel", "1", env={**slow, "TFDEPLOY_HEARTBEAT_S": "0.5"})
    interrupted_after(run, "[fleet] still running: dev-eu-central-1-research", 1.0)
    assert_first_cell_saved_and_unlocked()
    again = tfdeploy(repo, "apply", "--tag", "dev_eu-central-1/research/1.0", "--tag",
                     "dev_us-east-1/research/1.0", "--json", check=False)
    cells = {c["cell"]: c["result"] for c in json.loads(again.stdout)["cells"]}
    # eu-central-1 is the canary wave (model/waves.py): its refusal stops us-east-1 (before waves,
    # us-east-1 applied beside it).
    assert cells == {"dev-eu-central-1-research": "failed", "dev-us-east-1-research": "skipped"}, again.stderr
    assert re.search(r"\[dev-eu-central-1-research\] failed \(\S+\): the saved plan of "
                     r"dev_eu-central-1/research/1.0 was already used by an apply at", again.stderr), again.stderr


def test_wave_bake_seconds_waits_between_waves(repo):
    """wave_bake_seconds (a committed setting here): the canary starts only that long after the
    global wave ended."""
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "wave_bake_seconds = 3\n")
    git(repo, "commit", "-qam", "bake 3 s between waves")
    for scope in ("us-east-1", "global"):
        tag(repo, f"dev_{scope}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    run = tfdeploy(repo, "plan", "--tag", "dev_*/research/1.0", "--json")
    cells = {c["cell"]: c for c in json.loads(run.stdout)["cells"]}
    from datetime import datetime

    ended = re.findall(r"^# finished (\S+?): ", Path(cells["dev-global-research"]["log"]).read_text(), re.M)[-1]
    global_end = datetime.fromisoformat(ended)
    canary_start = datetime.fromisoformat(stamps(cells["dev-us-east-1-research"]["log"])[0])
    assert (canary_start - global_end).total_seconds() >= 3.0
