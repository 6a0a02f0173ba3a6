"""Issue 21, items 1 and 3: the gates' policy comes from the repo's commits, not the runner, and
`--auto-approve` checks what the saved-plan path checks, before Terraform runs.

Each finding was first reproduced against the code before the fix (the runner's
`--environments prod --protected-envs ''` let an untested commit into prod; a tagged tfvars file
set `env = "prod"` under --auto-approve; a module source climbed into the working tree). Real
Terraform (embedded), moto on 127.0.0.1, real git repos and annotated tags.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tfdeploy.gates.policy import policy_settings, stricter_baseline
from tfdeploy.gates.protected import is_protected, soft_fail_envs
from tfdeploy.model.settings import POLICY_SETTINGS, Settings, option_flag

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy
from tests.statecheck import all_keys

QA_US, DEV_US = "qa_us-east-1/research/1.0", "dev_us-east-1/research/1.0"


def _one_error(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and lines, proc.stderr
    assert lines[-1].startswith("tfdeploy: error: "), proc.stderr
    return lines[-1]


def _set_pyproject(repo: Path, **lines: str) -> None:
    """Replace (or add) `name = value` lines of [tool.tfdeploy] in the repo's pyproject.toml."""
    path = repo / "pyproject.toml"
    kept = [line for line in path.read_text().splitlines() if line.split(" = ")[0] not in lines]
    path.write_text("\n".join(kept + [f"{k} = {v}" for k, v in lines.items()]) + "\n")


def _commit(repo: Path, message: str) -> str:
    git(repo, "add", ".")
    git(repo, "commit", "-qm", message)
    return git(repo, "rev-parse", "HEAD").strip()


# --- item 1: no runner switches a gate off ---------------------------------------------------------

@pytest.mark.parametrize("args, env, named", [
    (("--environments", "prod"), {}, "--environments"),
    (("--protected-envs", ""), {}, "--protected-envs"),
    (("--scan-soft-fail-envs", "dev,qa"), {}, "--scan-soft-fail-envs"),
    (("--checkov-baseline", "accept-all.json"), {}, "--checkov-baseline"),
    (("--default-branch", "topic"), {}, "--default-branch"),
    (("--set", "protected_envs="), {}, "--set protected_envs"),
    (("--set", "default-branch=topic"), {}, "--set default_branch"),
    ((), {"TFDEPLOY_ENVIRONMENTS": "qa,dev"}, "TFDEPLOY_ENVIRONMENTS"),
    ((), {"TFDEPLOY_PROTECTED_ENVS": "none"}, "TFDEPLOY_PROTECTED_ENVS"),
])
def test_a_policy_setting_from_the_runner_is_refused_before_anything_runs(repo, args, env, named):
    tag(repo, QA_US)
    tfdeploy(repo, "bootstrap", "--env", "qa")
    for command in (("apply", "--tag", QA_US, "--auto-approve"), ("plan", "--tag", QA_US),
                    ("resolve", "--tag", QA_US)):
        proc = tfdeploy(repo, *command, *args, env=env, check=False)
        assert proc.returncode == 2, proc.stderr
        line = _one_error(proc)
        assert f"{named} sets " in line and "which is policy" in line and "committed pyproject.toml" in line
    assert all_keys("demo-tfstate-qa") == []  # nothing planned, applied or recorded
    assert not (repo / ".tfdeploy" / "work" / "qa-us-east-1-research").exists()


def test_policy_options_are_not_offered_in_help(repo):
    shown = tfdeploy(repo, "apply", "--help").stdout
    assert [n for n in POLICY_SETTINGS if option_flag(n) in shown] == []
    assert "--set NAME=VALUE" in shown  # the settings that are not policy: one option, documented once


