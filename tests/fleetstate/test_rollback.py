"""`tfdeploy rollback` (issue 12, item 8) and the fan-out failure notification (item 10).

The version choice is pure (ledger records in, a version out); the rollback itself runs end to end:
real annotated tags at two commits, embedded Terraform, moto, the CLI as a subprocess."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import boto3
import pytest
from tfdeploy.errors import ValidationError
from tfdeploy.fleet.ledger import Record, record_for
from tfdeploy.fleet.notify import fleet_failed
from tfdeploy.fleet.results import CellResult
from tfdeploy.fleet.rollback import announce, choose
from tfdeploy.model.tags import parse_tag

from tests.conftest import git
from tests.e2e.conftest import one_wave, tag, tfdeploy
from tests.statecheck import state_of

CELL = "dev-us-east-1-research"
BUCKET = "demo-tfstate-dev"
KEY = "research/dev-us-east-1/terraform.tfstate"
_clock = itertools.count(1)


def rec(version: str, action: str = "apply", result: str = "succeeded", **details) -> Record:
    n = next(_clock)
    return record_for(parse_tag(f"dev_us-east-1/research/{version}"), commit=f"{n:040x}", action=action,
                      result=result, add=1, change=0, destroy=0, caller="arn:aws:sts::123456789012:user/alice",
                      started_at=f"2026-11-20T10:{n:02d}:00.000Z", finished_at=f"2026-11-20T10:{n:02d}:30.000Z",
                      plan_sha256="0" * 64, tfdeploy_version="0.1.0", build_id="", details=details)


def test_the_previous_successful_version_is_chosen_from_the_ledger():
    v10, v11, v12, v13 = rec("1.0"), rec("1.1"), rec("1.2"), rec("1.3", result="failed")
    chosen = choose(CELL, [v13, v10, v12, v11])  # any order
    assert (chosen.current, chosen.version, chosen.target) == (v12, "1.1", v11)
    assert chosen.details == {"rollback_from": "1.2", "rollback_from_commit": v12.commit}
    assert announce(chosen, v11.commit) == (
        f"rolling back {CELL} from 1.2 (commit {v12.commit[:12]}) to 1.1 (commit {v11.commit[:12]}), "
        "last applied 2026-11-20 10:" f"{v11.finished_at[14:16]} UTC by arn:aws:sts::123456789012:user/alice")
    # The same version applied twice is not "previous"; a destroy before it does not hide 1.0.
    again = choose(CELL, [v10, rec("1.0", action="destroy"), v11, rec("1.1")])
    assert (again.version, again.target) == ("1.0", v10)
    # --to: any version, applied here or not (then target is None), never the current one.
    assert choose(CELL, [v10, v11, v12], to="1.0").target == v10
    assert choose(CELL, [v10, v11, v12], to="1.3").target is None
    assert "never applied successfully" in announce(choose(CELL, [v10, v12], to="1.3"), "f" * 40)
    with pytest.raises(ValidationError, match="already runs 1.2"):
        choose(CELL, [v10, v12], to="1.2")


def test_rolling_back_twice_goes_back_two_versions_not_back_and_forth():
    v10, v11, v12 = rec("1.0"), rec("1.1"), rec("1.2")
    first = rec("1.1", rollback_from="1.2")
    assert choose(CELL, [v10, v11, v12, first]).version == "1.0"
    second = rec("1.0", rollback_from="1.1")
    with pytest.raises(ValidationError, match=r"no earlier successful version of dev-us-east-1-research .*--to"):
        choose(CELL, [v10, v11, v12, first, second])
    # Applied again after the rollback, 1.2 is a place to return to again.
    assert choose(CELL, [v10, v11, v12, first, rec("1.2"), rec("1.3")]).version == "1.2"


def test_nothing_to_roll_back_is_one_line():
    with pytest.raises(ValidationError, match=r"^nothing deployed in dev-us-east-1-research: the ledger has no successful"):
        choose(CELL, [rec("1.0", result="failed")])
    with pytest.raises(ValidationError, match=r"^nothing deployed in dev-us-east-1-research: it was destroyed at"):
        choose(CELL, [rec("1.0"), rec("1.1"), rec("1.1", action="destroy")])
    with pytest.raises(ValidationError, match="no earlier successful version"):
        choose(CELL, [rec("1.0"), rec("1.1", result="failed")])


def test_fleet_failed_message_lists_each_failed_cell_with_its_error_and_log():
    results = [CellResult("dev_global/research/1.0", "dev-global-research", "applied", log=""),
               CellResult("dev_eu-central-1/research/1.0", "dev-eu-central-1-research", "failed",
                          log="/r/dev-eu-central-1-research.log", error="terraform apply failed\nmore detail"),
               CellResult("dev_us-east-1/research/1.0", CELL, "skipped")]
    subject, payload = fleet_failed("apply", ["dev_*/research/1.0"], results, "/r")
    assert subject == "tfdeploy: apply failed in 2 of 3 cells: dev-eu-central-1-research, dev-us-east-1-research"
    assert payload["cells"][0] == {"cell": "dev-eu-central-1-research", "tag": "dev_eu-central-1/research/1.0",
                                   "result": "failed", "error": "terraform apply failed",
                                   "log": "/r/dev-eu-central-1-research.log"}
    assert payload["command"] == "tfdeploy apply --tag dev_*/research/1.0" and payload["logs"] == "/r"


def _regional_input() -> dict:
    [res] = [r for r in state_of(BUCKET, KEY)["resources"] if r["type"] == "terraform_data"]
    return res["instances"][0]["attributes"]["input"]["value"]


def _one_error(proc) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("tfdeploy: error: ")
    return line


def test_rollback_applies_the_previous_version_through_apply_and_the_ledger_says_so(repo):
    tag(repo, "dev_us-east-1/research/1.0")
    v10 = git(repo, "rev-parse", "HEAD").strip()
    (repo / "envs/dev/research/us-east-1.tfvars").write_text('greeting = "hi from 1.1"\n')
    git(repo, "commit", "-qam", "1.1 greets differently")
    tag(repo, "dev_us-east-1/research/1.1")
    v11 = git(repo, "rev-parse", "HEAD").strip()
    tfdeploy(repo, "bootstrap", "--env", "dev")
    nothing = tfdeploy(repo, "rollback", "--env", "dev", "--team", "research", "--scope", "us-east-1",
                       "--auto-approve", check=False)
    assert "nothing deployed in dev-us-east-1-research" in _one_error(nothing)
    for version in ("1.0", "1.1"):
        tfdeploy(repo, "apply", "--tag", f"dev_us-east-1/research/{version}", "--auto-approve")
    assert _regional_input()["message"] == "hi from 1.1 from us-east-1"

    # Without a terminal it needs --auto-approve; nothing is planned.
    asks = tfdeploy(repo, "rollback", "--env", "dev", "--team", "research", "--scope", "us-east-1", check=False)
    assert "needs a yes" in _one_error(asks)

    done = tfdeploy(repo, "rollback", "--env", "dev", "--team", "research", "--scope", "us-east-1", "--auto-approve")
    caller = boto3.client("sts", region_name="us-east-1").get_caller_identity()["Arn"]
    said = done.stdout.splitlines()
    assert said[0].startswith(f"tfdeploy: rolling back {CELL} from 1.1 (commit {v11[:12]}) to 1.0 (commit "
                              f"{v10[:12]}), last applied 20") and said[0].endswith(f" by {caller}")
    assert said[-1] == f"rolled back {CELL} from 1.1 to 1.0 (dev_us-east-1/research/1.0)"
    assert _regional_input() == {"name": "research-dev-us-east-1", "message": "hello from N. Virginia from us-east-1",
                                 "version": "1.0"}

    records = json.loads(tfdeploy(repo, "history", "--cell", CELL, "--json").stdout)["records"]
    newest = records[0]
    assert (newest["action"], newest["result"], newest["version"], newest["commit"]) == ("apply", "succeeded", "1.0", v10)
    assert {k: newest["details"][k] for k in ("rollback_from", "rollback_from_commit")} == {
        "rollback_from": "1.1", "rollback_from_commit": v11}
    assert [r["version"] for r in records] == ["1.0", "1.1", "1.0"] and "rollback_from" not in records[1]["details"]
    text = tfdeploy(repo, "history", "--cell", CELL).stdout.splitlines()
    assert "apply   succeeded (rollback from 1.1)  dev_us-east-1/research/1.0" in text[2]
    [row] = [c for c in json.loads(tfdeploy(repo, "status", "--json").stdout)["cells"] if c["cell"] == CELL]
    assert (row["version"], row["commit"], row["marks"]) == ("1.0", v10, ["behind"])

    # Back again is not "previous" (1.1 was left by the rollback): one line, nothing applied.
    twice = tfdeploy(repo, "rollback", "--env", "dev", "--team", "research", "--scope", "us-east-1",
                     "--auto-approve", check=False)
    assert "no earlier successful version of dev-us-east-1-research" in _one_error(twice)
    for args, said_part in ((("--scope", "us-east-1", "--to", "9.9"), ("tag dev_us-east-1/research/9.9 is not in "
                                                                        "this repo; run git fetch --tags")),
                            # The options are named, not a made-up tag.
                            (("--scope", "mars-1"), "region 'mars-1' is not an AWS Region code like us-east-1 "
                                                    "(or 'global'); check --scope, --team and --to"),
                            (("--scope", "us-east-1", "--env", "prod"), "--env prod is not one of")):
        env_args = () if "--env" in args else ("--env", "dev")
        bad = tfdeploy(repo, "rollback", *env_args, "--team", "research", *args, "--auto-approve", check=False)
        assert said_part in _one_error(bad)
    assert len(json.loads(tfdeploy(repo, "history", "--cell", CELL, "--json").stdout)["records"]) == 3

    # --to a version named explicitly, with --json: one document, the apply's inside.
    forward = json.loads(tfdeploy(repo, "rollback", "--env", "dev", "--team", "research", "--scope", "us-east-1",
                                  "--to", "1.1", "--auto-approve", "--json").stdout)
    assert forward["from"] == {"version": "1.0", "tag": "dev_us-east-1/research/1.0", "commit": v10}
    assert forward["to"] == {"version": "1.1", "tag": "dev_us-east-1/research/1.1", "commit": v11}
    assert forward["apply"]["deployment"]["tag"] == "dev_us-east-1/research/1.1"
    assert _regional_input()["message"] == "hi from 1.1 from us-east-1"

    # Every gate of an apply holds: in qa, a version whose commit never succeeded in dev (applied
    # there once with an override) is refused by the promotion check; nothing applied or recorded.
    (repo / "envs/qa/research/us-east-1.tfvars").write_text('greeting = "qa hotfix"\n')
    git(repo, "commit", "-qam", "a qa-only hotfix")
    tag(repo, "qa_us-east-1/research/1.0.1")
    tag(repo, "qa_us-east-1/research/1.1", "dev_us-east-1/research/1.1^{commit}")
    tfdeploy(repo, "bootstrap", "--env", "qa")
    tfdeploy(repo, "apply", "--tag", "qa_us-east-1/research/1.0.1", "--auto-approve", "--skip-promotion-check",
             "--reason", "hotfix CHG-1")
    tfdeploy(repo, "apply", "--tag", "qa_us-east-1/research/1.1", "--auto-approve")
    gated = tfdeploy(repo, "rollback", "--env", "qa", "--team", "research", "--scope", "us-east-1",
                     "--auto-approve", check=False)
    assert gated.returncode == 2 and "Traceback" not in gated.stderr, gated.stderr
    assert gated.stdout.startswith("tfdeploy: rolling back qa-us-east-1-research from 1.1 ")
    assert gated.stderr.strip().splitlines()[-1].startswith("tfdeploy: error: ")
    assert "(commit " in gated.stderr and "has not been applied in dev for research" in gated.stderr
    qa = json.loads(tfdeploy(repo, "history", "--cell", "qa-us-east-1-research", "--json").stdout)["records"]
    assert [r["version"] for r in qa] == ["1.1", "1.0.1"]


def test_a_fanout_with_failed_cells_notifies_once(repo):
    from tests.fleetstate.test_notify import _received, _topic_with_queue

    (repo / "envs/dev/research/eu-central-1.tfvars").write_text("apply_delay_seconds = -1\n")  # `sleep -1` fails
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "eu-central-1 breaks on apply")
    one_wave(repo)  # both Regions at once: the failing one must not stop the other (no canary)
    for scope in ("us-east-1", "eu-central-1"):
        tag(repo, f"dev_{scope}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    topic, queue = _topic_with_queue()
    run = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", check=False,
                   env={"TFDEPLOY_NOTIFY_TOPIC_ARN": topic})
    assert run.returncode == 1 and "Traceback" not in run.stderr
    (envelope,) = _received(queue, 1)
    assert envelope["Subject"] == "tfdeploy: apply failed in 1 of 2 cells: dev-eu-central-1-research"
    message = json.loads(envelope["Message"])
    assert (message["event"], message["action"], message["failed"], message["total"]) == ("fleet-failed", "apply", 1, 2)
    [cell] = message["cells"]
    assert (cell["cell"], cell["result"]) == ("dev-eu-central-1-research", "failed")
    assert cell["error"].startswith("terraform apply failed") and cell["log"].endswith("dev-eu-central-1-research.log")
    assert Path(cell["log"]).is_file() and Path(message["logs"]) == Path(cell["log"]).parent
