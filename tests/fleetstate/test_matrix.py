"""`tfdeploy status`'s matrix (fleet/matrix.py, pure): team x env rows by scope columns, each cell
its version and marks, as a person reads it in a terminal: an exact snapshot of a small fleet, and
a fleet of 10 envs x 20 Regions that must fit the terminal's width."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

from tfdeploy.fleet.ledger import Record, record_for
from tfdeploy.fleet.matrix import build_matrix, render_matrix
from tfdeploy.fleet.status import cell_status, fleet_matrix
from tfdeploy.model.regions import KNOWN_REGIONS
from tfdeploy.model.tags import parse_tag

REGIONS = sorted(r for r in KNOWN_REGIONS if r.startswith(("us-", "eu-", "ca-", "sa-")) and "gov" not in r) + [
    "ap-northeast-1", "ap-northeast-2", "ap-northeast-3", "ap-southeast-1", "ap-southeast-2"]
ENVS = [f"e{i}" for i in range(10)]
_clock = itertools.count(1)
_START = datetime(2026, 11, 20, 10, tzinfo=timezone.utc)


def rec(tag_name: str, action: str = "apply", result: str = "succeeded") -> Record:
    """A ledger record of the tag, each later than the one before (a second apart: hundreds fit
    in a day, all in the past)."""
    at = (_START + timedelta(seconds=next(_clock))).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return record_for(parse_tag(tag_name), commit="a" * 40, action=action, result=result, add=1, change=0,
                      destroy=0, caller="arn:aws:sts::123456789012:assumed-role/InfraBuildRole/INFRA_BUILD",
                      started_at=at, finished_at=at, plan_sha256="0" * 64, tfdeploy_version="0.1.0", build_id="")


def small_fleet():
    research_dev = [
        cell_status(("dev", "global", "research"), [rec("dev_global/research/1.1")], "dev_global/research/1.1"),
        cell_status(("dev", "eu-central-1", "research"),
                    [rec("dev_eu-central-1/research/1.0"), rec("dev_eu-central-1/research/1.1", result="failed")],
                    "dev_eu-central-1/research/1.1"),
        cell_status(("dev", "us-east-1", "research"),
                    [rec("dev_us-east-1/research/1.1"),
                     rec("dev_us-east-1/research/1.1", action="drift", result="drifted")],
                    "dev_us-east-1/research/1.1"),
        cell_status(("qa", "us-east-1", "research"), [rec("qa_us-east-1/research/1.0")], "qa_us-east-1/research/1.1"),
        cell_status(("dev", "us-east-1", "risk"), [], "dev_us-east-1/risk/2.0"),
    ]
    return research_dev


def test_a_small_fleet_reads_as_a_matrix_with_its_legend():
    matrix = build_matrix(small_fleet())
    assert render_matrix(matrix, 100).splitlines() == [
        "TEAM      ENV  global  euc1    use1",
        "research  dev  1.1     1.0 FB  1.1 D",
        "          qa   .       .       1.0 B",
        "risk      dev  .       .       -",
        "",
        "Regions: euc1=eu-central-1, use1=us-east-1",
        "Marks: F failed, D drifted, B behind, - never deployed, . no such cell",
    ]
    # The same model in --json: every cell once, under its row and scope, with the text shown.
    doc = matrix.to_dict()
    assert doc["columns"] == [{"scope": "global", "header": "global"}, {"scope": "eu-central-1", "header": "euc1"},
                              {"scope": "us-east-1", "header": "use1"}]
    assert [(r["team"], r["env"], sorted(r["cells"])) for r in doc["rows"]] == [
        ("research", "dev", ["eu-central-1", "global", "us-east-1"]), ("research", "qa", ["us-east-1"]),
        ("risk", "dev", ["us-east-1"])]
    assert doc["rows"][0]["cells"]["eu-central-1"] == {"cell": "dev-eu-central-1-research", "version": "1.0",
                                                       "marks": ["failed", "behind"], "text": "1.0 FB"}


def test_ten_envs_by_twenty_regions_fit_the_terminal_width():
    # Every cell deployed at 1.10, every seventh also failed at 1.11 (`1.10 FB`, the widest text).
    rows = []
    for n, (env, scope) in enumerate((env, scope) for env in ENVS for scope in ("global", *REGIONS)):
        records = [rec(f"{env}_{scope}/research/1.10")]
        if n % 7 == 0:
            records.append(rec(f"{env}_{scope}/research/1.11", result="failed"))
        rows.append(cell_status((env, scope, "research"), records, f"{env}_{scope}/research/1.1{n % 7 == 0:d}"))
    assert len(REGIONS) == 20 and len(rows) == 210
    for width in (80, 120, 200):
        text = render_matrix(build_matrix(rows), width)
        lines = text.splitlines()
        assert max(len(line) for line in lines) <= width, width
        panels = text.split("\n\n")[:-1]
        headers = [p.splitlines()[0].split()[2:] for p in panels]
        # Every column once, in order (global first, then the Regions' short names), each panel with
        # every env's row.
        flat = [h for panel in headers for h in panel]
        assert flat[0] == "global" and len(flat) == 21 and "use1" in flat and "apse2" in flat
        assert "1.10 FB" in text and "1.10" in text
        at = panels[0].index("ENV")
        assert all([line[at:].split()[0] for line in p.splitlines()[1:]] == ENVS for p in panels)
        legend = text.split("\n\n")[-1]
        for region in REGIONS:
            assert f"={region}" in legend
    # At 200 columns the whole matrix is one panel; at 80 it takes three.
    assert render_matrix(build_matrix(rows), 200).count("TEAM") == 1
    assert render_matrix(build_matrix(rows), 80).count("TEAM") == 3


def test_short_names_that_would_collide_stay_whole():
    rows = fleet_matrix({}, [("dev", "us-east-1", "t"), ("dev", "us-east-10", "t"), ("dev", "us-e-1", "t")],
                        [], ["dev"])
    assert build_matrix(rows).headers == {"us-east-1": "us-east-1", "us-east-10": "use10", "us-e-1": "us-e-1"}
