"""`tfdeploy drift` (issue 12, item 4): a refresh-and-plan of every deployed cell at the tag it last
applied, in parallel; drifted cells named with the resources that differ; exit 2 when any drifted;
each check recorded in the ledger so `status` marks the cell; one notification listing them.

End to end with real Terraform, git and moto. Real drift needs a real provider: the AWS provider
from the filesystem mirror (an SSM parameter changed behind Terraform's back); without it the
always-running scenario covers in-sync, failed and skipped checks, and that nothing but the
ledger is written.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import boto3
import pytest
from tfdeploy.fleet.drift import (
    CellCheck,
    change_counts,
    deployed_cells,
    describe,
    differing_resources,
    document,
    exit_code,
    render,
    source_problem,
)
from tfdeploy.fleet.ledger import Record, record_for
from tfdeploy.model.tags import parse_tag

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy
from tests.fleetstate.test_notify import _received, _topic_with_queue
from tests.statecheck import s3

BUCKET = "demo-tfstate-dev"
US, EU = "dev_us-east-1/research/1.0", "dev_eu-central-1/research/1.0"
US_CELL, EU_CELL = "dev-us-east-1-research", "dev-eu-central-1-research"
STATES = ("research/dev-us-east-1/terraform.tfstate", "research/dev-eu-central-1/terraform.tfstate")
MIRROR = Path(os.environ.get("TFDEPLOY_TEST_PROVIDER_MIRROR", "/opt/tf-plugins"))
HAS_AWS = (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir()
ACCOUNT = "111111111111"  # the example repo's research account

_clock = itertools.count(1)


def rec(tag_name: str, action: str = "apply", result: str = "succeeded", commit: str = "a" * 40) -> Record:
    n = next(_clock)
    return record_for(parse_tag(tag_name), commit=commit, action=action, result=result, add=1, change=0,
                      destroy=0, caller="", started_at=f"2026-11-20T10:{n:02d}:00.000Z",
                      finished_at=f"2026-11-20T10:{n:02d}:30.000Z", plan_sha256="", tfdeploy_version="0",
                      build_id="")


# --- pure ------------------------------------------------------------------------------------------

def test_cells_to_check_are_the_deployed_ones_at_their_last_successful_apply():
    latest = {
        US_CELL: [rec(US), rec("dev_us-east-1/research/1.1", result="failed")][::-1],
        EU_CELL: [rec(EU), rec(EU, action="destroy")][::-1],  # destroyed since: nothing to check
        "dev-us-east-1-risk": [rec("dev_us-east-1/risk/2.0", result="failed")],  # never succeeded
        "qa-us-east-1-research": [rec("qa_us-east-1/research/1.0")],
        "not-a-cell": [rec(US)],
    }
    chosen = deployed_cells(latest, ["dev", "qa"])
    assert [(r.cell, r.tag) for r in chosen] == [(US_CELL, US), ("qa-us-east-1-research", "qa_us-east-1/research/1.0")]
    assert [r.cell for r in deployed_cells(latest, ["dev", "qa"], env="qa")] == ["qa-us-east-1-research"]
    assert deployed_cells(latest, ["dev", "qa"], team="risk") == []

    applied = rec(US, commit="c" * 40)
    assert source_problem(applied, "c" * 40) == ""
    moved = source_problem(applied, "d" * 40)
    assert f"tag {US} now points at dddddddddddd, but cccccccccccc was applied" in moved
    assert "is not in this repo" in source_problem(applied, None, "tag does not exist")


# A refresh-and-plan's `terraform show -json`, trimmed to what drift reads.
PLAN = {
    "resource_drift": [
        {"address": "module.regional.aws_ssm_parameter.cell", "change": {
            "actions": ["update"], "before": {"name": "/p", "value": "hello", "tags": {}},
            "after": {"name": "/p", "value": "changed", "tags": {}},
            "before_sensitive": {"value": True}, "after_sensitive": {"value": True}}},
        {"address": "module.regional.aws_ssm_parameter.gone", "change": {
            "actions": ["delete"], "before": {"name": "/g", "value": "x"}, "after": None}},
    ],
    "resource_changes": [
        {"address": "module.regional.aws_ssm_parameter.cell", "change": {
            "actions": ["update"], "before": {"name": "/p", "value": "changed", "tags": {}, "version": 2},
            "after": {"name": "/p", "value": "hello", "tags": {}}, "after_unknown": {"version": True},
            "before_sensitive": {"value": True}, "after_sensitive": {"value": True}}},
        {"address": "module.regional.aws_ssm_parameter.gone", "change": {
            "actions": ["create"], "before": None, "after": {"name": "/g", "value": "x"}}},
        {"address": "module.regional.terraform_data.same", "change": {"actions": ["no-op"]}},
        {"address": "module.regional.data.aws_region.here", "change": {"actions": ["read"]}},
        {"address": "module.regional.terraform_data.swap", "change": {
            "actions": ["delete", "create"], "before": {"input": 1}, "after": {"input": 2}}},
    ],
}


def test_plan_json_to_the_resources_that_differ_with_sensitive_values_hidden():
    from tfdeploy.engine.redact import redact_show

    found = differing_resources(PLAN, redact_show(PLAN))
    by_address = {r["address"]: r for r in found}
    assert list(by_address) == ["module.regional.aws_ssm_parameter.cell", "module.regional.aws_ssm_parameter.gone",
                                "module.regional.terraform_data.swap"]
    changed = by_address["module.regional.aws_ssm_parameter.cell"]
    assert (changed["action"], changed["outside"]) == ("update", "update")
    # tags: {} read back for an unset value is no change; version: unknown after apply, no evidence.
    assert list(changed["attributes"]) == ["value"]
    # A sensitive value differs (found on the raw plan) but is never shown, nor anywhere else.
    assert changed["attributes"]["value"] == {"actual": "<sensitive>", "expected": "<sensitive>"}
    assert "hello" not in json.dumps(found) and "changed" not in json.dumps(found)
    gone = by_address["module.regional.aws_ssm_parameter.gone"]
    assert (gone["action"], gone["outside"], gone["attributes"]) == ("create", "delete", {})
    assert by_address["module.regional.terraform_data.swap"]["action"] == "replace"
    assert describe(changed) == ("module.regional.aws_ssm_parameter.cell: changed outside Terraform; "
                                 "plan: update (value)")
    assert describe(gone) == "module.regional.aws_ssm_parameter.gone: deleted outside Terraform; plan: create"
    assert change_counts(PLAN) == (2, 1, 1)
    assert differing_resources({"resource_changes": [PLAN["resource_changes"][2]]}, {}) == []
    # Read back with an empty value normalised (null -> {}), nothing planned: not drift.
    normalised = {"resource_drift": [{"address": "a.b", "change": {
        "actions": ["update"], "before": {"tags": None, "n": 1}, "after": {"tags": {}, "n": 1}}}],
        "resource_changes": [{"address": "a.b", "change": {"actions": ["no-op"]}}]}
    assert differing_resources(normalised, normalised) == []


def test_exit_code_and_document():
    ok = CellCheck(US_CELL, US, "in-sync")
    drifted = CellCheck(EU_CELL, EU, "drifted", [{"address": "a", "action": "update", "outside": None}])
    assert exit_code([ok]) == 0 and exit_code([ok, drifted]) == 2
    assert exit_code([drifted, CellCheck("c", "t", "skipped")]) == 1  # an incomplete answer wins
    assert exit_code([ok, CellCheck("c", "t", "failed")]) == 1 and exit_code([ok], signum=2) == 130
    doc = document([ok, drifted])
    assert doc["ok"] is False and doc["drifted"] == [EU_CELL]
    assert doc["cells"][1] == {"cell": EU_CELL, "tag": EU, "result": "drifted", "resources": drifted.resources,
                               "log": ""}
    assert document([]) == {"ok": True, "drifted": [], "cells": []}
    text = render([ok, drifted, CellCheck("c", "t", "skipped", error="tag t is not in this repo")])
    lines = text.splitlines()
    assert lines[0].split() == ["CELL", "TAG", "RESULT", "DIFFERS", "LOG"]
    assert lines[2].split()[:4] == [EU_CELL, EU, "drifted", "1"]
    assert f"{EU_CELL} ({EU}) drifted:" in lines and "c skipped: tag t is not in this repo" in lines
    assert lines[-1] == "3 cells: 1 in-sync, 1 drifted, 1 skipped"


# --- end to end ------------------------------------------------------------------------------------

def state_versions() -> dict[str, str]:
    """The state objects' current version ids and ETags: a drift check must not change them."""
    return {key: (head["VersionId"], head["ETag"]) for key in STATES
            for head in [s3().head_object(Bucket=BUCKET, Key=key)]}


