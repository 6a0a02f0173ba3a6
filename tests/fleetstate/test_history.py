"""`tfdeploy history --tag T | --env E --team T --scope S`: every record of one cell, newest first, beyond what the
status summary keeps. Records seeded through the ledger's own `append` into moto; the command
runs as a subprocess against real git tags."""

from __future__ import annotations

import json
import os

from tfdeploy.fleet.ledger import SUMMARY_KEEP, append, record_for
from tfdeploy.model.settings import Settings
from tfdeploy.model.tags import parse_tag

from tests.e2e.conftest import tag, tfdeploy

SETTINGS = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"), lock="dynamodb")


def seed(tag_name: str, minute: int, action: str = "apply", result: str = "succeeded", **extra):
    record = record_for(parse_tag(tag_name), commit=f"{minute:040x}", action=action, result=result, add=minute,
                        change=0, destroy=0, caller="arn:aws:sts::123456789012:user/moto",
                        started_at=f"2026-11-20T09:{minute:02d}:00.000Z",
                        finished_at=f"2026-11-20T09:{minute:02d}:30.000Z", plan_sha256="1" * 64,
                        tfdeploy_version="0.1.0", **{"build_id": "", **extra})
    append(record, SETTINGS, dict(os.environ))
    return record


def test_history_lists_a_cells_records_newest_first_as_text_and_json(repo):
    tag(repo, "dev_us-east-1/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    first = seed("dev_us-east-1/research/1.0", 1)
    middle = [seed("dev_us-east-1/research/1.0", m, result="failed") for m in range(2, SUMMARY_KEEP + 4)]
    drift = seed("dev_us-east-1/research/1.0", SUMMARY_KEEP + 5, action="drift", result="drifted",
                 details={"addresses": ["module.regional.terraform_data.x"]})
    last = seed("dev_us-east-1/research/1.1", SUMMARY_KEEP + 6, override="hotfix approved by CAB-7",
                build_id="tfdeploy-dev-apply:9")
    seed("dev_global/research/1.0", 3)  # another cell: not in this history

    doc = json.loads(tfdeploy(repo, "history", "--tag", "dev_us-east-1/research/1.0", "--json").stdout)
    assert doc["cell"] == "dev-us-east-1-research"
    ids = [r["id"] for r in doc["records"]]
    # Every record (more than the summary keeps), newest first.
    assert ids == [last.id, drift.id, *[r.id for r in reversed(middle)], first.id]
    assert doc["records"][0]["override"] == "hotfix approved by CAB-7"
    assert doc["records"][1]["details"] == {"addresses": ["module.regional.terraform_data.x"]}
    by_cell = json.loads(tfdeploy(repo, "history", "--env", "dev", "--team", "research", "--scope", "us-east-1",
                                  "--json").stdout)
    assert by_cell == doc
    old = tfdeploy(repo, "history", "--cell", "dev-us-east-1-research", "--json")  # deprecated, still works
    assert json.loads(old.stdout) == doc and "--cell is deprecated; use --env E --team T --scope S" in old.stderr

    text = tfdeploy(repo, "history", "--env", "dev", "--team", "research", "--scope", "us-east-1").stdout.splitlines()
    assert text[0] == f"dev-us-east-1-research: {len(ids)} record(s), newest first"
    assert text[1].split()[:3] == ["FINISHED", "ACTION", "RESULT"]
    assert text[2].startswith("2026-11-20 09:") and "apply" in text[2]
    assert "succeeded override: hotfix approved by CAB-7" in text[2] and "tfdeploy-dev-apply:9" in text[2]
    assert "drift" in text[3] and "drifted" in text[3]
    assert text[-1].split()[2:4] == ["apply", "succeeded"] and "user/moto" in text[-1]

    empty = tfdeploy(repo, "history", "--env", "dev", "--team", "risk", "--scope", "eu-central-1")
    assert empty.stdout.strip() == "no deployments recorded for dev-eu-central-1-risk"
    for args, said in (((), "name one cell: --tag TAG, or --env E --team T --scope S"),
                       (("--tag", "dev_us-east-1/research/1.0", "--env", "dev", "--team", "research",
                         "--scope", "global"), "name one cell"),
                       (("--env", "dev", "--team", "research"), "all of --env, --team and --scope"),
                       (("--env", "prod", "--team", "research", "--scope", "us-east-1"),
                        "'prod-us-east-1-research' is not a cell")):
        bad = tfdeploy(repo, "history", *args, check=False)
        assert bad.returncode == 2, bad.stderr
        [line] = bad.stderr.strip().splitlines()
        assert line.startswith("tfdeploy: error: ") and said in line
