"""A saved plan applies only to its own cell, and only once (real Terraform, moto, git tags)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import boto3
import pytest

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy

pytestmark = pytest.mark.safety

A = "dev_us-east-1/research/1.0"
B = "dev_us-east-1/risk/1.0"
BUCKET = "demo-tfstate-dev"
KEY_A = "research/dev-us-east-1/terraform.tfstate"
KEY_B = "risk/dev-us-east-1/terraform.tfstate"


def s3():
    return boto3.client("s3", region_name="us-east-1")


def state_bytes(key: str) -> bytes | None:
    try:
        return s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    except s3().exceptions.NoSuchKey:
        return None



def cell_dir(repo, cell: str):
    return repo / ".tfdeploy" / "work" / cell


def test_another_cells_plan_with_a_recomputed_checksum_is_refused(repo):
    tag(repo, A)
    tag(repo, B)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "plan", "--tag", A)
    tfdeploy(repo, "plan", "--tag", B)

    # The attack: B's plan in A's work dir, with A's metadata re-signed for it.
    a_dir, b_dir = cell_dir(repo, "dev-us-east-1-research"), cell_dir(repo, "dev-us-east-1-risk")
    shutil.copy(b_dir / "tfdeploy.tfplan", a_dir / "tfdeploy.tfplan")
    meta = json.loads((a_dir / "tfdeploy.plan.json").read_text())
    meta["plan_sha256"] = hashlib.sha256((a_dir / "tfdeploy.tfplan").read_bytes()).hexdigest()
    (a_dir / "tfdeploy.plan.json").write_text(json.dumps(meta))

    proc = tfdeploy(repo, "apply", "--tag", A, check=False)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("tfdeploy: error: the saved plan in the work dir of " + A), last
    assert "risk/dev-us-east-1/terraform.tfstate" in last and "Traceback" not in proc.stderr
    assert state_bytes(KEY_B) is None  # B's plan was not applied to B's state
    assert state_bytes(KEY_A) is None  # and nothing was applied to A either


def _add_failing_resource(repo) -> None:
    """Version 1.1: a second resource whose provisioner fails after the first was created."""
    main = repo / "modules" / "regional" / "main.tf"
    main.write_text(main.read_text() + """
