"""Pushed tags arrive one event (one source build) per tag: each tag is claimed exactly once (a
conditional put in the real moto S3), the first build gathers the release's other unclaimed tags at
the same commit into ONE execution, and the later events exit 0 naming that execution."""

from __future__ import annotations

import io
import json
import threading
import zipfile

import boto3
from tfdeploy.delivery.claims import claim, claim_key, gather

from tests.conftest import git
from tests.delivery.conftest import PREFIX, create_pipeline, invoke, make_infra_repo

BUCKET = f"{PREFIX}-source-dev"
RELEASE = ("dev_global/research/1.1", "dev_us-east-1/research/1.1", "dev_eu-central-1/research/1.1")


def buckets() -> None:
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    create_pipeline("dev")


def source_build(repo, tag: str, settle: str = "0"):
    """What the source build runs for one pushed tag's event."""
    return invoke(["ci", "source"], env={"CODEBUILD_SRC_DIR": str(repo), "ENV": "dev", "TFDEPLOY_TAG": tag,
                                         "TFDEPLOY_SETTLE_SECONDS": settle})


def executions() -> list[dict]:
    return boto3.client("codepipeline", region_name="us-east-1").list_pipeline_executions(
        pipelineName="tfdeploy-dev")["pipelineExecutionSummaries"]


def test_racing_claims_of_one_tag_have_exactly_one_winner(aws_sandbox):
    buckets()
    s3 = boto3.client("s3", region_name="us-east-1")
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def race(n: int) -> None:
        barrier.wait()
        results.append(claim(s3, BUCKET, RELEASE[1], "a" * 40, "dev/research/1.1", f"build-{n}").won)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    holder = json.loads(s3.get_object(Bucket=BUCKET, Key=claim_key(RELEASE[1], "a" * 40))["Body"].read())
    assert holder["tag"] == RELEASE[1] and holder["claimed_by"].startswith("build-")


def test_gather_waits_the_settle_window_then_claims_what_is_free():
    slept: list[float] = []
    taken = {"dev_us-east-1/research/1.1"}
    won = gather(lambda: ["dev_global/research/1.1", "dev_us-east-1/research/1.1"],
                 lambda tag: tag not in taken, 12.0, sleep=slept.append)
    assert won == ["dev_global/research/1.1"] and slept == [12.0]


def test_pushed_tags_of_a_release_become_one_execution(tmp_path, aws_sandbox):
    repo = make_infra_repo(tmp_path / "infra", RELEASE)
    git(repo, "tag", "-a", "dev_us-east-1/risk/1.1", "-m", "another team: never gathered")
    buckets()
    first = source_build(repo, RELEASE[1])
    assert first.exit_code == 0, first.output
    [execution] = executions()
    assert f"started tfdeploy-dev execution {execution['pipelineExecutionId']} for release dev/research/1.1 " \
           "(3 cells: dev_global/research/1.1, dev_eu-central-1/research/1.1, dev_us-east-1/research/1.1)" in first.stdout
    s3 = boto3.client("s3", region_name="us-east-1")
    with zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=BUCKET, Key="source/dev/source.zip")["Body"].read())) as z:
        assert sorted(json.loads(z.read("tfdeploy-source.json"))["tags"]) == sorted(RELEASE)
    # The other tags' events arrive: each is claimed already, says by which execution, starts nothing.
    for tag in (RELEASE[0], RELEASE[2]):
        later = source_build(repo, tag)
        assert later.exit_code == 0, later.output
        assert (f"{tag} is already claimed by tfdeploy publish for release dev/research/1.1: it is deployed by "
                f"execution {execution['pipelineExecutionId']}; nothing published") in later.stdout
    assert len(executions()) == 1
    assert len(s3.list_object_versions(Bucket=BUCKET, Prefix="source/dev/source.zip")["Versions"]) == 1
    # A tag moved to a fixed commit is a new claim: its event starts a new execution.
    (repo / "README.md").write_text("fix\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "fix")
    git(repo, "tag", "-f", "-a", RELEASE[2], "-m", "fixed")
    moved = source_build(repo, RELEASE[2])
    assert moved.exit_code == 0 and "started tfdeploy-dev execution" in moved.stdout, moved.output
    assert "(3 cells" not in moved.stdout  # the others are at the old commit: a release of one
    assert len(executions()) == 2


def test_a_claim_is_given_back_when_nothing_could_start(tmp_path, aws_sandbox, monkeypatch):
    """The clone fails after the claim (a stand-in for any failure before the execution starts):
    the claim is deleted, so the retried build wins it and starts the release."""
    import tfdeploy.delivery.publish as publish
    from tfdeploy.errors import TfdeployError

    repo = make_infra_repo(tmp_path / "infra", RELEASE[:1])
    buckets()
    s3 = boto3.client("s3", region_name="us-east-1")
    commit = git(repo, "rev-parse", "HEAD").strip()
    real_clone = publish.clone_at_tag

    def failing_clone(*args, **kwargs):
        assert s3.head_object(Bucket=BUCKET, Key=claim_key(RELEASE[0], commit))  # claimed by then
        raise TfdeployError("git clone failed: disk full")

    monkeypatch.setattr(publish, "clone_at_tag", failing_clone)
    bad = source_build(repo, RELEASE[0])
    assert bad.exit_code == 1 and "disk full" in bad.stderr
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="claims/")
    assert executions() == []
    monkeypatch.setattr(publish, "clone_at_tag", real_clone)
    again = source_build(repo, RELEASE[0])
    assert again.exit_code == 0 and "started tfdeploy-dev execution" in again.stdout, again.output


