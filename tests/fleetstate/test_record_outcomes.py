"""The pure parts of truthful records (issue 21, item 4): what a state mark says changed, how
status reads started/interrupted/refused records, and when a reader may close a dead run's record.
The end-to-end proof (real Terraform, moto, signals) is tests/safety/test_records_truth.py."""

from __future__ import annotations

import os
import socket

from tfdeploy.engine.statemark import MISSING, changed, counts, mark_of
from tfdeploy.fleet.ledger import Record
from tfdeploy.fleet.reconcile import (
    dangling,
    holder_alive,
    outcome,
    reconciled_record,
    this_holder,
    without_closed_starts,
)
from tfdeploy.fleet.status import cell_status, render_history

NS = "module.regional"


def state(serial: int, *instances: tuple[str, str], lineage: str = "L1") -> dict:
    return {"serial": serial, "lineage": lineage, "resources": [
        {"module": NS, "mode": "managed", "type": "terraform_data", "name": name,
         "instances": [{"attributes": {"input": value}}]} for name, value in instances] + [
        {"module": "module.global", "mode": "managed", "type": "terraform_data", "name": "other",
         "instances": [{"attributes": {}}]}]}


def test_a_mark_counts_only_the_namespace_and_sees_every_write():
    before = mark_of(state(3, ("a", "1"), ("b", "1")), NS)
    after = mark_of(state(5, ("a", "2"), ("c", "1")), NS)
    assert sorted(before.resources) == [f"{NS}.terraform_data.a", f"{NS}.terraform_data.b"]
    assert counts(before, after) == (1, 1, 1) and changed(before, after)
    assert counts(MISSING, after) == (2, 0, 0) and changed(MISSING, after)
    assert not changed(before, mark_of(state(3, ("a", "1"), ("b", "1")), NS))
    assert changed(before, mark_of(state(3, ("a", "1"), ("b", "1"), lineage="L2"), NS))  # another state


def rec(n: int, result: str, action: str = "apply", version: str = "1.0", **details) -> Record:
    return Record(tag=f"dev_us-east-1/research/{version}", commit="c" * 40, cell="dev-us-east-1-research",
                  env="dev", team="research", scope="us-east-1", version=version, action=action, result=result,
                  add=0, change=0, destroy=0, caller="", started_at=f"2026-12-01T00:{n:02d}:00.000Z",
                  finished_at=f"2026-12-01T00:{n:02d}:30.000Z", plan_sha256="", tfdeploy_version="t", build_id="",
                  details=details, id=f"id{n:02d}")


KEY = ("dev", "us-east-1", "research")


def test_status_shows_the_last_version_that_ran_to_the_end():
    ok = rec(1, "succeeded")
    cut = rec(3, "interrupted", version="1.1", state_changed=True, serial_before=4, serial_after=5, started_id="id02")
    row = cell_status(KEY, [ok, rec(2, "started", version="1.1"), cut], None)
    assert row.deployed == ok and row.partly == cut and row.last == cut
    assert row.marks == ("interrupted",) and row.to_dict()["partly"] == "1.1"
    # Interrupted before any change: no partial version, still marked.
    clean = rec(3, "interrupted", version="1.1", state_changed=False, started_id="id02")
    row = cell_status(KEY, [ok, rec(2, "started", version="1.1"), clean], None)
    assert row.deployed == ok and row.partly is None and row.marks == ("interrupted",)
    # A lost lock is refused: not failed, and never evidence of a deployment.
    refused = rec(3, "refused", version="1.1", state_changed=False, started_id="id02")
    row = cell_status(KEY, [ok, rec(2, "started", version="1.1"), refused], None)
    assert row.deployed == ok and row.marks == () and row.to_dict()["result"] == "refused"
    assert cell_status(KEY, [refused], None).marks == ("never-deployed",)
    # A run going on: its started record is the last; the version before it still runs.
    row = cell_status(KEY, [ok, rec(2, "started", version="1.1")], None)
    assert row.deployed == ok and row.to_dict()["result"] == "started" and row.marks == ()
    # Once its final record is in, the started record is no longer news.
    row = cell_status(KEY, [ok, rec(2, "started", version="1.1"), rec(3, "succeeded", version="1.1",
                                                                     started_id="id02")], None)
    assert row.deployed.version == "1.1" and row.marks == ()


def test_history_says_what_the_state_showed():
    cut = rec(3, "interrupted", state_changed=True, serial_before=4, serial_after=5, started_id="id02",
              reconciled="the run ended without a final record")
    records = without_closed_starts([cut, rec(2, "started"), rec(1, "started")])
    assert [r.id for r in records] == ["id03", "id01"]  # id01: a run going on, shown
    assert "interrupted (state changed, serial 4 -> 5; reconciled after its run died)" in render_history(records)


def test_a_reader_closes_only_a_dangling_started_record_of_a_dead_process():
    assert dangling([rec(1, "succeeded"), rec(2, "started")]).id == "id02"
    assert dangling([rec(2, "started"), rec(3, "succeeded")]) is None
    assert dangling([rec(2, "started"), rec(3, "in-sync", action="drift")]).id == "id02"
    me = this_holder()
    assert holder_alive(me) is True
    assert holder_alive({**me, "process_start": "1"}) is False  # that pid now runs another process
    assert holder_alive({**me, "pid": 2 ** 22 + 7}) is False
    assert holder_alive({**me, "boot_id": "another-boot"}) is False
    assert holder_alive({**me, "host": socket.gethostname() + "-elsewhere"}) is None
    assert holder_alive({}) is None
    assert me["pid"] == os.getpid()


def test_the_reconciled_record_says_what_the_state_shows():
    before = mark_of(state(4, ("a", "1")), NS)
    started = rec(2, "started", version="1.1", holder={"pid": 42, "host": "runner-7"},
                  state_before=before.to_details())
    found = outcome(started, mark_of(state(6, ("a", "2"), ("b", "1")), NS))
    record = reconciled_record(started, found, {"pid": 1})
    assert (record.result, record.add, record.change, record.destroy) == ("interrupted", 1, 1, 0)
    assert record.details["state_changed"] is True and record.details["started_id"] == "id02"
    assert "pid 42 on runner-7" in record.details["reconciled"] and "serial 4 -> 6" in record.details["reconciled"]
    same = outcome(started, before)
    assert same["state_changed"] is False and reconciled_record(started, same, {}).details["serial_after"] == 4


def test_an_apply_terraform_completed_before_the_signal_is_what_runs_but_not_promotion_evidence():
    from tfdeploy.fleet.promotion import evidence

    ok = rec(1, "succeeded")
    done = rec(3, "interrupted", version="1.1", state_changed=True, completed=True, started_id="id02")
    row = cell_status(KEY, [ok, rec(2, "started", version="1.1"), done], None)
    assert row.deployed == done and row.partly is None and row.marks == ("interrupted",)
    assert evidence([done], commit="c" * 40, team="research", scope="us-east-1", same_scope=True) is None


def test_a_future_dated_record_does_not_hide_a_dead_run_from_its_reader():
    """A record dated ahead (forged; it sorts newest) must not make a dead run's `started` record
    look closed: found by benchmarks/soak.py, where status went on saying the old version ran
    while the state held the killed run's change."""
    from dataclasses import replace

    started = rec(2, "started", version="1.3")
    forged = replace(rec(3, "succeeded", version="1.2"), finished_at="2099-01-01T00:00:00.000Z", id="forged")
    assert dangling([rec(1, "succeeded"), started, forged]).id == "id02"
    assert dangling([started, forged, rec(4, "succeeded")]) is None  # closed by a real later run
