"""Planning ahead (fleet/turns.py): an `apply --auto-approve` fan-out's later wave plans while the
canary applies, and applies only once the canary succeeded. Real git tags, the embedded
Terraform, moto. What a user checks: the order of applies, that a failed canary still stops the
later waves (nothing applied, no record, no plan left to apply), that a global cell is never
planned ahead of, and that an interrupt or a kill between the plan and the turn applies nothing."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import tag, tfdeploy
from tests.fleet.test_fanout import BUCKET, TEAM_VARS, apply_began, commit, stamps
from tests.statecheck import state_keys

pytestmark = pytest.mark.safety

CANARY, LATER = "dev-eu-central-1-research", ("dev-us-east-1-research", "dev-us-west-2-research")
ALL_REGIONS = 'account = "111111111111"\nallowed_regions = ["us-east-1", "eu-central-1", "us-west-2"]\n'


def release(repo: Path, canary_tfvars: str, *, with_global: bool = False) -> None:
    commit(repo, {TEAM_VARS: ALL_REGIONS, "envs/dev/research/eu-central-1.tfvars": canary_tfvars}, "release 1.0")
    for scope in ("us-east-1", "eu-central-1", "us-west-2", *(("global",) if with_global else ())):
        tag(repo, f"dev_{scope}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")


def records_of(repo: Path, scope: str) -> list[dict]:
    doc = json.loads(tfdeploy(repo, "history", "--env", "dev", "--team", "research", "--scope", scope,
                              "--json", check=False).stdout or "{}")
    return doc.get("records", [])


def test_a_later_wave_plans_while_the_canary_applies_and_applies_only_after_it(repo):
    release(repo, "apply_delay_seconds = 4\n", with_global=True)
    run = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "3", "--json")
    cells = {c["cell"]: c for c in json.loads(run.stdout)["cells"]}
    assert {c["result"] for c in cells.values()} == {"applied"}, run.stderr
    global_done = stamps(cells["dev-global-research"]["log"])[1]
    canary_start, canary_done = stamps(cells[CANARY]["log"])
    # The global cell is never planned ahead of: a Region's plan may read what it applies.
    assert canary_start >= global_done
    assert "planned ahead" not in Path(cells[CANARY]["log"]).read_text()
    for cell in LATER:
        log = Path(cells[cell]["log"]).read_text()
        started = stamps(cells[cell]["log"])[0]
        assert canary_start <= started < canary_done, (cell, log)  # planned while the canary applied
        assert f"tfdeploy: planned ahead; waiting for {CANARY} before applying" in log
        assert re.search(r"^Plan: 1 to add, 0 to change, 0 to destroy\.$", log, re.M), log
        assert apply_began(cells[cell]["log"]) >= canary_done  # ...and applied after it succeeded
    assert state_keys(BUCKET) == [f"research/dev-{scope}/terraform.tfstate"
                                  for scope in ("eu-central-1", "global", "us-east-1", "us-west-2")]
    # One apply record each, as without planning ahead, saying it was auto-approved.
    for scope in ("us-east-1", "us-west-2"):
        records = records_of(repo, scope)
        assert [r["result"] for r in records] == ["succeeded"], records
        assert records[0]["details"]["plan"].startswith("auto-approved")


def test_a_failed_canary_discards_the_plans_made_ahead_and_applies_and_records_nothing(repo):
    release(repo, "apply_delay_seconds = -1\n")  # its provisioner runs `sleep -1`: the apply fails
    run = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "3",
                   "--json", check=False)
    assert run.returncode == 1, run.stderr
    cells = {c["cell"]: c for c in json.loads(run.stdout)["cells"]}
    assert {cell: c["result"] for cell, c in cells.items()} == {
        CANARY: "failed", LATER[0]: "skipped", LATER[1]: "skipped"}, run.stderr
    for cell in LATER:
        assert f"[{cell}] skipped: {CANARY} did not succeed; its plan was discarded" in run.stderr
        assert "planned ahead" in Path(cells[cell]["log"]).read_text()  # it did plan, while the canary ran
    # Nothing of the later wave was applied or recorded; only the canary's failed apply was.
    assert state_keys(BUCKET) == ["research/dev-eu-central-1/terraform.tfstate"]
    assert records_of(repo, "us-east-1") == [] and records_of(repo, "us-west-2") == []
    assert [r["result"] for r in records_of(repo, "eu-central-1")] == ["failed"]
    # No unreviewed plan is left for anyone to apply.
    later = tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.0", check=False)
    assert later.returncode != 0
    assert later.stderr.strip().splitlines()[-1].startswith(
        "tfdeploy: error: no saved plan for dev_us-east-1/research/1.0; run: tfdeploy plan --tag"), later.stderr
    assert state_keys(BUCKET) == ["research/dev-eu-central-1/terraform.tfstate"]


def test_an_interrupt_while_a_cell_waits_for_its_turn_applies_nothing_more(repo):
    from tests.safety.test_signals import Run

    release(repo, "apply_delay_seconds = 8\n")
    run = Run(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "3")
    wait_for_logs(repo, run, {**{cell: "planned ahead; waiting for" for cell in LATER},
                              CANARY: "Provisioning with 'local-exec'"})  # the canary's apply runs
    os.kill(run.proc.pid, signal.SIGTERM)
    assert run.finish() == 143, run.stderr
    assert "Traceback" not in run.stderr
    said = "".join(run.out) + run.stderr
    for cell in LATER:
        assert f"[{cell}] skipped: not applied: interrupted; its plan was discarded" in said, said
    assert state_keys(BUCKET) == ["research/dev-eu-central-1/terraform.tfstate"]
    assert records_of(repo, "us-east-1") == [] and records_of(repo, "us-west-2") == []
    assert [r["result"] for r in records_of(repo, "eu-central-1")] == ["interrupted"]


def test_a_plan_made_for_an_auto_approved_apply_that_was_killed_is_never_applied_later(repo):
    """SIGKILL leaves no time to discard: the plan stays, marked as made for its own run; `apply
    --tag` (which applies a reviewed plan) refuses it, and nothing is applied."""
    from tests.safety.test_signals import Run

    release(repo, "apply_delay_seconds = 8\n")
    run = Run(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "3")
    wait_for_logs(repo, run, {**{cell: "planned ahead; waiting for" for cell in LATER},
                              CANARY: "Provisioning with 'local-exec'"})  # the canary's apply runs
    os.killpg(run.proc.pid, signal.SIGKILL)
    run.finish()
    later = tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.0", check=False)
    assert later.returncode != 0
    assert later.stderr.strip().splitlines()[-1] == (
        "tfdeploy: error: the saved plan of dev_us-east-1/research/1.0 was made by apply --auto-approve for "
        "its own apply, which never ran (stopped, or skipped after a cell before it failed); nobody reviewed "
        "it, so nothing applied; run tfdeploy plan --tag dev_us-east-1/research/1.0"), later.stderr
    assert "research/dev-us-east-1/terraform.tfstate" not in state_keys(BUCKET)
    # A plan made and reviewed the usual way is applied as always.
    tfdeploy(repo, "plan", "--tag", "dev_us-east-1/research/1.0")
    tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.0")
    assert "research/dev-us-east-1/terraform.tfstate" in state_keys(BUCKET)


def wait_for_logs(repo: Path, run, said: dict[str, str], timeout: float = 90) -> None:
    """Until each cell's log says what `said` gives for it (cell -> text)."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        logs = re.search(r"logs in (\S+)", "".join(run.err + run.out))
        if logs:
            found = {cell: repo / logs.group(1) / f"{cell}.log" for cell in said}
            if all(log.is_file() and said[cell] in log.read_text() for cell, log in found.items()):
                return
        time.sleep(0.1)
    run.finish(kill=True)
    pytest.fail(f"never saw {said} in the cells' logs:\n" + "".join(run.out + run.err))
