"""`tfdeploy status`: the fleet matrix from the ledger and the repo's tags. Records are seeded
through the ledger's own `append` into moto (recording by real applies is tests/fleetstate/
test_ledger.py); the tags are real annotated git tags; the command runs as a subprocess."""

from __future__ import annotations

import itertools
import json
import os

from tfdeploy.fleet.ledger import Record, append, record_for
from tfdeploy.fleet.status import cell_status, fleet_matrix, render_table, version_key
from tfdeploy.model.settings import Settings
from tfdeploy.model.tags import parse_tag

from tests.e2e.conftest import tag, tfdeploy

SETTINGS = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"), lock="dynamodb")
_clock = itertools.count(1)


def rec(tag_name: str, action: str = "apply", result: str = "succeeded", commit: str = "a" * 40) -> Record:
    n = next(_clock)
    return record_for(parse_tag(tag_name), commit=commit, action=action, result=result, add=1, change=0,
                      destroy=0, caller="arn:aws:sts::123456789012:assumed-role/InfraBuildRole/INFRA_BUILD",
                      started_at=f"2026-11-20T10:{n:02d}:00.000Z", finished_at=f"2026-11-20T10:{n:02d}:30.000Z",
                      plan_sha256="0" * 64, tfdeploy_version="0.1.0", build_id="")


def test_versions_order_as_people_read_them():
    assert version_key("1.10") > version_key("1.9") > version_key("1.1") > version_key("1.1-rc2")
    assert version_key("1.1-rc10") > version_key("1.1-rc2") > version_key("1.0.9")
    assert version_key("2") == version_key("2.0")


def test_marks_pure():
    dev = ("dev", "us-east-1", "research")
    ok = cell_status(dev, [rec("dev_us-east-1/research/1.1")], "dev_us-east-1/research/1.1")
    assert ok.marks == () and ok.deployed.version == "1.1"
    failed = cell_status(dev, [rec("dev_us-east-1/research/1.0"), rec("dev_us-east-1/research/1.1", result="failed")],
                         "dev_us-east-1/research/1.1")
    assert failed.marks == ("failed", "behind") and failed.deployed.version == "1.0"
    # A drift check before the current deployment says nothing about it.
    stale = cell_status(dev, [rec("dev_us-east-1/research/1.0", action="drift", result="drifted"),
                              rec("dev_us-east-1/research/1.0")], None)
    assert stale.marks == () and stale.drift is None
    drifted = cell_status(dev, [rec("dev_us-east-1/research/1.0"),
                                rec("dev_us-east-1/research/1.0", action="drift", result="drifted")], None)
    assert drifted.marks == ("drifted",)
    gone = cell_status(dev, [rec("dev_us-east-1/research/1.0"), rec("dev_us-east-1/research/1.0", action="destroy")],
                       "dev_us-east-1/research/1.0")
    assert gone.marks == ("destroyed",) and gone.deployed is None
    never = fleet_matrix({}, [dev], [], ["dev"])
    assert [r.marks for r in never] == [("never-deployed",)]
    assert "never-deployed" in render_table(never)


