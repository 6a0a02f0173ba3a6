"""Each pipeline execution deploys exactly the tag that started it.

A multi-Region release publishes several tags back to back to ONE object key. `publish` starts each
execution itself, pinned to the S3 object version of its own upload (sourceRevisions) and naming
the tag (pipeline variable TFDEPLOY_TAG -> TFDEPLOY_EXPECTED_TAG in every action); `tfdeploy ci`
refuses a source holding another tag. moto records an execution's variables but ignores
sourceRevisions, so the request's exact shape is checked with botocore's Stubber, and the rest for
real: two publishes to the sandbox, then the plan stage of the local runner given each version.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber
from tfdeploy.delivery.pipeline_start import pipeline_name, start_execution, start_request
from tfdeploy.errors import TfdeployError
from tfdeploy.model.settings import merge_settings

from tests.conftest import REPO_ROOT, git
from tests.delivery.conftest import PREFIX, create_pipeline, make_infra_repo

EAST = "dev_us-east-1/research/1.0"
FRANKFURT = "dev_eu-central-1/research/1.0"
SOURCE_BUCKET = f"{PREFIX}-source-dev"
KEY = "source/dev/source.zip"
TFDEPLOY = str(Path(sys.executable).parent / "tfdeploy")


def test_pipeline_name_follows_modules_pipeline():
    assert pipeline_name(merge_settings({}, {}, {}), "dev") == "tfdeploy-dev"
    assert pipeline_name(merge_settings({"pipeline_name_prefix": "acme"}, {}, {}), "qa") == "acme-qa"


def test_the_source_action_name_is_the_one_modules_pipeline_declares():
    import hcl2

    with open(REPO_ROOT / "modules" / "pipeline" / "codepipeline.tf", encoding="utf-8") as handle:
        tf = hcl2.load(handle)
    def bare(value: str) -> str:  # python-hcl2 8 keeps the quotes of keys and strings
        return value.strip('"')

    resource = next(r for r in tf["resource"] if any(bare(k) == "aws_codepipeline" for k in r))
    pipeline = next(iter(next(iter(resource.values())).values()))
    source = next(s for s in pipeline["stage"] if bare(s["name"]) == "Source")
    actions = source["action"] if isinstance(source["action"], list) else [source["action"]]
    assert [bare(a["name"]) for a in actions] == [
        start_request("p", "v", EAST)["sourceRevisions"][0]["actionName"]]


def test_start_request_pins_the_version_and_names_the_tag():
    client = boto3.client("codepipeline", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="x", endpoint_url="http://127.0.0.1:9")
    expected = {
        "name": "tfdeploy-dev",
        "sourceRevisions": [{"actionName": "SourceBundle", "revisionType": "S3_OBJECT_VERSION_ID",
                             "revisionValue": "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY"}],
        "variables": [{"name": "TFDEPLOY_TAG", "value": EAST}],
    }
    with Stubber(client) as stub:
        stub.add_response("start_pipeline_execution", {"pipelineExecutionId": "e-1"}, expected)
        request = start_request("tfdeploy-dev", "3HL4kqtJlcpXroDTDmJ-rmSpXd3dIbrHY", EAST)
        assert start_execution(client, request, EAST) == "e-1"
        stub.assert_no_pending_responses()

    with Stubber(client) as stub:
        stub.add_client_error("start_pipeline_execution", "PipelineNotFoundException", "no such pipeline")
        with pytest.raises(TfdeployError) as caught:
            start_execution(client, request, EAST)
    assert str(caught.value) == (
        "pipeline tfdeploy-dev does not exist: create the env's pipeline (modules/pipeline), or set "
        f"pipeline_name_prefix to its name prefix; then run: tfdeploy publish --tag {EAST}")


def _publish(repo: Path, tag: str) -> dict:
    proc = subprocess.run([TFDEPLOY, "publish", "--tag", tag, "--json"], cwd=repo, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _unzip_version(version_id: str, dest: Path) -> Path:
    """What CodePipeline's S3 source action hands an execution pinned to `version_id`."""
    archive = dest.with_suffix(".zip")
    body = boto3.client("s3", region_name="us-east-1").get_object(
        Bucket=SOURCE_BUCKET, Key=KEY, VersionId=version_id)["Body"].read()
    archive.write_bytes(body)
    dest.mkdir()
    subprocess.run(["unzip", "-q", str(archive), "-d", str(dest)], check=True)
    return dest


