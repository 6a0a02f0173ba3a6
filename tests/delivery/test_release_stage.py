"""A release's plan and apply stage builds on CodeBuild: each starts its batch (StartBuildBatch with
the batch buildspec tfdeploy generated), waits, and fails naming each cell and its result; each
cell's plan goes from the plan batch to its apply build, which applies exactly that plan.

CodeBuild is tests/delivery/fake_codebuild.py (TEST DOUBLE: moto has no batch API), which runs
each cell build of the graph with tfdeploy's local runner: real `tfdeploy ci plan|apply`, real
Terraform, the published bundle read from moto's S3 at the pinned object version."""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import boto3
import pytest
from tfdeploy import __version__

from tests.delivery.conftest import PREFIX, unzip_source
from tests.delivery.fake_codebuild import FakeCodeBuild
from tests.delivery.test_pipeline_e2e import pipeline_env  # noqa: F401  (fixture)
from tests.delivery.test_release_pipeline import SOURCE_BUCKET, buckets, cli, ledger, release, state_keys

REGIONS = ("us-east-1", "us-east-2", "us-west-2")  # canary: us-east-1 (the first in code order)
ARTIFACTS = "tfdeploy-dev-artifacts"


def stage_build(env: dict[str, str], stage: str, src: Path, published: dict, fake: FakeCodeBuild):
    """What the pipeline's plan/apply action runs: `tfdeploy ci STAGE` in a build of the project,
    with the variables modules/pipeline gives it."""
    exe = str(Path(env["PATH"].split(os.pathsep)[0]) / "tfdeploy")
    return subprocess.run([exe, "ci", stage], env=stage_env(env, stage, src, published, fake), capture_output=True,
                          text=True, timeout=900, cwd=src)


def stage_env(env: dict[str, str], stage: str, src: Path, published: dict, fake: FakeCodeBuild) -> dict[str, str]:
    """The stage build's environment: what modules/pipeline gives the plan/apply action's build."""
    return {**env, "CODEBUILD_SRC_DIR": str(src), "ENV": "dev", "TF_BACKEND_CONFIG_PREFIX": PREFIX,
                 "TFDEPLOY_EXPECTED_TAG": published["tag"], "TFDEPLOY_VERSION": __version__,
                 "TFDEPLOY_EXECUTION_ID": published["execution_id"],
                 "TFDEPLOY_SOURCE_VERSION": published["version_id"], "TFDEPLOY_ARTIFACT_BUCKET": ARTIFACTS,
                 "CODEBUILD_BUILD_ID": f"tfdeploy-dev-{stage}:stage-build", "AWS_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL_CODEBUILD": fake.url, "TFDEPLOY_BATCH_POLL_SECONDS": "0.5",
                 "TFDEPLOY_CELL_TIMEOUT_MINUTES": "60", "TFDEPLOY_BATCH_TIMEOUT_MINUTES": "480"}