def test_an_uncommitted_or_older_policy_cannot_lift_the_default_branchs(repo):
    """The tag points at a commit whose pyproject lists qa first (no promotion check), the working
    tree says the same (uncommitted); the default branch's newest commit says dev before qa: the
    qa apply is refused (before the fix, the working tree's and the tagged commit's orders were the
    ones read, and it went through)."""
    _set_pyproject(repo, environments='["qa", "dev"]')
    lax = _commit(repo, "qa first (lax)")
    tag(repo, QA_US, ref=lax)
    _set_pyproject(repo, environments='["dev", "qa"]')
    _commit(repo, "dev before qa again")
    _set_pyproject(repo, environments='["qa", "dev"]')  # the runner's working tree: uncommitted
    for env in ("dev", "qa"):
        tfdeploy(repo, "bootstrap", "--env", env)

    refused = tfdeploy(repo, "apply", "--tag", QA_US, "--auto-approve", check=False)
    assert refused.returncode == 2
    assert f"(commit {lax[:12]}) has not been applied in dev for research" in _one_error(refused)
    assert all_keys("demo-tfstate-qa") == []

    # The only way past it stays the recorded override.
    forced = tfdeploy(repo, "apply", "--tag", QA_US, "--auto-approve", "--skip-promotion-check",
                      "--reason", "CHG-9")
    assert f"promotion check skipped for {QA_US} (--skip-promotion-check): CHG-9" in forced.stderr


def test_policy_is_the_stricter_of_the_default_branch_and_the_tagged_commit(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "infra")
    _set_pyproject(repo, protected_envs='["qa"]', scan_soft_fail_envs='["dev", "qa"]',
                   checkov_baseline='"main.baseline"')
    _commit(repo, "main protects qa")
    tagged = tmp_path / "tagged"  # the tagged commit's exported tree: lifts all of it
    tagged.mkdir()
    (tagged / "pyproject.toml").write_text('[tool.tfdeploy]\nenvironments = ["dev", "qa"]\nprotected_envs = []\n'
                                           'scan_soft_fail_envs = ["dev", "qa"]\ncheckov_baseline = "mine"\n')
    _set_pyproject(repo, protected_envs="[]")  # the working tree: uncommitted, not read
    policy = policy_settings(repo, tagged, {})
    assert len(policy) == 2 and is_protected("qa", policy)
    assert soft_fail_envs(policy) == {"dev", "qa"}  # both say so: soft
    assert stricter_baseline(policy) is None  # they differ: no accepted findings
    assert stricter_baseline([Settings(checkov_baseline="b"), Settings(checkov_baseline="b")]) == "b"


# --- item 3: --auto-approve checks what the saved plan checks --------------------------------------

@pytest.mark.parametrize("mode", ["auto-approve", "saved-plan", "fan-out"])
def test_a_tfvars_file_cannot_set_a_generated_variable(repo, mode):
    (repo / "envs/dev/research/us-east-1.tfvars").write_text(
        'greeting = "hi"\nenv = "prod"\naccount = "999999999999"\nrelease_version = "FORGED"\n')
    _commit(repo, "forged values")
    tag(repo, DEV_US)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    if mode == "fan-out":
        proc = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--json", check=False)
        assert proc.returncode == 1
        (cell,) = json.loads(proc.stdout)["cells"]
        assert cell["result"] == "failed"
        line = Path(cell["log"]).read_text()
    else:
        args = ("apply", "--tag", DEV_US, "--auto-approve") if mode == "auto-approve" else ("plan", "--tag", DEV_US)
        proc = tfdeploy(repo, *args, check=False)
        assert proc.returncode == 2
        line = _one_error(proc)
    assert "envs/dev/research/us-east-1.tfvars sets env = \"prod\", but tfdeploy sets env from the tag" in line
    assert all_keys("demo-tfstate-dev") == []  # no state, no ledger record, no lock-mode record


@pytest.mark.parametrize("source", ["../../../modules/regional", "/tmp/tfdeploy-outside-module"])
@pytest.mark.parametrize("auto_approve", [True, False])
def test_a_module_from_outside_the_tagged_tree_is_refused(repo, source, auto_approve, tmp_path):
    main = repo / "main.tf"
    main.write_text(re.sub(r'source( *)= "./modules/regional"', f'source = "{source}"', main.read_text()))
    assert source in main.read_text()
    _commit(repo, "module from outside")
    tag(repo, DEV_US)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    # What Terraform would have read there: uncommitted content in the runner's working tree.
    (repo / "modules/regional/extra.tf").write_text('resource "terraform_data" "uncommitted" {}\n')
    args = ("apply", "--tag", DEV_US, "--auto-approve") if auto_approve else ("plan", "--tag", DEV_US)
    proc = tfdeploy(repo, *args, check=False)
    assert proc.returncode == 2
    line = _one_error(proc)
    assert f"module source '{source}' in main.tf" in line and "nothing was run" in line
    assert all_keys("demo-tfstate-dev") == []
