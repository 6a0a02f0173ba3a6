"""`tfdeploy buildspec run` on a buildspec with `batch: build-graph`: each task a build of its own
(its env.variables, its own copy of the source), depend-on order, a failed dependency skips its
dependants while the failed task's own wave finishes, a concurrency cap, per-build results."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import yaml
from tfdeploy.delivery.batch import batch_data
from tfdeploy.delivery.batch_runner import parse_batch
from tfdeploy.errors import ValidationError
from tfdeploy.model.tags import parse_tag

from tests.delivery.conftest import invoke

# A build that records when it ran and fails for the Regions named in FAIL_REGIONS.
PHASES = {
    "build": {"commands": [
        'echo "start $(date +%s.%N) $TFDEPLOY_TAG" >> "$RUNLOG"',
        'echo "$TFDEPLOY_TAG" > here.txt',  # each build's own source copy: never seen by another
        "sleep 0.3",
        'echo "end $(date +%s.%N) $TFDEPLOY_TAG" >> "$RUNLOG"',
        'case " $FAIL_REGIONS " in *" $(echo "$TFDEPLOY_TAG" | sed "s/^dev_//; s#/.*##") "*) exit 3;; esac',
        'export RESULT="done $TFDEPLOY_TAG"',
    ]},
}
SCOPES = ("global", "eu-central-1", "us-east-1", "us-west-2", "eu-west-1")


def release_batch(tmp_path: Path, scopes=SCOPES, **kwargs) -> Path:
    data = batch_data("plan", [parse_tag(f"dev_{s}/research/1.1") for s in scopes], **kwargs)
    data["phases"] = PHASES  # a stand-in for `tfdeploy ci plan`: same graph, a quick build
    data["env"] = {"exported-variables": ["RESULT"]}
    data.pop("artifacts", None)
    path = tmp_path / "batch.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def spans(runlog: Path) -> dict[str, tuple[float, float]]:
    found: dict[str, list[float]] = {}
    for line in runlog.read_text().splitlines():
        what, when, tag = line.split(" ")
        found.setdefault(tag, [0.0, 0.0])[0 if what == "start" else 1] = float(when)
    return {tag: (a, b) for tag, (a, b) in found.items()}


def run(tmp_path: Path, path: Path, *extra: str, fail: str = ""):
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / "main.tf").write_text("# source\n")
    return invoke(["buildspec", "run", str(path), "--src-dir", str(src), "--work-dir", str(tmp_path / "work"),
                   "--env", f"RUNLOG={tmp_path / 'run.log'}", "--env", f"FAIL_REGIONS={fail}", *extra])


def test_batch_runs_waves_in_order_with_per_build_env_and_results(tmp_path):
    result = run(tmp_path, release_batch(tmp_path), "--json", "--parallel", "2")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    assert [(b["id"], b["wave"], b["status"]) for b in doc["builds"]] == [
        ("dev_global_research", 0, "succeeded"), ("dev_eu_central_1_research", 1, "succeeded"),
        ("dev_eu_west_1_research", 2, "succeeded"), ("dev_us_east_1_research", 2, "succeeded"),
        ("dev_us_west_2_research", 2, "succeeded")]
    assert doc["builds"][3]["exported_variables"] == {"RESULT": "done dev_us-east-1/research/1.1"}
    assert doc["builds"][3]["tag"] == "dev_us-east-1/research/1.1"
    assert doc["peak_concurrency"] == 2  # three builds in the last wave, two at a time
    times = spans(tmp_path / "run.log")
    assert times["dev_eu-central-1/research/1.1"][0] > times["dev_global/research/1.1"][1]
    assert all(times[f"dev_{r}/research/1.1"][0] > times["dev_eu-central-1/research/1.1"][1]
               for r in ("us-east-1", "us-west-2", "eu-west-1"))
    # Each build worked in its own copy of the source.
    for build in doc["builds"]:
        here = tmp_path / "work" / build["id"] / "src" / "here.txt"
        assert here.read_text().strip() == build["tag"]
        assert Path(build["log"]).is_file()
    assert not (tmp_path / "src" / "here.txt").exists()


def test_a_failing_canary_stops_the_later_waves(tmp_path):
    result = run(tmp_path, release_batch(tmp_path), "--json", fail="eu-central-1")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["ok"] is False
    statuses = {b["id"]: b["status"] for b in doc["builds"]}
    assert statuses == {"dev_global_research": "succeeded", "dev_eu_central_1_research": "failed",
                        "dev_eu_west_1_research": "skipped", "dev_us_east_1_research": "skipped",
                        "dev_us_west_2_research": "skipped"}
    assert doc["builds"][2]["reason"] == "dev_eu_central_1_research did not succeed"
    assert "exit code 3" in doc["builds"][1]["failure"]
    assert set(spans(tmp_path / "run.log")) == {"dev_global/research/1.1", "dev_eu-central-1/research/1.1"}
    assert result.stderr.strip().splitlines()[-1].startswith(
        "tfdeploy: error: batch failed: 4 of 5 builds did not succeed (dev_eu_central_1_research failed, "
        "dev_eu_west_1_research skipped")
    assert "Traceback" not in result.stderr


def test_a_failure_in_a_wave_lets_its_own_wave_finish(tmp_path):
    result = run(tmp_path, release_batch(tmp_path), "--json", "--parallel", "1", fail="eu-west-1")
    doc = json.loads(result.stdout)
    statuses = [b["status"] for b in doc["builds"]]
    # eu-west-1 failed first in the last wave; us-east-1 and us-west-2 still ran (fast-fail: false).
    assert statuses == ["succeeded", "succeeded", "failed", "succeeded", "succeeded"]
    assert result.exit_code == 1


def test_fast_fail_and_ignore_failure(tmp_path):
    path = release_batch(tmp_path)
    data = yaml.safe_load(path.read_text())
    data["batch"]["fast-fail"] = True
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run(tmp_path, path, "--json", "--parallel", "1", fail="eu-west-1")
    assert [b["status"] for b in json.loads(result.stdout)["builds"]] == [
        "succeeded", "succeeded", "failed", "not started", "not started"]
    data["batch"]["fast-fail"] = False
    data["batch"]["build-graph"][1]["ignore-failure"] = True
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ignored = run(tmp_path, path, "--json", fail="eu-central-1")
    doc = json.loads(ignored.stdout)
    assert ignored.exit_code == 0 and doc["ok"] is True
    assert [b["status"] for b in doc["builds"]] == ["succeeded", "failed"] + ["succeeded"] * 3


@pytest.mark.parametrize("graph, message", [
    ([{"identifier": "a", "depend-on": ["b"]}, {"identifier": "b", "depend-on": ["a"]}], "has a cycle: a -> b -> a"),
    ([{"identifier": "a", "depend-on": ["zz"]}], "depends on 'zz', which is not in the build graph"),
    ([{"identifier": "a-b"}], "identifier 'a-b' must be letters, digits or '_'"),
    ([{"identifier": "a"}, {"identifier": "a"}], "identifier 'a' is used twice"),
    ([], "batch.build-graph must be a list of build tasks"),
])
def test_bad_graphs_are_refused_before_any_build(graph, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        parse_batch({"batch": {"build-graph": graph}})


def test_a_bad_graph_is_one_error_line(tmp_path):
    path = tmp_path / "b.yml"
    path.write_text(textwrap.dedent("""\
        version: 0.2
        phases: {build: {commands: [echo hi]}}
        batch:
          build-list: [{identifier: a}]
        """))
    result = invoke(["buildspec", "run", str(path), "--src-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"tfdeploy: error: {path}: batch.build-list is not run locally; only batch.build-graph is"]


def test_bake_builds_hold_the_next_wave_back_in_buildspec_run(tmp_path, tfdeploy_bin):
    """wave_bake_seconds through `buildspec run`: the generated apply graph's bake builds run the real
    `tfdeploy ci apply`, which waits; each wave starts at least that long after the one before."""
    import os

    data = batch_data("apply", [parse_tag(f"dev_{s}/research/1.1") for s in SCOPES[:3]], bake_s=1)
    data["phases"] = {"build": {"commands": [  # the cells: a quick stand-in; the bakes: the real thing
        'if [ -n "$TFDEPLOY_BAKE_SECONDS" ]; then tfdeploy ci apply; '
        'else echo "start $(date +%s.%N) $TFDEPLOY_TAG" >> "$RUNLOG"; '
        'echo "end $(date +%s.%N) $TFDEPLOY_TAG" >> "$RUNLOG"; fi']}}
    data.pop("artifacts", None)
    path = tmp_path / "batch.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = run(tmp_path, path, "--json", "--env", f"PATH={tfdeploy_bin}:{os.environ['PATH']}")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert [(b["id"], b["status"]) for b in doc["builds"]] == [
        ("dev_global_research", "succeeded"), ("bake_after_wave_0", "succeeded"),
        ("dev_eu_central_1_research", "succeeded"), ("bake_after_wave_1", "succeeded"),
        ("dev_us_east_1_research", "succeeded")]
    assert "baking the wave before for 1 s" in Path(doc["builds"][1]["log"]).read_text()
    times = spans(tmp_path / "run.log")
    assert times["dev_eu-central-1/research/1.1"][0] - times["dev_global/research/1.1"][1] >= 1
    assert times["dev_us-east-1/research/1.1"][0] - times["dev_eu-central-1/research/1.1"][1] >= 1


def _start_batch(path: Path, tmp_path: Path, tfdeploy_bin: Path):
    """`tfdeploy buildspec run <path>` of a batch as a background process, an empty source."""
    import subprocess

    src = tmp_path / "src"
    src.mkdir()
    return subprocess.Popen([str(tfdeploy_bin / "tfdeploy"), "buildspec", "run", str(path), "--src-dir", str(src),
                             "--work-dir", str(tmp_path / "work")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.safety
def test_a_stopped_buildspec_run_stops_its_builds_and_says_so(tmp_path, tfdeploy_bin):
    """SIGTERM to `tfdeploy buildspec run` of a batch: its running builds are stopped (they run in
    sessions of their own, so they used to go on to the end, unwatched, while the command said no
    state was affected), the build waiting on them never starts, and one line names each."""
    import signal
    import time

    path = tmp_path / "batch.yml"
    marks = tmp_path / "marks"
    path.write_text(textwrap.dedent(f"""\
        version: 0.2
        batch:
          build-graph:
            - identifier: a
            - identifier: b
            - identifier: c
              depend-on: [a]
        phases:
          build:
            commands:
              - echo "start" >> {marks}
              - sleep 30
              - echo "end" >> {marks}
        """))
    proc = _start_batch(path, tmp_path, tfdeploy_bin)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not marks.exists() or len(marks.read_text().splitlines()) < 2):
        time.sleep(0.1)
    assert marks.exists() and len(marks.read_text().splitlines()) == 2, "the two builds did not start"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "tfdeploy: error: interrupted (SIGTERM): the batch was stopped (stopped: a, b; not started: c)"), lines
    assert "[a] stopped" in out and "[b] stopped" in out and "[c] not started" in out
    time.sleep(1)
    assert "end" not in marks.read_text()  # nothing of a stopped build ran on


@pytest.mark.safety
def test_a_stopped_build_gets_one_sigterm_and_time_to_end_gracefully(tmp_path, tfdeploy_bin):
    """What a cell's tfdeploy needs from a stopped build: ONE SIGTERM (a second one it would pass on
    to Terraform as "exit now, data loss may occur") and the time to stop its Terraform and write
    its record, with its output still read. The runner used to signal the build's process group
    again when it closed the build and to stop reading its output."""
    import signal
    import time

    path = tmp_path / "batch.yml"
    marks = tmp_path / "marks"
    # Stands in for a cell's tfdeploy: counts the signals it gets, needs 2 s to end gracefully.
    graceful = tmp_path / "graceful.py"
    graceful.write_text(textwrap.dedent(f"""\
        import signal, sys, time
        got = []
        signal.signal(signal.SIGTERM, lambda *_: got.append(1))
        open({str(marks)!r}, "a").write("start\\n")
        while not got:
            time.sleep(0.05)
        time.sleep(2)  # stopping its Terraform, writing its record
        print("graceful end after", len(got), "signal(s)", flush=True)
        open({str(marks)!r}, "a").write(f"end {{len(got)}}\\n")
        """))
    path.write_text(textwrap.dedent(f"""\
        version: 0.2
        batch:
          build-graph:
            - identifier: cell
        phases:
          build:
            commands:
              - python3 {graceful}
        """))
    proc = _start_batch(path, tmp_path, tfdeploy_bin)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (marks.exists() and "start" in marks.read_text()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert marks.read_text().splitlines() == ["start", "end 1"]  # it ended on its own, after one signal
    log = next((tmp_path / "work").rglob("cell*.log")).read_text()
    assert "graceful end after 1 signal(s)" in log  # what it said while ending is in the build's log
    assert err.strip().splitlines()[-1].startswith(
        "tfdeploy: error: interrupted (SIGTERM): the batch was stopped (stopped: cell)")