@pytest.mark.slow
def test_stage_builds_run_the_release_as_batches_and_apply_exactly_each_cells_plan(infra_repo, pipeline_env,  # noqa: F811
                                                                                    tmp_path):
    buckets()
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=ARTIFACTS)
    names = release(infra_repo, "1.1", regions=REGIONS)
    env = {**pipeline_env, "TF_BACKEND_CONFIG_PREFIX": PREFIX}
    published = json.loads(cli(env, infra_repo, "publish", "--tag", "dev_*/research/1.1", "--json").stdout)
    fake = FakeCodeBuild(tmp_path / "codebuild", env)
    try:
        plan = stage_build(env, "plan", unzip_source(SOURCE_BUCKET, tmp_path / "plan-src", published["version_id"]),
                           published, fake)
        assert plan.returncode == 0, plan.stdout + plan.stderr
        # One StartBuildBatch: the generated graph, the pinned bundle as every build's source.
        [(operation, request)] = fake.requests[:1]
        assert operation == "StartBuildBatch" and request["projectName"] == "tfdeploy-dev-plan"
        assert request["sourceTypeOverride"] == "S3"
        assert request["sourceLocationOverride"] == f"{SOURCE_BUCKET}/source/dev/source.zip"
        assert request["sourceVersion"] == published["version_id"]
        assert request["artifactsOverride"] == {"type": "NO_ARTIFACTS"}  # each cell saves its own plan
        assert request["buildTimeoutInMinutesOverride"] == 60
        assert request["buildBatchConfigOverride"]["timeoutInMins"] == 480
        assert "# Release dev/research/1.1: plan of 4 cells in 3 waves" in request["buildspecOverride"]
        out = plan.stdout
        assert "plan of release dev/research/1.1: batch tfdeploy-dev-plan:" in out and "4 of 4 builds succeeded" in out
        # The approval: the plan matrix and the HTML report, artifacts of the stage build.
        assert "[approval] release dev/research/1.1: plans of 4 cells" in out
        assert out.count("+1 ~0 -0") == 4
        release_dir = tmp_path / "plan-src/.tfdeploy/ci/plan/work/_release"
        report = (release_dir / "plan-report.html").read_text()
        assert all(n in report for n in names)
        cells = json.loads((release_dir / "plan-summary.json").read_text())["cells"]
        assert [c["plan"] for c in cells] == [{"add": 1, "change": 0, "destroy": 0}] * 4
        exports = (tmp_path / "plan-src/.tfdeploy/ci/exports.env").read_text()
        assert "PLAN_SUMMARY=release dev/research/1.1: 4 of 4 cells planned, +4 ~0 -0 in all" in exports
        prefix = f"tfdeploy/releases/{published['execution_id']}/plan/"
        # Each cell's plan build: its CodeBuild console page, named by its build id, and the saved
        # plan its apply build will apply, in the report and in the summary the approval shows.
        summary_txt = (release_dir / "plan-summary.txt").read_text()
        for cell in cells:
            build = cell["build"]
            assert build.startswith("tfdeploy-dev-plan:") and build != "tfdeploy-dev-plan:stage-build"
            console = ("https://us-east-1.console.aws.amazon.com/codesuite/codebuild/111111111111/projects/"
                       f"tfdeploy-dev-plan/build/{build.replace(':', '%3A')}/?region=us-east-1")
            saved = f"s3://{ARTIFACTS}/{prefix}{cell['id']}.zip"
            assert (cell["log"], cell["artifact"]) == (console, saved)
            assert f'<a href="{console}">{build}</a><br><span class="note">saved plan <code>{saved}</code>' in report
            [line] = [ln for ln in summary_txt.splitlines() if f" {cell['tag']} " in ln]
            assert line.split()[-2:] == [console, saved]
        assert f"PLAN_REPORT=s3://{ARTIFACTS}/{prefix}plan-report.html" in exports
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACTS, Prefix=prefix)["Contents"]}
        assert {f"{prefix}dev_{s.replace('-', '_')}_research.zip" for s in ("global", *REGIONS)} <= keys
        assert state_keys() == []

        def artifact(scope: str) -> zipfile.ZipFile:
            key = f"{prefix}dev_{scope.replace('-', '_')}_research.zip"
            return zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=ARTIFACTS, Key=key)["Body"].read()))

        def put(scope: str, files: dict[str, bytes]) -> None:
            forged = io.BytesIO()
            with zipfile.ZipFile(forged, "w") as out_zip:
                for name, data in files.items():
                    out_zip.writestr(name, data)
            s3.put_object(Bucket=ARTIFACTS, Key=f"{prefix}dev_{scope.replace('-', '_')}_research.zip",
                          Body=forged.getvalue())

        east2, west2 = artifact("us-east-2"), artifact("us-west-2")
        # us-west-2 is given us-east-2's whole plan, moved to its place.
        put("us-west-2", {n.replace("dev-us-east-2-research", "dev-us-west-2-research"): east2.read(n)
                          for n in east2.namelist()})
        # us-east-2 keeps its own work dir, but its saved plan is us-west-2's (the sha256 made to fit).
        import hashlib

        theirs = west2.read("work/dev-us-west-2-research/tfdeploy.tfplan")
        files = {n: east2.read(n) for n in east2.namelist()}
        meta = json.loads(files["work/dev-us-east-2-research/tfdeploy.plan.json"])
        meta["plan_sha256"] = hashlib.sha256(theirs).hexdigest()
        files["work/dev-us-east-2-research/tfdeploy.plan.json"] = json.dumps(meta).encode()
        files["work/dev-us-east-2-research/tfdeploy.tfplan"] = theirs
        put("us-east-2", files)

        apply = stage_build(env, "apply", unzip_source(SOURCE_BUCKET, tmp_path / "apply-src",
                                                       published["version_id"]), published, fake)
        assert apply.returncode == 1, apply.stdout + apply.stderr
        summary = apply.stdout
        assert "apply of release dev/research/1.1: batch tfdeploy-dev-apply:" in summary
        rows = {line.split()[0]: line.split()[1] for line in summary.splitlines() if line.startswith("  dev_")}
        assert rows == {"dev_global/research/1.1": "succeeded", "dev_us-east-1/research/1.1": "succeeded",
                        "dev_us-east-2/research/1.1": "failed", "dev_us-west-2/research/1.1": "failed"}
        assert summary.strip().splitlines()[-1] == ("ci: stage apply of release dev/research/1.1 failed: "
                                                    "dev_us-east-2/research/1.1 failed, dev_us-west-2/research/1.1 failed")
        apply_batch = [b for b in fake.batches if b.startswith("tfdeploy-dev-apply:")][0]
        refused = fake.logs(apply_batch)["dev_us_west_2_research"]
        # Refused by apply's own check of a saved plan's work dir, before Terraform.
        assert ("tfdeploy: error: the work dir for cell dev-us-west-2-research holds tag dev_us-east-2/research/1.1, "
                "not dev_us-west-2/research/1.1") in refused, refused[-2000:]
        swapped = fake.logs(apply_batch)["dev_us_east_2_research"]
        # Refused by the saved plan's own content check (engine/planfile.py), as `apply` refuses it.
        assert ("tfdeploy: error: the saved plan in the work dir of dev_us-east-2/research/1.1 is not this cell's: "
                "it writes state to s3://demo-tfstate-dev/research/dev-us-west-2/terraform.tfstate") in swapped, \
            swapped[-2000:]
        assert state_keys() == sorted(f"research/dev-{s}/terraform.tfstate" for s in ("global", "us-east-1"))
        record = [r for r in ledger("dev-us-east-1-research") if r.get("result") == "succeeded"][-1]
        assert record["details"]["release"] == "dev/research/1.1"
        assert record["details"]["build"].startswith("tfdeploy-dev-apply:")
    finally:
        fake.stop()