def _plan_stage(src: Path, expected_tag: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [TFDEPLOY, "buildspec", "run", str(REPO_ROOT / "buildspecs" / "plan.yml"), "--skip-install",
         "--src-dir", str(src), "--json", "--env", "ENV=dev", "--env", f"TFDEPLOY_EXPECTED_TAG={expected_tag}"],
        capture_output=True, text=True, timeout=300,
        # The buildspec calls `tfdeploy`: the one under test, wherever PATH points.
        env={**os.environ, "PATH": f"{Path(TFDEPLOY).parent}{os.pathsep}{os.environ.get('PATH', '')}"})


def test_back_to_back_publishes_each_execution_deploys_its_own_tag(tmp_path, sandbox_env):
    repo = make_infra_repo(tmp_path / "infra", tags=(EAST, FRANKFURT))  # one release, two Regions
    s3 = boto3.client("s3", region_name="us-east-1")
    for bucket in (SOURCE_BUCKET, f"{PREFIX}-dev"):
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    create_pipeline("dev")

    east, frankfurt = _publish(repo, EAST), _publish(repo, FRANKFURT)
    assert east["uploaded"] and frankfurt["uploaded"]
    assert east["version_id"] != frankfurt["version_id"]
    # Each execution was started with its own tag (moto keeps the variables it was given).
    codepipeline = boto3.client("codepipeline", region_name="us-east-1")
    for published in (east, frankfurt):
        assert published["pipeline"] == "tfdeploy-dev"
        execution = codepipeline.get_pipeline_execution(
            pipelineName="tfdeploy-dev", pipelineExecutionId=published["execution_id"])["pipelineExecution"]
        assert execution["variables"] == [{"name": "TFDEPLOY_TAG", "resolvedValue": published["tag"]}]

    # The object key now holds Frankfurt; the east execution still gets east's version.
    for published, region in ((east, "us-east-1"), (frankfurt, "eu-central-1")):
        src = _unzip_version(published["version_id"], tmp_path / f"src-{region}")
        build = _plan_stage(src, published["tag"])
        assert build.returncode == 0, build.stderr
        exported = json.loads(build.stdout)["exported_variables"]
        assert (exported["TAG"], exported["REGION"], exported["PLAN_ADD"]) == (published["tag"], region, "1")

    # A stage of the east execution handed Frankfurt's version refuses, before any plan is made.
    wrong = _unzip_version(frankfurt["version_id"], tmp_path / "src-wrong")
    refused = _plan_stage(wrong, EAST)
    assert refused.returncode == 1
    errors = [line for line in refused.stderr.splitlines() if line.startswith("tfdeploy: error:")]
    assert errors[0] == (
        f"tfdeploy: error: this execution is for '{EAST}' (TFDEPLOY_EXPECTED_TAG) but its source holds "
        f"'{FRANKFURT}'; refusing to run another tag's code: run tfdeploy publish --tag {EAST} to start "
        "an execution pinned to it")
    assert "Traceback" not in refused.stderr
    assert not (wrong / ".tfdeploy" / "ci" / "plan").exists()


def test_publish_refuses_before_uploading_when_the_pipeline_is_missing(tmp_path, sandbox_env):
    repo = make_infra_repo(tmp_path / "infra", tags=(EAST,))
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=SOURCE_BUCKET)
    s3.put_bucket_versioning(Bucket=SOURCE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    proc = subprocess.run([TFDEPLOY, "publish", "--tag", EAST], cwd=repo, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "tfdeploy: error: env 'dev' has no pipeline tfdeploy-dev: create it (modules/pipeline), set "
        "pipeline_name_prefix to the name prefix it was created with, or pass --no-start to only upload"]
    assert "Versions" not in s3.list_object_versions(Bucket=SOURCE_BUCKET)

    only_upload = subprocess.run([TFDEPLOY, "publish", "--tag", EAST, "--no-start"], cwd=repo,
                                 capture_output=True, text=True, timeout=120)
    assert only_upload.returncode == 0, only_upload.stderr
    assert "started" not in only_upload.stdout
    assert s3.head_object(Bucket=SOURCE_BUCKET, Key=KEY)["Metadata"]["tag"] == EAST


def test_a_pipeline_source_without_metadata_is_refused(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    proc = subprocess.run([TFDEPLOY, "ci", "plan"], cwd=src, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "CODEBUILD_SRC_DIR": str(src), "ENV": "dev",
                               "TFDEPLOY_TAG": EAST, "TFDEPLOY_EXPECTED_TAG": EAST})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"tfdeploy: error: this execution is for '{EAST}' (TFDEPLOY_EXPECTED_TAG) but {src} has no "
        f"tfdeploy-source.json; the source is not a published tag: run tfdeploy publish --tag {EAST}"]
