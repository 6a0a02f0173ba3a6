"""A release's stage build on CodeBuild: StartBuildBatch with the generated graph, the wait, the
summary. Through boto3 against tests/delivery/fake_codebuild.py (TEST DOUBLE: moto has no batch
API), which runs each build of the graph with tfdeploy's local batch runner."""

from __future__ import annotations

import pytest
from tfdeploy.delivery import codebuild_batch
from tfdeploy.delivery.batch import graph_tasks, identifier, start_request
from tfdeploy.delivery.buildspec_runner import load_yaml
from tfdeploy.errors import TfdeployError
from tfdeploy.model.tags import parse_tag

from tests.delivery.fake_codebuild import FakeCodeBuild

SCOPES = ("global", "us-east-1", "us-east-2", "us-west-2")


@pytest.fixture
def fake(tmp_path, tfdeploy_bin):
    import os

    src = tmp_path / "src"
    src.mkdir()
    (src / "main.tf").write_text("terraform {}\n")
    env = {"PATH": f"{tfdeploy_bin}:/usr/bin:/bin", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    server = FakeCodeBuild(tmp_path / "codebuild", env, source_dir=src)
    yield server
    server.stop()


def boto(fake):
    import boto3

    return boto3.client("codebuild", region_name="us-east-1", endpoint_url=fake.url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def spec(tags, fail: str = "none", bake_s: int = 0, stage: str = "plan") -> str:
    """A buildspec with the release's generated graph; each build fails when it is the cell `fail`;
    a bake build runs the real `tfdeploy ci apply` (what the generated buildspec's build phase runs)."""
    import yaml

    return yaml.safe_dump({"version": 0.2, "phases": {"build": {"commands": [
        'if [ -n "$TFDEPLOY_BAKE_SECONDS" ]; then tfdeploy ci apply; '
        f'else echo "cell $TFDEPLOY_TAG $(date +%s.%N)"; test "$TFDEPLOY_TAG" != "{fail}"; fi']}},
        "batch": {"fast-fail": False, "build-graph": graph_tasks(stage, tags, bake_s=bake_s)}})


def run(fake, tags, text, **kwargs):
    cb = boto(fake)
    batch_id = codebuild_batch.start(cb, start_request("tfdeploy-dev-plan", "plan", tags, text, **kwargs))
    graph = [t["identifier"] for t in load_yaml_text(text)["batch"]["build-graph"]]
    return codebuild_batch.wait(cb, batch_id, graph, poll_s=0.1)


def load_yaml_text(text):
    import yaml

    return yaml.safe_load(text)


def test_a_release_batch_runs_in_waves_and_a_failed_canary_is_named_in_the_summary(fake):
    tags = [parse_tag(f"dev_{s}/research/1.1") for s in SCOPES]
    good = run(fake, tags, spec(tags))
    assert good.ok and [b.status for b in good.builds] == ["SUCCEEDED"] * 4
    assert all(b.arn.startswith("arn:aws:codebuild:us-east-1:") for b in good.builds)

    canary = tags[1].name  # the first Region in code order
    bad = run(fake, tags, spec(tags, fail=canary))
    assert not bad.ok and bad.status == "FAILED"
    assert {b.identifier: b.status for b in bad.builds} == {
        "dev_global_research": "SUCCEEDED", identifier(tags[1]): "FAILED",
        "dev_us_east_2_research": "NOT_STARTED", "dev_us_west_2_research": "NOT_STARTED"}
    text = codebuild_batch.summary("apply", "dev/research/1.1", bad, {identifier(t): t.name for t in tags})
    lines = text.splitlines()
    assert lines[0] == f"apply of release dev/research/1.1: batch {bad.batch_id} failed, 1 of 4 builds succeeded"
    assert lines[1].split()[:2] == ["dev_global/research/1.1", "succeeded"]
    assert lines[2].split()[:2] == [canary, "failed"]
    assert "/codesuite/codebuild/projects/tfdeploy-dev-plan/build/" in lines[2]
    assert lines[3].split()[:2] == ["dev_us-east-2/research/1.1", "skipped"]


def test_the_request_has_the_shape_codebuild_takes(fake):
    """botocore validates the request against CodeBuild's model before sending; the fake refuses a
    graph larger than maximumBuildsAllowed, as CodeBuild fails such a batch (bake builds count)."""
    tags = [parse_tag(f"dev_{s}/research/1.1") for s in SCOPES]
    text = spec(tags, bake_s=1, stage="apply")
    run(fake, tags, text, bakes=2, source_version="v1", variables={"ENV": "dev"})
    operation, body = fake.requests[0]
    assert operation == "StartBuildBatch"
    assert body["buildBatchConfigOverride"]["restrictions"] == {"maximumBuildsAllowed": 6}
    assert body["environmentVariablesOverride"] == [{"name": "ENV", "value": "dev", "type": "PLAINTEXT"}]
    with pytest.raises(TfdeployError, match="CodeBuild StartBuildBatch of tfdeploy-dev-plan failed: "
                                            "InvalidInputException: the batch has 6 builds, more than "
                                            "maximumBuildsAllowed 4"):
        run(fake, tags, text)  # the bakes not counted


def test_bake_builds_hold_the_next_wave_back_in_the_batch(fake):
    """wave_bake_seconds in CodeBuild: a bake build after each wave; the next wave depends on it."""
    tags = [parse_tag(f"dev_{s}/research/1.1") for s in SCOPES[:3]]
    text = spec(tags, bake_s=2, stage="apply")
    result = run(fake, tags, text, bakes=2)
    assert result.ok and [b.identifier for b in result.builds] == [
        "dev_global_research", "bake_after_wave_0", "dev_us_east_1_research", "bake_after_wave_1",
        "dev_us_east_2_research"]
    logs = fake.logs(result.batch_id)
    assert "baking the wave before for 2 s (wave_bake_seconds)" in logs["bake_after_wave_0"]

    def started(ident: str) -> float:
        [line] = [line for line in logs[ident].splitlines() if line.startswith("cell ")]
        return float(line.split()[2])

    # Each wave starts at least the bake after the one before.
    assert started("dev_us_east_1_research") - started("dev_global_research") >= 2
    assert started("dev_us_east_2_research") - started("dev_us_east_1_research") >= 2


def test_a_batch_codebuild_does_not_know_is_one_line(fake):
    with pytest.raises(TfdeployError, match="CodeBuild does not know batch nope"):
        codebuild_batch.wait(boto(fake), "nope", [], poll_s=0)