NINE = ("global", "us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1",
        "ap-southeast-1", "ap-northeast-1")


def test_nine_pushed_tags_racing_become_one_execution(tmp_path, aws_sandbox, tfdeploy_bin):
    """Nine events at once (nine source builds, separate processes, a short settle window): exactly
    one execution carries all nine cells; every other build exits 0 naming it or its builder."""
    import os
    import subprocess

    tags = tuple(f"dev_{s}/research/1.1" for s in NINE)
    repo = make_infra_repo(tmp_path / "infra", tags)
    buckets()
    results: dict[str, subprocess.CompletedProcess] = {}

    def event(tag: str) -> None:
        env = {**os.environ, "CODEBUILD_SRC_DIR": str(repo), "ENV": "dev", "TFDEPLOY_TAG": tag,
               "TFDEPLOY_SETTLE_SECONDS": "3", "CODEBUILD_BUILD_ID": f"tfdeploy-dev-source:{tag}"}
        results[tag] = subprocess.run([str(tfdeploy_bin / "tfdeploy"), "ci", "source"], env=env,
                                      capture_output=True, text=True, timeout=120)

    threads = [threading.Thread(target=event, args=(t,)) for t in tags]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r.returncode == 0 for r in results.values()), {t: r.stderr for t, r in results.items()}
    [execution] = executions()
    started = [t for t, r in results.items() if "started tfdeploy-dev execution" in r.stdout]
    claimed = [t for t, r in results.items() if "is already claimed by" in r.stdout]
    assert len(started) == 1 and len(claimed) == 8
    assert "release dev/research/1.1 (9 cells" in results[started[0]].stdout
    s3 = boto3.client("s3", region_name="us-east-1")
    with zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=BUCKET, Key="source/dev/source.zip")["Body"].read())) as z:
        assert sorted(json.loads(z.read("tfdeploy-source.json"))["tags"]) == sorted(tags)
    holders = {json.loads(s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read())["execution_id"]
               for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="claims/")["Contents"]}
    assert holders == {execution["pipelineExecutionId"]}


def test_without_gathering_each_pushed_tag_is_claimed_alone_once(tmp_path, aws_sandbox):
    """TFDEPLOY_GATHER_RELEASES=0 (gathering is on by default): one execution per pushed tag, and a
    repeated event for a tag starts nothing."""
    repo = make_infra_repo(tmp_path / "infra", RELEASE)
    buckets()
    env = {"CODEBUILD_SRC_DIR": str(repo), "ENV": "dev", "TFDEPLOY_SETTLE_SECONDS": "0",
           "TFDEPLOY_GATHER_RELEASES": "0"}
    for tag in RELEASE:
        result = invoke(["ci", "source"], env={**env, "TFDEPLOY_TAG": tag})
        assert result.exit_code == 0 and "started tfdeploy-dev execution" in result.stdout, result.output
        assert "cells" not in result.stdout  # a release of one
    assert len(executions()) == 3
    repeated = invoke(["ci", "source"], env={**env, "TFDEPLOY_TAG": RELEASE[0]})
    assert repeated.exit_code == 0 and "is already claimed by" in repeated.stdout
    assert len(executions()) == 3