def test_a_release_stage_build_without_the_pipelines_inputs_is_one_line(tmp_path):
    """An older pipeline (before the module gave the plan and apply actions the execution and the
    bundle's version) cannot start a release's batch: one line naming what is missing."""
    from tests.delivery.conftest import invoke

    tags = ["dev_global/research/1.1", "dev_us-east-1/research/1.1"]
    (tmp_path / "tfdeploy-source.json").write_text(json.dumps(
        {"tag": tags[0], "tags": tags, "release": "dev/research/1.1", "commit": "0" * 40}))
    result = invoke(["ci", "plan"], env={"CODEBUILD_SRC_DIR": str(tmp_path), "ENV": "dev",
                                         "CODEBUILD_BUILD_ID": "tfdeploy-dev-plan:1", "TFDEPLOY_TAG": ""})
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "tfdeploy: error: a release's stage build needs TFDEPLOY_EXECUTION_ID, TFDEPLOY_SOURCE_VERSION, "
        "TFDEPLOY_ARTIFACT_BUCKET (modules/pipeline sets them on the plan and apply actions and projects); update "
        "the pipeline with the module, or run the release here: tfdeploy pipeline run --env ENV")


def test_a_bad_bake_is_one_line():
    from tests.delivery.conftest import invoke

    result = invoke(["ci", "apply"], env={"TFDEPLOY_BAKE_SECONDS": "soon"})
    assert result.exit_code == 2
    assert result.stderr.strip() == ("tfdeploy: error: TFDEPLOY_BAKE_SECONDS='soon': must be a whole number of "
                                     "seconds from 0 to 86400")


