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
    # The build's console page: account, project, the build id with its colon encoded, the Region.
    build_id = bad.builds[1].build_id
    assert lines[2].endswith(f"https://us-east-1.console.aws.amazon.com/codesuite/codebuild/111111111111/projects/"
                             f"tfdeploy-dev-plan/build/{build_id.replace(':', '%3A')}/?region=us-east-1")
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


def test_the_wait_says_each_cells_status_and_phase_as_it_changes_not_only_at_the_end(fake):
    """The stage build's CodeBuild log shows the release moving: each cell's `in progress (BUILD)`
    and its end as they happen (the double reports them as its builds run), in graph order."""
    import time

    tags = [parse_tag(f"dev_{s}/research/1.1") for s in SCOPES]
    import yaml

    # Each build takes a while, the last Region longest: the builds finish one by one, in graph order.
    text = yaml.safe_dump({"version": 0.2, "phases": {"build": {"commands": [
        'case "$TFDEPLOY_TAG" in *us-west-2*) sleep 2.5;; *) sleep 1.2;; esac']}},
        "batch": {"fast-fail": False, "build-graph": graph_tasks("plan", tags)}})
    cb = boto(fake)
    batch_id = codebuild_batch.start(cb, start_request("tfdeploy-dev-plan", "plan", tags, text))
    said: list[tuple[float, str]] = []
    result = codebuild_batch.wait(cb, batch_id, [identifier(t) for t in tags], poll_s=0.1,
                                  say=lambda line: said.append((time.time(), line)),
                                  names={identifier(t): t.name for t in tags})
    assert result.ok
    ended = fake.batches[batch_id]["endTime"]
    lines = [line for _, line in said]
    expected = []
    for tag in tags:
        expected += [f"{tag.name}: in progress (BUILD)", f"{tag.name}: succeeded"]
    # Each cell's lines in order, the waves one after another, the last wave's builds ending in order.
    assert [line for line in lines if line in expected] == [
        expected[0], expected[1], expected[2], expected[3], expected[4], expected[6], expected[5], expected[7]], lines
    # Said while the batch ran, not at its end: everything up to the last Region's start well before it.
    when = {line: t for t, line in said}
    assert when[f"{tags[3].name}: in progress (BUILD)"] < ended - 1.5
    assert when[f"{tags[0].name}: succeeded"] < when[f"{tags[1].name}: succeeded"] < ended - 2
    # botocore sent BatchGetBuilds for the builds in progress only.
    asked = [body["ids"] for op, body in fake.requests if op == "BatchGetBuilds"]
    assert asked and all(len(ids) <= 2 for ids in asked)


def test_a_stopped_batch_stops_its_builds_and_starts_no_more(fake, tmp_path):
    """StopBuildBatch (the double's, as CodeBuild's): the running build ends STOPPED, the later waves
    never start, the batch ends STOPPED; the build's shell and what it ran are gone."""
    import os
    import time

    import yaml

    tags = [parse_tag(f"dev_{s}/research/1.1") for s in SCOPES[:3]]
    pids = tmp_path / "pids"
    pids.mkdir()
    text = yaml.safe_dump({"version": 0.2, "phases": {"build": {"commands": [
        f'sleep 300 & echo $! > {pids}/$TFDEPLOY_WAVE; wait']}},
        "batch": {"fast-fail": False, "build-graph": graph_tasks("plan", tags)}})
    cb = boto(fake)
    graph = [identifier(t) for t in tags]
    batch_id = codebuild_batch.start(cb, start_request("tfdeploy-dev-plan", "plan", tags, text))
    running = codebuild_batch.wait(cb, batch_id, graph, poll_s=0.1, until=lambda: (pids / "0").exists())
    assert running.status == "IN_PROGRESS" and running.builds[0].status == "IN_PROGRESS"
    codebuild_batch.stop(cb, batch_id)
    assert ("StopBuildBatch", {"id": batch_id}) in fake.requests
    result = codebuild_batch.wait(cb, batch_id, graph, poll_s=0.1, timeout_s=20)
    assert result.status == "STOPPED"
    assert [b.status for b in result.builds] == ["STOPPED", "NOT_STARTED", "NOT_STARTED"]
    assert not (pids / "1").exists()
    sleeper = int((pids / "0").read_text())
    deadline = time.monotonic() + 5
    while os.path.exists(f"/proc/{sleeper}") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{sleeper}"), "the stopped build's process outlived it"
    text = codebuild_batch.summary("plan", "dev/research/1.1", result, {identifier(t): t.name for t in tags})
    assert text.splitlines()[0] == f"plan of release dev/research/1.1: batch {batch_id} stopped, 0 of 3 builds succeeded"
    assert text.splitlines()[2].split(None, 1)[1] == "not started (the batch was stopped)"


class _Stub:
    """A CodeBuild client stand-in for one function's unit test (stop_batch's edges): the batch
    never stops, or StopBuildBatch is refused."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse, self.calls = refuse, []

    def stop_build_batch(self, id):  # noqa: A002
        from botocore.exceptions import ClientError

        self.calls.append(("StopBuildBatch", id))
        if self.refuse:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "StopBuildBatch")

    def batch_get_build_batches(self, ids):
        build = {"arn": "arn:aws:codebuild:us-east-1:111111111111:build/p:1", "buildStatus": "IN_PROGRESS"}
        return {"buildBatches": [{"id": ids[0], "buildBatchStatus": "IN_PROGRESS",
                                  "buildGroups": [{"identifier": "a", "currentBuildSummary": build}]}]}

    def batch_get_builds(self, ids):
        return {"builds": [{"id": i, "currentPhase": "BUILD"} for i in ids]}


@pytest.mark.parametrize("refuse", [False, True])
def test_a_batch_that_does_not_stop_or_cannot_be_stopped_is_said_and_still_ends_the_stage_build(refuse, monkeypatch):
    import signal

    from tfdeploy.delivery.release_stage import stop_batch
    from tfdeploy.engine import supervise

    monkeypatch.setattr(supervise, "_received", [signal.SIGTERM])
    stub, said = _Stub(refuse), []
    last = codebuild_batch.outcome_of(stub.batch_get_build_batches(["b:1"])["buildBatches"][0], ["a"])
    exc = stop_batch(stub, "b:1", ["a"], last, "apply", "dev/research/1.1", {"a": "dev_us-east-1/research/1.1"},
                     said.append, wait_s=0.3, poll_s=0.1)
    assert isinstance(exc, supervise.Interrupted) and exc.exit_code == 143
    assert stub.calls == [("StopBuildBatch", "b:1")]
    state = ("could not be stopped (CodeBuild StopBuildBatch of b:1 failed: AccessDeniedException: not allowed): "
             "stop it in the CodeBuild console" if refuse else
             "was asked to stop (StopBuildBatch) but still reported in progress after 0.3 s: CodeBuild stops it, "
             "check it in the CodeBuild console")
    assert str(exc) == (f"interrupted (SIGTERM) during the apply of release dev/research/1.1: batch b:1 {state}; "
                        "builds: dev_us-east-1/research/1.1 in progress" + ("" if refuse else " (BUILD)"))
