"""`tfdeploy destroy` for one cell: plan the destroy of the tag's namespace, show it, confirm, apply
exactly that plan (real Terraform, moto server, real annotated tags)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest
from tfdeploy.engine.destroy import refuse_protected
from tfdeploy.errors import ConfigError, ValidationError
from tfdeploy.model.settings import Settings, merge_settings
from tfdeploy.model.tags import parse_tag

from tests.conftest import git
from tests.e2e.conftest import TFDEPLOY, tag, tfdeploy
from tests.statecheck import state_keys, state_of

BUCKET = "demo-tfstate-dev"
US, EU = "dev_us-east-1/research/1.0", "dev_eu-central-1/research/1.0"
US_KEY, EU_KEY = "research/dev-us-east-1/terraform.tfstate", "research/dev-eu-central-1/terraform.tfstate"


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("tfdeploy: error: ")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr
    return errors[0]


def on_a_terminal(repo: Path, *args: str, answer: str) -> subprocess.CompletedProcess:
    """Run tfdeploy with a terminal as stdin, typing `answer` at its prompt."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([TFDEPLOY, *args], cwd=repo, stdin=follower, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        os.close(follower)
        os.write(leader, answer.encode())
        out, err = proc.communicate(timeout=300)
    finally:
        os.close(leader)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def resources(key: str) -> list[str]:
    state = state_of(BUCKET, key)
    return [f"{r.get('module', '')}.{r['type']}.{r['name']}" for r in state["resources"]]


def test_destroy_empties_its_cell_only_after_a_yes(repo):
    tag(repo, US)
    tag(repo, EU)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", US, "--auto-approve")
    tfdeploy(repo, "apply", "--tag", EU, "--auto-approve")
    other = state_of(BUCKET, EU_KEY)
    applied = state_of(BUCKET, US_KEY)
    assert resources(US_KEY) == ["module.regional.terraform_data.cell"]

    # No terminal and no --auto-approve: refused in one line before anything runs.
    proc = tfdeploy(repo, "destroy", "--tag", US, check=False)
    assert proc.returncode == 2 and "--auto-approve" in one_error_line(proc)
    assert "Terraform" not in proc.stdout and state_of(BUCKET, US_KEY) == applied

    # A person who answers anything but yes changes nothing, and leaves no plan to apply later.
    proc = on_a_terminal(repo, "destroy", "--tag", US, answer="no\n")
    assert proc.returncode == 1, proc.stderr
    assert "destroy dev_us-east-1/research/1.0: +0 ~0 -1" in proc.stdout
    assert "- module.regional.terraform_data.cell" in proc.stdout
    assert "Only 'yes' will be accepted" in proc.stdout
    assert "not destroyed" in one_error_line(proc) and state_of(BUCKET, US_KEY) == applied
    later = tfdeploy(repo, "apply", "--tag", US, check=False)
    assert later.returncode == 2 and "no saved plan" in one_error_line(later)
    assert state_of(BUCKET, US_KEY) == applied

    # --auto-approve (CI): the cell's state is emptied, the other cell of the env is untouched.
    proc = tfdeploy(repo, "destroy", "--tag", US, "--auto-approve")
    assert "destroy dev_us-east-1/research/1.0: +0 ~0 -1" in proc.stdout
    assert f"destroyed dev_us-east-1/research/1.0: -1; state s3://{BUCKET}/{US_KEY}" in proc.stdout
    assert state_of(BUCKET, US_KEY)["resources"] == []
    assert state_of(BUCKET, US_KEY)["lineage"] == applied["lineage"]  # the same state, emptied
    assert state_of(BUCKET, EU_KEY) == other
    assert state_keys(BUCKET) == sorted([EU_KEY, US_KEY])
    # The destroy plan was applied once: apply refuses it, and a second destroy has nothing to do.
    spent = tfdeploy(repo, "apply", "--tag", US, check=False)
    assert spent.returncode == 2 and "already used by an apply" in one_error_line(spent)
    again = tfdeploy(repo, "destroy", "--tag", US, "--auto-approve", "--json")
    assert json.loads(again.stdout)["summary"]["destroy"] == 0 and json.loads(again.stdout)["addresses"] == []
    assert "nothing to destroy" in again.stderr