def test_a_stopped_stage_build_stops_its_batch_and_names_what_each_build_was_doing(infra_repo, pipeline_env,  # noqa: F811
                                                                                   tmp_path):
    """SIGTERM to the stage build (CodeBuild stopping it, its timeout): a real signal to a real
    `tfdeploy ci plan` process while its batch runs. It calls StopBuildBatch on the batch it
    started, waits for it to report stopped, and exits 143 naming the batch and each build; the
    batch's running build is gone, the later waves never start."""
    import signal
    import time

    buckets()
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket=ARTIFACTS)
    release(infra_repo, "1.1", regions=REGIONS)
    env = {**pipeline_env, "TF_BACKEND_CONFIG_PREFIX": PREFIX}
    published = json.loads(cli(env, infra_repo, "publish", "--tag", "dev_*/research/1.1", "--json").stdout)
    # Each cell build holds (a stand-in `tfdeploy` first on the cell builds' PATH: a plan that takes
    # long); the stage build itself is the real CLI.
    holding = tmp_path / "holding"
    holding.mkdir()
    pids = tmp_path / "pids"
    pids.mkdir()
    (holding / "tfdeploy").write_text(f'#!/bin/sh\necho "planning $TFDEPLOY_TAG"\necho $$ > {pids}/$TFDEPLOY_WAVE\n'
                                      "exec sleep 300\n")
    (holding / "tfdeploy").chmod(0o755)
    fake = FakeCodeBuild(tmp_path / "codebuild", {**env, "PATH": f"{holding}:{env['PATH']}"})
    try:
        src = unzip_source(SOURCE_BUCKET, tmp_path / "plan-src", published["version_id"])
        build_env = stage_env(env, "plan", src, published, fake)
        exe = str(Path(env["PATH"].split(os.pathsep)[0]) / "tfdeploy")
        proc = subprocess.Popen([exe, "ci", "plan"], env=build_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, cwd=src)
        deadline = time.monotonic() + 120
        while not (pids / "0").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (pids / "0").exists(), proc.communicate(timeout=30)
        time.sleep(1)  # the stage build has seen the global cell's build in progress
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, out + err
        [batch_id] = list(fake.batches)
        assert ("StopBuildBatch", {"id": batch_id}) in fake.requests
        assert fake.batches[batch_id]["buildBatchStatus"] == "STOPPED"
        # The log showed the release moving before the signal, then the stop.
        # (the generated buildspec runs `tfdeploy ci plan` in its pre_build phase)
        assert out.count("ci: dev_global/research/1.1: in progress (PRE_BUILD)") == 1, out
        assert f"ci: SIGTERM received: stopping batch {batch_id} (StopBuildBatch)" in out
        assert "ci: dev_global/research/1.1: stopped" in out
        assert err.strip().splitlines()[-1] == (
            f"tfdeploy: error: interrupted (SIGTERM) during the plan of release dev/research/1.1: batch {batch_id} "
            "stopped; builds: dev_global/research/1.1 stopped; dev_us-east-1/research/1.1 not started; "
            "dev_us-east-2/research/1.1 not started; dev_us-west-2/research/1.1 not started")
        # The global cell's build is gone; no later wave started.
        sleeper = int((pids / "0").read_text())
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{sleeper}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{sleeper}")
        assert sorted(p.name for p in pids.iterdir()) == ["0"]
        assert state_keys() == []
    finally:
        fake.stop()
