"""Fixtures for the delivery tests: the CLI in-process, a `tfdeploy` executable on a PATH of its
own, and a tagged example infra repo."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tfdeploy.adopt.example import write_example_repo

from tests.conftest import git

TAG = "dev_us-east-1/research/1.0"
PREFIX = "demo-tfstate"  # the example repo's backend_prefix


def invoke(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run tfdeploy in-process (stdout and stderr kept apart)."""
    runner = CliRunner()
    old = os.getcwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        from tfdeploy.cli import cli

        return runner.invoke(cli, args, env=env, catch_exceptions=False)
    finally:
        os.chdir(old)


@pytest.fixture(scope="session")
def tfdeploy_bin(tmp_path_factory) -> Path:
    """A directory whose `tfdeploy` is the real CLI of this interpreter (for subprocesses)."""
    bin_dir = tmp_path_factory.mktemp("tfdeploy-bin")
    script = bin_dir / "tfdeploy"
    script.write_text(f"#!{sys.executable}\nfrom tfdeploy.entry import main\nmain()\n")
    script.chmod(0o755)
    return bin_dir


def make_infra_repo(path: Path, tags: tuple[str, ...] = (TAG,)) -> Path:
    write_example_repo(path, backend_prefix=PREFIX, lock="s3")
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-qm", "example infra")
    for name in tags:
        git(path, "tag", "-a", name, "-m", f"release {name}")
    return path


@pytest.fixture
def infra_repo(tmp_path) -> Path:
    return make_infra_repo(tmp_path / "infra")


def create_pipeline(env: str = "dev", name_prefix: str = "tfdeploy", region: str = "us-east-1") -> str:
    """The env's pipeline in the moto sandbox, shaped like modules/pipeline's (Source stage with the
    S3 action `SourceBundle`); `publish` starts it. moto runs no actions: an execution only
    records its request."""
    import json

    import boto3

    name = f"{name_prefix}-{env}"
    iam = boto3.client("iam", region_name=region)
    role_name = f"{name}-codepipeline"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "codepipeline.amazonaws.com"}}]}
    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    action = {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"}
    boto3.client("codepipeline", region_name=region).create_pipeline(pipeline={
        "name": name, "roleArn": role["Arn"], "pipelineType": "V2", "executionMode": "QUEUED",
        "artifactStore": {"type": "S3", "location": f"{name}-artifacts"},
        "variables": [{"name": "TFDEPLOY_TAG", "defaultValue": "none"}],
        "stages": [
            {"name": "Source", "actions": [{
                "name": "SourceBundle", "outputArtifacts": [{"name": "source_output"}],
                "actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"},
                "configuration": {"S3Bucket": f"{PREFIX}-source-{env}", "S3ObjectKey": f"source/{env}/source.zip",
                                  "PollForSourceChanges": "false"}}]},
            {"name": "Plan", "actions": [{
                "name": "terraform-plan", "inputArtifacts": [{"name": "source_output"}],
                "actionTypeId": action, "configuration": {"ProjectName": f"{name}-plan"}}]},
        ],
    })
    return name


def unzip_source(bucket: str, dest: Path, version_id: str | None = None) -> Path:
    """What CodePipeline's S3 source action hands CodeBuild: the zip (that object version), unpacked."""
    import subprocess

    import boto3

    archive = dest.with_suffix(".zip")
    extra = {"VersionId": version_id} if version_id else {}
    archive.write_bytes(boto3.client("s3", region_name="us-east-1").get_object(
        Bucket=bucket, Key="source/dev/source.zip", **extra)["Body"].read())
    dest.mkdir()
    subprocess.run(["unzip", "-q", str(archive), "-d", str(dest)], check=True)
    return dest


def collect_plan_artifact(src: Path, dest: Path) -> Path:
    """The plan action's artifact, as plan.yml declares it (work/**/* without .terraform/)."""
    import shutil

    base = src / ".tfdeploy" / "ci" / "plan"
    for path in base.glob("work/**/*"):
        rel = path.relative_to(base)
        if path.is_file() and rel.parts[2:3] != (".terraform",):
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, dest / rel)
    return dest
