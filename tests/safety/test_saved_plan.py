"""A saved plan applies only to its own cell, and only once (real Terraform, moto, git tags)."""

from __future__ import annotations

import hashlib
import json
import shutil

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
