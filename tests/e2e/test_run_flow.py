"""`tfdeploy run`: lint -> scan -> plan -> apply in order, with real checkov and Terraform."""

from __future__ import annotations

import json

import boto3

from tests.e2e.conftest import tag, tfdeploy


def _keys(bucket):
    s3 = boto3.client("s3", region_name="us-east-1")
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []) if o["Key"].endswith(".tfstate")]


def test_run_stops_before_apply_without_auto_approve_then_applies_with_it(repo, checkov_bin, monkeypatch):
    monkeypatch.setenv("TFDEPLOY_CHECKOV", checkov_bin)
    name = "dev_us-east-1/research/1.0"
    tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")

    first = tfdeploy(repo, "run", "--tag", name, "--allow-missing", "tflint", "--json")
    report = json.loads(first.stdout)
    assert [(s["stage"], s["status"]) for s in report["stages"]] == [
        ("lint", "passed"), ("scan", "passed"), ("plan", "passed"), ("apply", "skipped")]
    assert "[3/4] plan passed +1 ~0 -0" in first.stderr
    assert _keys("demo-tfstate-dev") == []

    # The saved plan can be scanned through checkov's plan framework, and survives the scan.
    scanned = json.loads(tfdeploy(repo, "scan", "--tag", name, "--saved-plan", "--json").stdout)
    assert scanned["stage"] == "scan-plan" and scanned["status"] == "passed"
    assert scanned["result_file"].endswith("scan-plan.result.json")

    # The saved plan from the run is the one `apply` applies.
    tfdeploy(repo, "apply", "--tag", name)
    assert _keys("demo-tfstate-dev") == ["research/dev-us-east-1/terraform.tfstate"]

    again = tfdeploy(repo, "run", "--tag", name, "--allow-missing", "tflint", "--auto-approve")
    assert "apply passed" in again.stdout
    # Both applies are in the ledger (run's too), newest first, with the saved plan's checksum.
    records = json.loads(tfdeploy(repo, "history", "--tag", name, "--json").stdout)["records"]
    assert [(r["action"], r["result"], r["add"]) for r in records] == [("apply", "succeeded", 0),
                                                                        ("apply", "succeeded", 1)]
    assert all(len(r["plan_sha256"]) == 64 for r in records)


def test_run_stops_at_the_first_failing_stage(repo, checkov_bin, monkeypatch):
    monkeypatch.setenv("TFDEPLOY_CHECKOV", checkov_bin)
    (repo / "main.tf").write_text((repo / "main.tf").read_text() + "\nvariable   \"badly\"   {\n type = string\n}\n")
    from tests.conftest import git
    git(repo, "commit", "-qam", "mis-formatted")
    name = "dev_us-east-1/research/1.1"
    tag(repo, name)
    proc = tfdeploy(repo, "run", "--tag", name, "--allow-missing", "tflint", check=False)
    assert proc.returncode == 1
    assert "run dev_us-east-1/research/1.1: lint failed" in proc.stdout
    assert "main.tf" in proc.stdout  # the finding names the file to fix
    assert "scan" not in proc.stdout.split("run dev_us-east-1")[-1]
