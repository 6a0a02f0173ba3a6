"""Root-level checks are not lost to -target (issue 23, item 7; engine/rootchecks.py).

Terraform does not evaluate, under `-target=module.regional`, a root variable validation of a
variable the module does not use, nor any root `check` block. Real Terraform (embedded), moto,
the example repo with annotated tags: one tag's plan, `--auto-approve` and a fan-out's cell.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy
from tests.statecheck import state_keys

pytestmark = pytest.mark.safety

GUARDS = """
variable "max_instances" {
  type        = number
  description = "Used by no module: only its validation guards it."
  default     = 3

  validation {
    condition     = var.max_instances <= 5
    error_message = "max_instances must be at most 5."
  }
}

check "polite_greeting" {
  assert {
    condition     = var.greeting != "go away"
    error_message = "the greeting must be polite."
  }
}

check "regional_message" {
  assert {
    condition     = module.regional.message != ""
    error_message = "the regional cell must say something."
  }
}
"""
TAG = "dev_us-east-1/research/1.0"
TFVARS = "envs/dev/research/us-east-1.tfvars"


def _commit(repo, tfvars: str, message: str) -> None:
    (repo / TFVARS).write_text(tfvars)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", message)


def test_a_root_validation_the_target_does_not_use_refuses_the_plan(repo):
    (repo / "guards.tf").write_text(GUARDS)
    _commit(repo, 'greeting = "hello"\nmax_instances = 10\n', "too many instances")
    tag(repo, TAG)
    tfdeploy(repo, "bootstrap", "--env", "dev")

    for args in (["plan", "--tag", TAG], ["apply", "--tag", TAG, "--auto-approve"]):
        refused = tfdeploy(repo, *args, check=False)
        assert refused.returncode != 0, refused.stderr
        assert "Traceback" not in refused.stderr
        last = refused.stderr.strip().splitlines()[-1]
        assert last == (f"tfdeploy: error: {TAG}: var.max_instances fails its validation: max_instances must be "
                        "at most 5. (a root variable module.regional does not use: Terraform skips its validation "
                        "under -target, tfdeploy does not); nothing planned; fix the value in the cell's variable "
                        "files")
    assert state_keys("demo-tfstate-dev") == []

    # The fan-out's cell: the same refusal, by the same code, in its log.
    fan = tfdeploy(repo, "apply", "--tag", "dev_us-*/research/1.0", "--auto-approve", "--json", check=False)
    (cell,) = json.loads(fan.stdout)["cells"]
    assert fan.returncode == 1 and cell["result"] == "failed"
    with open(repo / cell["log"] if not cell["log"].startswith("/") else cell["log"]) as log:
        assert "var.max_instances fails its validation" in log.read()
    assert state_keys("demo-tfstate-dev") == []


def test_a_failed_root_check_is_said_and_one_that_needs_more_than_variables_is_named(repo):
    (repo / "guards.tf").write_text(GUARDS)
    _commit(repo, 'greeting = "go away"\n', "an impolite greeting")
    tag(repo, TAG)
    tfdeploy(repo, "bootstrap", "--env", "dev")

    planned = tfdeploy(repo, "plan", "--tag", TAG)
    warnings = [line for line in planned.stderr.splitlines() if line.startswith("tfdeploy: warning: ")]
    assert ("tfdeploy: warning: check.polite_greeting failed: the greeting must be polite. (a root check block, "
            "evaluated by tfdeploy: Terraform skips it under -target)") in warnings
    assert ("tfdeploy: warning: not evaluated under -target=module.regional (Terraform skips root checks the "
            "target does not use; these need more than variables to evaluate alone): check.regional_message "
            "(refers to module.regional)") in warnings
    # A check is a warning, as in Terraform: the plan is made and applies.
    tfdeploy(repo, "apply", "--tag", TAG)
    assert state_keys("demo-tfstate-dev") == ["research/dev-us-east-1/terraform.tfstate"]


def test_without_root_checks_nothing_extra_runs_or_is_said(repo):
    tag(repo, TAG)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    planned = tfdeploy(repo, "plan", "--tag", TAG)
    assert "warning" not in planned.stderr and "root check" not in planned.stderr