def test_status_marks_behind_failed_drifted_and_never_deployed_on_a_small_fleet(repo):
    for name in ("dev_us-east-1/research/1.0", "dev_global/research/1.0", "dev_eu-central-1/research/1.0",
                 "dev_us-east-1/research/1.1", "dev_global/research/1.1", "dev_eu-central-1/research/1.1",
                 "dev_us-east-1/risk/2.0"):
        tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")  # qa has no bucket yet: nothing recorded there
    environ = dict(os.environ)
    for record in (
        rec("dev_us-east-1/research/1.0"), rec("dev_us-east-1/research/1.1", commit="b" * 40),  # current
        rec("dev_global/research/1.0"),  # 1.1 is tagged: behind
        rec("dev_eu-central-1/research/1.0"), rec("dev_eu-central-1/research/1.1", result="failed"),
        rec("dev_us-east-1/risk/2.0"), rec("dev_us-east-1/risk/2.0", action="drift", result="drifted"),
    ):
        where = append(record, SETTINGS, environ)
        assert where.startswith("s3://demo-tfstate-dev/_tfdeploy-ledger/")

    doc = json.loads(tfdeploy(repo, "status", "--json").stdout)
    cells = {c["cell"]: c for c in doc["cells"]}
    marks = {cell: c["marks"] for cell, c in cells.items()}
    assert marks == {
        "dev-us-east-1-research": [],
        "dev-global-research": ["behind"],
        "dev-eu-central-1-research": ["failed", "behind"],
        "dev-us-east-1-risk": ["drifted"],
        # envs/ sets these up (allowed_regions us-east-1, eu-central-1), nothing deployed them
        "dev-eu-central-1-risk": ["never-deployed"],
        "qa-us-east-1-research": ["never-deployed"], "qa-eu-central-1-research": ["never-deployed"],
        "qa-us-east-1-risk": ["never-deployed"], "qa-eu-central-1-risk": ["never-deployed"],
    }
    current = cells["dev-us-east-1-research"]
    assert (current["version"], current["commit"], current["result"]) == ("1.1", "b" * 40, "succeeded")
    assert current["deployed_by"].endswith("assumed-role/InfraBuildRole/INFRA_BUILD")
    broken = cells["dev-eu-central-1-research"]
    assert (broken["version"], broken["result"], broken["last"]["version"]) == ("1.0", "failed", "1.1")
    assert cells["dev-global-research"]["newest_version"] == "1.1"
    assert doc["counts"] == {"cells": 9, "failed": 1, "interrupted": 0, "drifted": 1, "behind": 2,
                             "never-deployed": 5, "destroyed": 0, "unverified": 0}
    # The matrix beside the cells: the same rows, by team x env and scope.
    [research_dev] = [r for r in doc["matrix"]["rows"] if (r["team"], r["env"]) == ("research", "dev")]
    assert {scope: c["text"] for scope, c in research_dev["cells"].items()} == {
        "global": "1.0 B", "eu-central-1": "1.0 FB", "us-east-1": "1.1"}
    # Sorted by team, env in promotion order, global first.
    assert list(cells)[:3] == ["dev-global-research", "dev-eu-central-1-research", "dev-us-east-1-research"]

    # The default view: a row per team x env, a column per scope, marks as letters explained below.
    text = tfdeploy(repo, "status", "--env", "dev", "--team", "research").stdout
    assert text.splitlines() == [
        "TEAM      ENV  global  euc1    use1",
        "research  dev  1.0 B   1.0 FB  1.1",
        "",
        "Regions: euc1=eu-central-1, use1=us-east-1",
        "Marks: F failed, B behind",
        "",
        "3 cells: 1 failed, 2 behind"]
    text = tfdeploy(repo, "status", "--env", "dev", "--team", "research", "--list").stdout
    lines = text.splitlines()
    assert lines[0].split() == ["TEAM", "ENV", "SCOPE", "VERSION", "COMMIT", "DEPLOYED", "BY", "LAST", "MARKS"]
    [broken_line] = [line for line in lines if " eu-central-1 " in line]
    assert "1.0" in broken_line and "apply failed (1.1," in broken_line and "failed, behind (1.1 tagged)" in broken_line
    assert "InfraBuildRole/INFRA_BUILD" in broken_line
    assert len([line for line in lines if line.startswith("research ")]) == 3
    assert lines[-1] == "3 cells: 1 failed, 2 behind"

    bad = tfdeploy(repo, "status", "--env", "prod", check=False)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "tfdeploy: error: --env prod is not one of the configured environments (dev, qa)"]


def test_a_status_row_gives_each_record_exactly_as_the_ledger_does():
    """fleet/status.py builds the rows' record dicts without dataclasses.asdict (issue 24: status
    of 10,000 cells): same keys in the same order, same values, details copied not shared."""
    from tfdeploy.fleet.ledger import record_for
    from tfdeploy.fleet.status import record_dict
    from tfdeploy.model.tags import parse_tag

    record = record_for(parse_tag("dev_us-east-1/research/1.0"), commit="c" * 40, action="drift",
                        result="drifted", add=1, change=2, destroy=0, caller="arn:x", started_at="2026-11-20T10:00:00.000Z",
                        finished_at="2026-11-20T10:00:30.000Z", plan_sha256="", tfdeploy_version="0", build_id="",
                        details={"resources": [{"address": "a.b", "attributes": {"v": {"actual": 1}}}]})
    got = record_dict(record)
    assert list(got.items()) == list(record.to_dict().items())
    got["details"]["resources"].append("x")
    assert record.details == {"resources": [{"address": "a.b", "attributes": {"v": {"actual": 1}}}]}