resource "terraform_data" "fails" {
  depends_on = [terraform_data.cell]
  provisioner "local-exec" {
    command = "exit 1"
  }
}
""")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "failing provisioner")


def test_a_plan_whose_apply_failed_halfway_is_spent(repo):
    _add_failing_resource(repo)
    tag(repo, A)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "plan", "--tag", A)

    first = tfdeploy(repo, "apply", "--tag", A, check=False)
    assert first.returncode == 1, first.stderr
    after_first = state_bytes(KEY_A)
    assert after_first is not None  # the first resource was created and recorded

    second = tfdeploy(repo, "apply", "--tag", A, check=False)
    assert second.returncode == 2, second.stderr
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tfdeploy: error: the saved plan of {A} was already used by an apply at "), last
    assert last.endswith(f"run tfdeploy plan --tag {A}")
    assert state_bytes(KEY_A) == after_first


def test_a_successful_apply_spends_the_plan(repo):
    tag(repo, A)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "plan", "--tag", A)
    tfdeploy(repo, "apply", "--tag", A)
    again = tfdeploy(repo, "apply", "--tag", A, check=False)
    assert again.returncode == 2
    assert "already used by an apply at" in again.stderr
    # A new plan makes the cell appliable again.
    tfdeploy(repo, "plan", "--tag", A)
    tfdeploy(repo, "apply", "--tag", A)


def _forge_plan_in_work_dir(repo, terraform_bin: str, *extra: str) -> None:
    """The attack on the plan's content: someone who can write A's work dir runs Terraform there
    (A's own initialised backend) with arguments of their choosing, saves the plan where tfdeploy
    looks for it, and recomputes the checksum beside it. Tag, commit and checksum then all match;
    only what the plan file itself says can tell."""
    work = cell_dir(repo, "dev-us-east-1-research")
    (work / "tfdeploy.tfplan").unlink()
    forged = subprocess.run([terraform_bin, "plan", "-input=false", "-no-color", "-out=tfdeploy.tfplan",
                             "-var-file=envs/dev/research/us-east-1.tfvars", *extra],
                            cwd=work, capture_output=True, text=True, timeout=120)
    assert forged.returncode == 0, forged.stderr
    meta = json.loads((work / "tfdeploy.plan.json").read_text())
    meta["plan_sha256"] = hashlib.sha256((work / "tfdeploy.tfplan").read_bytes()).hexdigest()
    (work / "tfdeploy.plan.json").write_text(json.dumps(meta))


def _assert_refused_untouched(repo, why: str) -> None:
    proc = tfdeploy(repo, "apply", "--tag", A, check=False)
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"tfdeploy: error: the saved plan in the work dir of {A} is not this cell's: "), last
    assert why in last and last.endswith(f"nothing applied; run tfdeploy plan --tag {A}"), last
    assert "Traceback" not in proc.stderr
    assert state_bytes(KEY_A) is None  # nothing was applied


def test_a_plan_made_with_other_variables_is_refused(repo, terraform_bin):
    """Same cell, same backend, same commit: only a generated variable differs (a forged version
    label would make the ledger and the state disagree on what runs)."""
    tag(repo, A)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "plan", "--tag", A)
    _forge_plan_in_work_dir(repo, terraform_bin, "-target=module.regional", "-var=release_version=FORGED")
    _assert_refused_untouched(repo, "its variable release_version is 'FORGED', not '1.0'")


def test_a_plan_that_changes_addresses_outside_the_cells_module_is_refused(repo, terraform_bin):
    """Same cell, backend and variables, but the plan changes the account-level module that a
    regional cell must never touch."""
    tag(repo, A)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "plan", "--tag", A)
    _forge_plan_in_work_dir(repo, terraform_bin, "-target=module.global")
    _assert_refused_untouched(repo, "outside module.regional")


def test_two_applies_racing_for_one_saved_plan_only_one_takes_it(repo):
    """The claim itself: applies that passed every check at the same moment race to spend the plan
    (threads released together by a barrier); exactly one gets it, the others are told it was
    taken, and the plan that was taken is the one that was checked."""
    from tfdeploy.engine.stages import check_saved_plan, hold_cell, open_session, spend_saved_plan
    from tfdeploy.errors import ValidationError

    tag(repo, A)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "plan", "--tag", A)
    from tfdeploy.model.tags import parse_tag

    cell = parse_tag(A)  # the engine takes the Tag the CLI parsed once
    with hold_cell(repo, cell):  # the cell lock, as every apply holds it
        session = open_session(repo, cell, overrides={}, reuse_workdir=True)
        meta = check_saved_plan(session, session.workdir.source)
        plan_bytes = session.plan_path.read_bytes()
        for round_ in range(ROUNDS):  # a race is lost only sometimes: run it many times
            if round_:
                session.plan_path.write_bytes(plan_bytes)  # the checked plan, back for the next round
            won, refused = _race_to_spend(session, meta, spend_saved_plan, ValidationError)
            assert len(won) == 1, (round_, won, refused)
            assert refused == [f"the saved plan of {A} was just taken by another apply; "
                               f"run tfdeploy plan --tag {A}"] * (RACERS - 1)
            assert hashlib.sha256(won[0].read_bytes()).hexdigest() == meta["plan_sha256"]
            assert not session.plan_path.exists()
    # Whoever comes next is told the plan is spent, and nothing was applied by the losers.
    again = tfdeploy(repo, "apply", "--tag", A, check=False)
    assert again.returncode == 2 and "already used by an apply at" in again.stderr, again.stderr
    assert state_bytes(KEY_A) is None


RACERS = 8
ROUNDS = 20


def _race_to_spend(session, meta, spend, refusal) -> tuple[list, list[str]]:
    import threading

    barrier = threading.Barrier(RACERS)
    won: list = []
    refused: list[str] = []

    def race() -> None:
        barrier.wait()
        try:
            won.append(spend(session, meta))
        except refusal as exc:
            refused.append(str(exc))

    threads = [threading.Thread(target=race) for _ in range(RACERS)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as Python can: a check-then-act claim loses
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    return won, refused
