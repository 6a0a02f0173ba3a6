"""A 9-cell release, published as one execution and run offline through the generated buildspecs
(`tfdeploy pipeline run`): lint and scan once, the plan and apply stages as batch builds in waves,
the approval in between; 9 states at their keys, global first, the canary before the rest, a ledger
record per cell naming the release and the build. A failing canary stops the other Regions.
Real git, real Terraform, real checkov, moto; tflint is a TEST DOUBLE (tests/quality)."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import boto3
import pytest

from tests.conftest import git
from tests.delivery.conftest import PREFIX, create_pipeline
from tests.delivery.test_pipeline_e2e import pipeline_env  # noqa: F401  (fixture)

REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1",
           "ap-southeast-1", "ap-northeast-1")
TEAM_VARS = "envs/dev/research/variables.tfvars"
STATE_BUCKET = f"{PREFIX}-dev"
SOURCE_BUCKET = f"{PREFIX}-source-dev"


def cli(env: dict[str, str], repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    exe = str(Path(env["PATH"].split(os.pathsep)[0]) / "tfdeploy")
    proc = subprocess.run([exe, *args, "--repo", str(repo)], env=env, capture_output=True, text=True,
                          timeout=900, cwd=repo)
    if check:
        assert proc.returncode == 0, f"{args}:\n{proc.stderr}\n{proc.stdout}"
    return proc


def release(repo: Path, version: str, extra: dict[str, str] | None = None,
            regions: tuple[str, ...] = REGIONS) -> list[str]:
    files = {TEAM_VARS: 'account         = "111111111111"\nallowed_regions = [' + ", ".join(f'"{r}"' for r in regions)
             + "]\n", **(extra or {})}
    for rel, text in files.items():
        (repo / rel).write_text(text)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", f"release {version}")
    names = [f"dev_{s}/research/{version}" for s in ("global", *regions)]
    for name in names:
        git(repo, "tag", "-a", name, "-m", f"release {name}")
    return names


def buckets() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in (SOURCE_BUCKET, STATE_BUCKET):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    create_pipeline("dev")


def state_keys() -> list[str]:
    s3 = boto3.client("s3", region_name="us-east-1")
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=STATE_BUCKET).get("Contents", [])
                  if o["Key"].endswith("terraform.tfstate"))


def ledger(cell: str) -> list[dict]:
    s3 = boto3.client("s3", region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=STATE_BUCKET, Prefix=f"_tfdeploy-ledger/{cell}/").get(
        "Contents", []) if not o["Key"].endswith("/_latest.json")]
    return [json.loads(s3.get_object(Bucket=STATE_BUCKET, Key=k)["Body"].read()) for k in keys]


@pytest.mark.slow
def test_a_nine_cell_release_is_one_execution_run_offline_in_waves(infra_repo, pipeline_env, tmp_path):  # noqa: F811
    buckets()
    names = release(infra_repo, "1.1")
    env = {**pipeline_env, "TF_BACKEND_CONFIG_PREFIX": PREFIX}

    published = json.loads(cli(env, infra_repo, "publish", "--tag", "dev_*/research/1.1", "--json").stdout)
    assert published["release"] == "dev/research/1.1"
    assert published["tag"] == "dev_global/research/1.1"  # the execution names the first wave's tag
    assert published["tags"][:2] == ["dev_global/research/1.1", "dev_ap-northeast-1/research/1.1"]
    assert sorted(published["tags"]) == sorted(names)
    codepipeline = boto3.client("codepipeline", region_name="us-east-1")
    executions = codepipeline.list_pipeline_executions(pipelineName="tfdeploy-dev")["pipelineExecutionSummaries"]
    assert [e["pipelineExecutionId"] for e in executions] == [published["execution_id"]]  # one execution
    versions = boto3.client("s3", region_name="us-east-1").list_object_versions(
        Bucket=SOURCE_BUCKET, Prefix="source/dev/source.zip")["Versions"]
    assert len(versions) == 1  # one bundle
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=SOURCE_BUCKET, Key="source/dev/source.zip")
    with zipfile.ZipFile(io.BytesIO(body["Body"].read())) as archive:
        meta = json.loads(archive.read("tfdeploy-source.json"))
    assert meta["tags"] == published["tags"] and meta["release"] == "dev/research/1.1"

    # Without --approve: lint, scan, the plan batch; stops at the approval, nothing applied.
    planned = cli(env, infra_repo, "pipeline", "run", "--env", "dev", "--json")
    doc = json.loads(planned.stdout)
    assert doc["ok"] is True
    assert [(s["name"], s["status"]) for s in doc["stages"]] == [
        ("source", "succeeded"), ("lint", "succeeded"), ("scan", "succeeded"), ("plan", "succeeded"),
        ("approval", "pending"), ("apply", "not run")]
    assert [len(s["builds"]) for s in doc["stages"]][1:4] == [1, 1, 9]  # lint and scan once per release
    plan = doc["stages"][3]["builds"]
    assert all(set(b) >= {"id", "tag", "status", "wave"} for b in plan)
    assert {b["tag"]: b["wave"] for b in plan}["dev_global/research/1.1"] == 0
    assert {b["tag"]: b["wave"] for b in plan}["dev_ap-northeast-1/research/1.1"] == 1
    assert sorted(b["wave"] for b in plan) == [0, 1] + [2] * 7
    assert "tfdeploy pipeline run --env dev --approve" in planned.stderr
    # One approval for the release: its plan matrix (wave, cell, +/~/-, plan log), also as artifacts.
    assert all(b["plan"] == {"add": 1, "change": 0, "destroy": 0} for b in plan)
    assert "[approval] release dev/research/1.1: plans of 9 cells" in planned.stderr
    assert re.search(r"^\[approval\] 1 +dev_ap-northeast-1/research/1.1 +\+1 ~0 -0 +\S+\.log$", planned.stderr,
                     re.M), planned.stderr
    work = Path(doc["work_dir"])
    assert json.loads((work / "plan-summary.json").read_text())["cells"] == plan
    assert (work / "plan-summary.txt").read_text().count("+1 ~0 -0") == 9
    assert state_keys() == []

    approved = cli(env, infra_repo, "pipeline", "run", "--env", "dev", "--approve", "--json")
    doc = json.loads(approved.stdout)
    assert doc["ok"] is True, approved.stderr
    assert [(s["name"], s["status"]) for s in doc["stages"]][3:] == [
        ("plan", "succeeded"), ("approval", "succeeded"), ("apply", "succeeded")]
    assert "resuming at the approval" in approved.stderr  # the plans made before, never planned again
    assert state_keys() == sorted(f"research/dev-{s}/terraform.tfstate" for s in ("global", *REGIONS))
    apply = {b["tag"]: b for b in doc["stages"][5]["builds"]}
    # Global first, the canary before the rest: from the ledger records' times.
    records = {s: ledger(f"dev-{s}-research") for s in ("global", *REGIONS)}
    final = {s: [r for r in rs if r.get("result") == "succeeded"][-1] for s, rs in records.items()}
    for scope, record in final.items():
        assert record["details"]["release"] == "dev/research/1.1"
        assert record["details"]["build"] == f"local:{doc['execution_id']}:apply:dev_{scope.replace('-', '_')}_research"
        assert apply[f"dev_{scope}/research/1.1"]["status"] == "succeeded"

    def when(scope: str, key: str) -> str:
        return final[scope][key]

    assert all(when("global", "finished_at") <= when(s, "started_at") for s in REGIONS)
    assert all(when("ap-northeast-1", "finished_at") <= when(s, "started_at") for s in REGIONS
               if s != "ap-northeast-1")

    # status --release: the release's cells in waves, their results, each build's log.
    status = json.loads(cli(env, infra_repo, "status", "--release", "dev/research/1.1", "--json").stdout)
    assert status["ok"] is True
    rows = status["cells"]
    assert [r["wave"] for r in rows] == [0, 1] + [2] * 7
    assert rows[0]["cell"] == "dev-global-research" and rows[1]["cell"] == "dev-ap-northeast-1-research"
    assert {r["result"] for r in rows} == {"succeeded"} and {r["release"] for r in rows} == {"dev/research/1.1"}
    assert all(Path(r["log"]).is_file() and "Apply complete!" in Path(r["log"]).read_text() for r in rows)
    text = cli(env, infra_repo, "status", "--release", "dev/research/1.1").stdout
    assert text.startswith("release dev/research/1.1: 9 cells in 3 waves") and "9 of 9 cells succeeded" in text


@pytest.mark.slow
def test_a_failing_canary_stops_the_other_regions_in_the_apply_batch(infra_repo, pipeline_env, tmp_path):  # noqa: F811
    buckets()
    # The canary (ap-northeast-1) plans fine and fails at apply: its provisioner runs `sleep -1`.
    release(infra_repo, "1.2", {"envs/dev/research/ap-northeast-1.tfvars": "apply_delay_seconds = -1\n"})
    env = {**pipeline_env, "TF_BACKEND_CONFIG_PREFIX": PREFIX}
    cli(env, infra_repo, "publish", "--tag", "dev_*/research/1.2")
    run = cli(env, infra_repo, "pipeline", "run", "--env", "dev", "--approve", "--json", check=False)
    assert run.returncode == 1
    doc = json.loads(run.stdout)
    assert doc["ok"] is False
    apply = {b["tag"].split("/")[0][4:]: b["status"] for b in doc["stages"][5]["builds"]}
    assert apply == {"global": "succeeded", "ap-northeast-1": "failed",
                     **{r: "skipped" for r in REGIONS if r != "ap-northeast-1"}}
    assert state_keys() == ["research/dev-ap-northeast-1/terraform.tfstate", "research/dev-global/terraform.tfstate"]
    status = json.loads(cli(env, infra_repo, "status", "--release", "dev/research/1.2", "--json").stdout)
    assert status["ok"] is False
    assert [(r["wave"], r["result"]) for r in status["cells"]][:3] == [
        (0, "succeeded"), (1, "failed"), (2, "not deployed")]
    bad = cli(env, infra_repo, "status", "--release", "dev/research", check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "tfdeploy: error: --release 'dev/research' is not ENV/TEAM/VERSION, e.g. dev/research/1.1")
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("tfdeploy: error: stage apply of execution ") and "dev_ap-northeast-1/research/1.2 failed" in last
    assert "Traceback" not in run.stderr

    # The execution's plans are spent: running it again is refused, naming the way on.
    again_run = cli(env, infra_repo, "pipeline", "run", "--env", "dev", "--approve", check=False)
    assert again_run.returncode == 2
    assert again_run.stderr.strip().splitlines()[-1] == (
        f"tfdeploy: error: execution {doc['execution_id']} of tfdeploy-dev was already applied (failed); to apply "
        "the cells that did not succeed: tfdeploy publish --tag '<env>_*/<team>/<version>' --only-failed, then "
        "tfdeploy pipeline run --env dev --approve")
    # The fix: the canary's tfvars, and the unfinished cells' tags moved to it; global stays.
    (infra_repo / "envs/dev/research/ap-northeast-1.tfvars").write_text('greeting = "konnichiwa"\n')
    git(infra_repo, "add", ".")
    git(infra_repo, "commit", "-qm", "fix the canary")
    for region in REGIONS:
        git(infra_repo, "tag", "-f", "-a", f"dev_{region}/research/1.2", "-m", "release 1.2 (fixed)")
    again = cli(env, infra_repo, "publish", "--tag", "dev_*/research/1.2", "--only-failed", "--json")
    republished = json.loads(again.stdout)
    assert sorted(republished["tags"]) == sorted(f"dev_{r}/research/1.2" for r in REGIONS)  # not global
    assert "already applied: dev-global-research" in again.stderr
    rerun = json.loads(cli(env, infra_repo, "pipeline", "run", "--env", "dev", "--approve", "--json").stdout)
    assert rerun["ok"] is True and rerun["execution_id"] == republished["execution_id"]
    assert [b["wave"] for b in rerun["stages"][5]["builds"]] == [0] + [1] * 7  # the canary first again
    assert len(state_keys()) == 9
    global_applies = [r for r in ledger("dev-global-research") if r["action"] == "apply"]
    # One run, never again: its `started` record and its final one.
    assert sorted(r["result"] for r in global_applies) == ["started", "succeeded"]
    nothing = cli(env, infra_repo, "publish", "--tag", "dev_*/research/1.2", "--only-failed")
    assert nothing.stdout.startswith("nothing to publish: every cell of the release is applied (9 cells)")


@pytest.mark.slow
@pytest.mark.safety
def test_a_stopped_apply_stage_stops_its_builds_and_its_spent_plans_are_never_applied_again(
        infra_repo, pipeline_env, tmp_path):  # noqa: F811
    """SIGTERM to `pipeline run --approve` while a cell's apply runs: the build's tfdeploy stops its
    Terraform and records the run, the command ends in one line naming each build, and the
    execution counts as applied: its plans are spent (global's was applied), so the next run is
    refused with the way on instead of applying them again."""
    import signal
    import time

    buckets()
    release(infra_repo, "1.3", {"envs/dev/research/us-east-1.tfvars": "apply_delay_seconds = 47\n"},
            regions=("us-east-1",))
    env = {**pipeline_env, "TF_BACKEND_CONFIG_PREFIX": PREFIX}
    cli(env, infra_repo, "publish", "--tag", "dev_*/research/1.3")
    exe = str(Path(env["PATH"].split(os.pathsep)[0]) / "tfdeploy")
    run = subprocess.Popen([exe, "pipeline", "run", "--env", "dev", "--approve", "--repo", str(infra_repo)],
                           env=env, cwd=infra_repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and run.poll() is None and not any(
                r["result"] == "started" for r in ledger("dev-us-east-1-research")):
            time.sleep(0.5)
        assert run.poll() is None, run.communicate()
        time.sleep(2)  # into the provisioner's sleep
        run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 143, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("tfdeploy: error: interrupted (SIGTERM): the batch was stopped ("), last
    assert "stopped: dev_us_east_1_research" in last and "succeeded: dev_global_research" in last
    assert "Traceback" not in err
    final = [r for r in ledger("dev-us-east-1-research") if r["result"] != "started"]
    assert [r["result"] for r in final] == ["interrupted"]
    assert subprocess.run(["pgrep", "-f", "sleep 47"], capture_output=True).returncode == 1  # nothing left running

    again = cli(env, infra_repo, "pipeline", "run", "--env", "dev", "--approve", check=False)
    assert again.returncode == 2, again.stderr
    assert again.stderr.strip().splitlines()[-1].endswith(
        "was already applied (interrupted); to apply the cells that did not succeed: tfdeploy publish --tag "
        "'<env>_*/<team>/<version>' --only-failed, then tfdeploy pipeline run --env dev --approve")
    assert [r["result"] for r in ledger("dev-global-research") if r["action"] == "apply"].count("succeeded") == 1