def drift_records(repo: Path, cell: str) -> list[dict]:
    doc = json.loads(tfdeploy(repo, "history", "--cell", cell, "--json").stdout)
    return [r for r in doc["records"] if r["action"] == "drift"]


def released(repo: Path) -> Path:
    for name in (US, EU):
        tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "2")
    return repo


def test_in_sync_failed_and_skipped_checks_touch_nothing_but_the_ledger(repo):
    released(repo)
    # A saved plan waiting in a cell's own work dir: a drift check must leave it as it is.
    tfdeploy(repo, "plan", "--tag", US)
    saved = repo / ".tfdeploy/work" / US_CELL / "tfdeploy.tfplan"
    saved_bytes = saved.read_bytes()
    before = state_versions()

    run = tfdeploy(repo, "drift", "--json", "--parallel", "2")
    doc = json.loads(run.stdout)
    assert doc["ok"] is True and doc["drifted"] == []
    assert [(c["cell"], c["tag"], c["result"], c["resources"]) for c in doc["cells"]] == [
        (EU_CELL, EU, "in-sync", []), (US_CELL, US, "in-sync", [])]
    assert all(Path(c["log"]).is_file() and "plan only" in Path(c["log"]).read_text() for c in doc["cells"])
    assert state_versions() == before
    assert saved.read_bytes() == saved_bytes
    assert not list((repo / ".tfdeploy/drift").rglob("*.tfplan")), "no plan left behind"
    [check] = drift_records(repo, US_CELL)
    assert (check["result"], check["tag"], check["details"]) == ("in-sync", US, {"resources": []})
    status = {c["cell"]: c for c in json.loads(tfdeploy(repo, "status", "--json").stdout)["cells"]}
    assert status[US_CELL]["marks"] == [] and status[US_CELL]["drift"]["result"] == "in-sync"

    # The EU tag moved to another commit: skipped with the reason. The US plan fails: a failed check.
    git(repo, "commit", "-q", "--allow-empty", "-m", "another commit")
    git(repo, "tag", "-f", "-a", EU, "-m", "moved")
    bad = tfdeploy(repo, "drift", "--json", check=False, env={"TF_VAR_apply_delay_seconds": "soon"})
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    cells = {c["cell"]: c for c in json.loads(bad.stdout)["cells"]}
    assert cells[EU_CELL]["result"] == "skipped" and "now points at" in cells[EU_CELL]["error"]
    assert cells[US_CELL]["result"] == "failed" and "terraform plan failed" in cells[US_CELL]["error"]
    assert bad.stderr.strip().splitlines()[-1] == (
        "tfdeploy: error: 2 of 2 cells could not be checked (dev-eu-central-1-research: skipped, "
        "dev-us-east-1-research: failed); see the reasons above")
    assert state_versions() == before and saved.read_bytes() == saved_bytes
    newest = drift_records(repo, US_CELL)[0]
    assert newest["result"] == "failed" and "terraform plan failed" in newest["details"]["error"]
    assert len(drift_records(repo, EU_CELL)) == 1  # a skipped cell ran nothing: nothing recorded
    status = {c["cell"]: c for c in json.loads(tfdeploy(repo, "status", "--json").stdout)["cells"]}
    assert status[US_CELL]["drift"]["result"] == "in-sync"  # a failed check answers nothing


