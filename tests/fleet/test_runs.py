"""The run folders a fan-out leaves (`.tfdeploy/runs/<run id>/`): logs and the record that
--only-failed reads. Real files, no mocks."""

from __future__ import annotations

import json

from tfdeploy.fleet.results import RECORD, CellResult, RunRecord, last_record, selection_key, write_record


def _run(runs, number: int, tags: list[str], result: str = "applied") -> RunRecord:
    record = RunRecord(run_id=f"20261122T1000{number:02d}.000000Z-{number}", action="apply", tag_args=tags,
                       key=selection_key("apply", tags), started_at="s", finished_at="f")
    folder = runs / record.run_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dev-us-east-1-research.log").write_text("terraform output\n")
    write_record(runs, record, [CellResult(tags[0], "dev-us-east-1-research", result)], keep=5)
    return record


def test_runs_beyond_the_newest_are_removed_but_never_what_only_failed_or_a_running_fanout_needs(tmp_path):
    runs = tmp_path / "runs"
    rare = _run(runs, 0, ["dev_*/research/1.0"], result="failed")  # its selection never runs again
    running = runs / "20261122T100001.000000Z-999"  # another fan-out, still going: no record yet
    running.mkdir()
    (running / "dev-eu-west-1-research.log").write_text("still writing\n")
    for number in range(2, 12):
        _run(runs, number, ["dev_us-east-1/research/1.1"])
    kept = sorted(p.name for p in runs.iterdir())
    finished = [name for name in kept if (runs / name / RECORD).exists()]
    assert len(finished) == 6, kept  # the 5 newest, and the newest run of the rare selection
    assert rare.run_id in kept and running.name in kept
    assert [name for name in finished if name != rare.run_id] == [f"20261122T1000{n:02d}.000000Z-{n}"
                                                                  for n in range(7, 12)]
    # --only-failed still finds the rare selection's run, whole, logs and all.
    found = last_record(runs, selection_key("apply", ["dev_*/research/1.0"]))
    assert found is not None and found.not_done() == ["dev_*/research/1.0"]
    assert (runs / rare.run_id / "dev-us-east-1-research.log").read_text() == "terraform output\n"
    assert json.loads((runs / f"20261122T100011.000000Z-11" / RECORD).read_text())["cells"]


def test_only_finished_run_folders_are_ever_removed(tmp_path):
    runs = tmp_path / "runs"
    for number in range(0, 6):
        _run(runs, number, ["dev_us-east-1/research/1.1"])
    odd = runs / "20261122T100000.000000Z-0"
    assert not odd.exists()  # the oldest went
    stray = runs / "not-a-run"
    stray.write_text("a file someone put here\n")
    _run(runs, 6, ["dev_us-east-1/research/1.1"])
    assert stray.read_text() == "a file someone put here\n"