def test_an_unverified_record_only_warns_it_never_says_a_version_runs():
    """Pure: `distrust` refuses every record but the signed 1.0 success. An unverified record of an
    unfinished change (the unsigned `started`, the reconciler's `interrupted`) still marks the
    cell; an unverified success, or an `interrupted` one that claims Terraform completed, never
    makes its version the deployed one."""
    from dataclasses import replace

    dev = ("dev", "us-east-1", "research")
    signed = replace(rec("dev_us-east-1/research/1.0"), signature="ok")

    def distrust(r: Record) -> str:
        return "" if r.signature else "unsigned"

    cut = replace(rec("dev_us-east-1/research/1.1", result="interrupted"), details={"state_changed": True})
    row = cell_status(dev, [signed, cut], None, distrust)
    assert row.deployed.version == "1.0" and row.partly.version == "1.1" and "interrupted" in row.marks
    assert row.last.result == "interrupted" and "unverified" in row.marks
    started = rec("dev_us-east-1/research/1.1", result="started")
    assert cell_status(dev, [signed, started], None, distrust).last.result == "started"
    for forged in (rec("dev_us-east-1/research/1.2"),
                   replace(rec("dev_us-east-1/research/1.2", result="interrupted"),
                           details={"state_changed": True, "completed": True})):
        row = cell_status(dev, [signed, forged], None, distrust)
        assert row.deployed.version == "1.0" and row.last.version == "1.0", forged.result


def test_a_cached_head_decides_a_row_only_when_its_records_are_trusted_and_enough():
    """Pure: the local cache keeps a cell's newest records up to its last change, last success
    and last drift check (`head_cut`); `complete` serves them alone only when every one is trusted
    and nothing older could decide what they leave open, else reads every record. Either way
    the row is the one every record gives."""
    import dataclasses

    from tfdeploy.fleet.ledger import Head
    from tfdeploy.fleet.status import complete, head_cut

    def at(record: Record, minute: int, **change) -> Record:
        return dataclasses.replace(record, finished_at=f"2026-11-20T10:{minute:02d}:00.000Z", id=f"r{minute}", **change)

    newest_first = [at(rec("dev_global/a/1.3", result="failed"), 9), at(rec("dev_global/a/1.2"), 8),
                    at(rec("dev_global/a/1.2", action="drift", result="in-sync"), 7), at(rec("dev_global/a/1.1"), 6),
                    at(rec("dev_global/a/1.0", action="drift", result="drifted"), 5)]
    assert head_cut(newest_first) == (3, ["change", "drift"])
    assert head_cut(newest_first[3:]) == (2, [])  # the last success and, after it, the last drift check
    assert head_cut(newest_first[:2]) == (2, [])  # no drift check at all: up to the last success
    reads = []

    def head(kept: list[Record]) -> Head:
        cut, kinds = head_cut(kept)
        return Head(kept[:cut], kinds, lambda: reads.append(1) or list(kept))

    trusted = lambda r: ""  # noqa: E731
    assert complete(head(newest_first), trusted) == newest_first[:3] and reads == []
    row = cell_status(("dev", "global", "a"), complete(head(newest_first), trusted), None, trusted)
    assert row == cell_status(("dev", "global", "a"), newest_first, None, trusted) and reads == []
    # The success in the head is not trusted: the older one decides, so every record is read.
    forged = lambda r: "unsigned" if r.id == "r8" else ""  # noqa: E731
    got = complete(head(newest_first), forged)
    assert got == newest_first and reads == [1]
    row = cell_status(("dev", "global", "a"), got, None, forged)
    assert row.deployed.id == "r6" and "unverified" in row.marks
    assert row == cell_status(("dev", "global", "a"), newest_first, None, forged)
    # No success in the head (the newest change a started one) and older changes exist: read them.
    started = [at(rec("dev_global/a/1.4", result="started"), 10), *newest_first]
    reads.clear()
    assert complete(Head(started[:1], ["change"], lambda: reads.append(1) or started), trusted) == started
    assert reads == [1]