AWS_REGIONAL = """\
variable "env" { type = string }
variable "region" { type = string }
variable "team" { type = string }
variable "version_label" { type = string }
variable "greeting" { type = string }
variable "apply_delay_seconds" { type = number }

terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

resource "aws_ssm_parameter" "cell" {
  name  = "/${var.team}/${var.env}/${var.region}/greeting"
  type  = "String"
  value = var.greeting
}

output "message" {
  value = aws_ssm_parameter.cell.name
}
"""


def _ssm(region: str):
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/InfraBuildRole", RoleSessionName="test")["Credentials"]
    return boto3.client("ssm", region_name=region, aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])


@pytest.mark.skipif(not HAS_AWS, reason=f"no local mirror of hashicorp/aws at {MIRROR} (the registry is "
                                         "unreachable here); set TFDEPLOY_TEST_PROVIDER_MIRROR to one")
def test_a_value_changed_behind_terraforms_back_is_drift_status_shows_it_and_people_are_told(
        tmp_path, sandbox_env, monkeypatch):
    monkeypatch.setenv("TFDEPLOY_PROVIDER_MIRROR", str(MIRROR))
    repo = make_repo(tmp_path / "infra", lock="dynamodb")
    (repo / "modules" / "regional" / "main.tf").write_text(AWS_REGIONAL)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "an SSM parameter per cell")
    released(repo)
    topic, queue = _topic_with_queue()
    name = "/research/dev/eu-central-1/greeting"
    applied = _ssm("eu-central-1").get_parameter(Name=name)["Parameter"]["Value"]
    _ssm("eu-central-1").put_parameter(Name=name, Value="changed by hand", Type="String", Overwrite=True)
    before = state_versions()

    run = tfdeploy(repo, "drift", "--json", check=False, env={"TFDEPLOY_NOTIFY_TOPIC_ARN": topic})
    assert run.returncode == 2, run.stderr
    doc = json.loads(run.stdout)
    assert doc["ok"] is False and doc["drifted"] == [EU_CELL]
    cells = {c["cell"]: c for c in doc["cells"]}
    assert cells[US_CELL]["result"] == "in-sync" and cells[US_CELL]["resources"] == []
    [resource] = cells[EU_CELL]["resources"]
    assert resource["address"] == "module.regional.aws_ssm_parameter.cell"
    assert (resource["action"], resource["outside"]) == ("update", "update")
    # The provider marks an SSM parameter's value sensitive: named, never shown.
    assert resource["attributes"]["value"] == {"actual": "<sensitive>", "expected": "<sensitive>"}
    assert "changed by hand" not in run.stdout + run.stderr and applied not in run.stdout
    assert run.stderr.strip().splitlines()[-1] == f"tfdeploy: 1 of 2 cells drifted: {EU_CELL}"
    assert state_versions() == before, "a drift check never writes the state"
    assert _ssm("eu-central-1").get_parameter(Name=name)["Parameter"]["Value"] == "changed by hand"

    status = {c["cell"]: c["marks"] for c in json.loads(tfdeploy(repo, "status", "--json").stdout)["cells"]}
    assert [cell for cell, marks in status.items() if "drifted" in marks] == [EU_CELL]
    [check] = drift_records(repo, EU_CELL)
    assert check["result"] == "drifted" and check["details"]["resources"] == [resource]

    (envelope,) = _received(queue, 1)
    assert envelope["Subject"] == f"tfdeploy: drift in 1 cell(s): {EU_CELL}"
    message = json.loads(envelope["Message"])
    assert (message["event"], message["result"], message["cell"]) == ("drift-detected", "drifted", EU_CELL)
    assert message["drifted"] == [{"cell": EU_CELL, "tag": EU, "resources": [resource]}]

    # The plan-file reader (engine/planchanges.py) says what `terraform show -json` says: the same
    # actions, values and sensitive masks, hence the same differing resources.
    from tfdeploy.engine.planchanges import read_changes
    from tfdeploy.engine.redact import redact_show

    shown = json.loads(tfdeploy(repo, "plan", "--tag", EU, "--json").stdout)["plan"]
    read = redact_show(read_changes(repo / ".tfdeploy/work" / EU_CELL / "tfdeploy.tfplan"))
    for key in ("resource_changes", "resource_drift"):
        want = {(rc["address"], tuple(rc["change"]["actions"])): (rc["change"]["before"], rc["change"]["after"])
                for rc in shown.get(key) or []}
        got = {(rc["address"], tuple(rc["change"]["actions"])): (rc["change"]["before"], rc["change"]["after"])
               for rc in read[key]}
        assert got == want and got, key
    assert differing_resources(read, read) == differing_resources(shown, shown)


def test_a_drift_check_is_one_terraform_run_per_cell_and_init_only_the_first_time(repo, tmp_path, terraform_bin):
    """Issue 24: every start of a real provider costs seconds, so a check is the refresh-and-plan
    alone: no `terraform show` of the plan (tfdeploy reads the plan file itself), and no init
    when the cell's drift work dir is already initialised for the same backend and providers."""
    released(repo)
    log = tmp_path / "terraform-commands.log"
    wrapper = tmp_path / "terraform-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{terraform_bin}" "$@"\n')
    wrapper.chmod(0o755)
    env = {"TFDEPLOY_TERRAFORM": str(wrapper)}

    first = json.loads(tfdeploy(repo, "drift", "--json", env=env).stdout)
    assert [c["result"] for c in first["cells"]] == ["in-sync", "in-sync"]
    assert sorted(log.read_text().split()) == ["init", "init", "plan", "plan"]
    log.unlink()
    again = json.loads(tfdeploy(repo, "drift", "--json", env=env).stdout)
    assert [c["result"] for c in again["cells"]] == ["in-sync", "in-sync"]
    assert sorted(log.read_text().split()) == ["plan", "plan"]
    assert not list((repo / ".tfdeploy/drift").rglob("*.tfplan")), "no plan left behind"