def test_a_destroy_plan_is_never_applied_by_apply(repo):
    """A destroy plan left behind (a crash at the prompt) is not a plan `apply` may use."""
    from tfdeploy.engine.destroy import plan_destroy
    from tfdeploy.engine.stages import hold_cell, open_session

    tag(repo, US)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", US, "--auto-approve")
    applied = state_of(BUCKET, US_KEY)
    from tfdeploy.model.tags import parse_tag

    with hold_cell(repo, parse_tag(US)), open(os.devnull, "w") as quiet:
        session = open_session(repo, parse_tag(US), overrides={}, sink=quiet)
        planned = plan_destroy(session)
    assert str(planned.summary) == "+0 ~0 -1" and planned.addresses == ("module.regional.terraform_data.cell",)
    assert json.loads((session.workdir.path / "tfdeploy.plan.json").read_text())["operation"] == "destroy"
    proc = tfdeploy(repo, "apply", "--tag", US, check=False)
    assert proc.returncode == 2 and "is a destroy plan" in one_error_line(proc)
    assert state_of(BUCKET, US_KEY) == applied


def test_protected_env_needs_allow_protected_before_anything_runs(repo):
    # A repo with a prod env (protected by default).
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["dev", "qa"]', '["dev", "qa", "prod"]'))
    (repo / "envs/prod/research").mkdir(parents=True)
    (repo / "envs/prod/research/variables.tfvars").write_text('account = "333333333333"\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "prod")
    name = "prod_us-east-1/research/1.0"
    tag(repo, name)
    proc = tfdeploy(repo, "destroy", "--tag", name, "--auto-approve", check=False)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "env prod is protected" in line and "--allow-protected" in line
    assert not (repo / ".tfdeploy" / "work" / "prod-us-east-1-research").exists()  # nothing planned
    # Another env can be protected too; and --allow-protected is the deliberate second yes.
    # (policy is committed, never a flag: the working tree's file may add protection, never lift it)
    committed = pyproject.read_text()
    pyproject.write_text(committed + 'protected_envs = ["dev", "prod"]\n')
    proc = tfdeploy(repo, "destroy", "--tag", US, "--auto-approve", check=False)
    assert proc.returncode == 2 and "env dev is protected" in one_error_line(proc)
    pyproject.write_text(committed)
    tfdeploy(repo, "bootstrap", "--env", "prod")
    proc = tfdeploy(repo, "destroy", "--tag", name, "--auto-approve", "--allow-protected")
    assert "nothing to destroy" in proc.stdout


def test_protection_reads_the_setting_and_the_tagged_commits_cannot_lift_it():
    tag_ = parse_tag("prod_us-east-1/research/1.0")
    with pytest.raises(ValidationError, match="env prod is protected"):
        refuse_protected(tag_, [Settings()], allow_protected=False)
    refuse_protected(tag_, [Settings()], allow_protected=True)
    lifted = merge_settings({"environments": ["dev", "prod"], "protected_envs": []}, {}, {})
    with pytest.raises(ValidationError):  # the working tree's setting still protects prod
        refuse_protected(tag_, [Settings(), lifted], allow_protected=False)
    with pytest.raises(ConfigError, match="protected_envs names 'staging'"):
        merge_settings({"environments": ["dev"], "protected_envs": ["staging"]}, {}, {})


def test_a_destroy_is_in_the_ledger_once_confirmed(repo):
    tag(repo, US)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", US, "--auto-approve")

    def actions() -> list[tuple[str, str]]:
        doc = json.loads(tfdeploy(repo, "history", "--tag", US, "--json").stdout)
        return [(r["action"], r["result"]) for r in doc["records"]]

    assert actions() == [("apply", "succeeded")]
    declined = on_a_terminal(repo, "destroy", "--tag", US, answer="no\n")
    assert declined.returncode == 1 and actions() == [("apply", "succeeded")]  # nothing changed: no record
    tfdeploy(repo, "destroy", "--tag", US, "--auto-approve")
    assert actions() == [("destroy", "succeeded"), ("apply", "succeeded")]
    [record] = [r for r in json.loads(tfdeploy(repo, "history", "--tag", US, "--json").stdout)["records"]
                if r["action"] == "destroy"]
    assert (record["add"], record["change"], record["destroy"]) == (0, 0, 1) and record["caller"]


def version_in(key: str) -> str | None:
    """The release version a cell's state holds (None: nothing deployed)."""
    found = state_of(BUCKET, key)["resources"]
    return found[0]["instances"][0]["attributes"]["input"]["value"]["version"] if found else None


def test_destroy_by_selection_touches_only_cells_running_the_selected_version(repo):
    """`destroy --tag 'dev_*/research/1.1'` destroys the cells whose last successful apply was
    1.1; a cell that runs 1.3 is listed as skipped, with its version, before the confirmation and
    in the result, and keeps its resources. --any-version is the explicit way to destroy it."""
    old = ("dev_us-east-1/research/1.1", "dev_eu-central-1/research/1.1")
    for name in old:
        tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", "dev_*/research/1.1", "--auto-approve")
    git(repo, "commit", "-q", "--allow-empty", "-m", "release 1.3")
    tag(repo, "dev_us-east-1/research/1.3")
    tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.3", "--auto-approve")
    assert (version_in(US_KEY), version_in(EU_KEY)) == ("1.3", "1.1")

    run = tfdeploy(repo, "destroy", "--tag", "dev_*/research/1.1", "--auto-approve", "--json", check=False)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    # Listed before the confirmation (the line naming what goes), with the version it runs.
    before = run.stderr[:run.stderr.index("destroy 1 cells")]
    assert "dev-us-east-1-research runs 1.3" in before, run.stderr
    cells = {c["cell"]: c for c in json.loads(run.stdout)["cells"]}
    assert cells["dev-eu-central-1-research"]["result"] == "destroyed"
    assert cells["dev-us-east-1-research"]["result"] == "skipped"
    assert "runs 1.3" in cells["dev-us-east-1-research"]["reason"]
    assert (version_in(US_KEY), version_in(EU_KEY)) == ("1.3", None)

    # One exact tag of another version is refused the same way, in one line, nothing planned.
    proc = tfdeploy(repo, "destroy", "--tag", "dev_us-east-1/research/1.1", "--auto-approve", check=False)
    assert proc.returncode == 2 and "runs 1.3" in one_error_line(proc) and "--any-version" in proc.stderr
    assert version_in(US_KEY) == "1.3"

    # --any-version: every selected cell is destroyed, whatever it runs.
    tfdeploy(repo, "destroy", "--tag", "dev_*/research/1.1", "--auto-approve", "--any-version")
    assert (version_in(US_KEY), version_in(EU_KEY)) == (None, None)


def test_a_global_cell_stays_while_its_skipped_regions_run_on_it():
    """Pure: the choice of what a destroy by version touches (the e2e test above covers the ledger)."""
    from tfdeploy.fleet.destroyscope import choose

    tags = [parse_tag(n) for n in ("dev_global/research/1.1", "dev_us-east-1/research/1.1",
                                   "dev_eu-central-1/research/1.1", "qa_global/research/1.1")]
    chosen, skipped = choose(tags, {"dev-global-research": "1.1", "dev-us-east-1-research": "1.3",
                                    "dev-eu-central-1-research": "1.1"})
    assert [t.name for t in chosen] == ["dev_eu-central-1/research/1.1", "qa_global/research/1.1"]
    assert [(s.tag.cell, s.runs) for s in skipped] == [("dev-us-east-1-research", "1.3"),
                                                      ("dev-global-research", "1.1")]
    assert "its Regions dev-us-east-1-research run another version" in skipped[1].reason
