"""Records tell the truth through any crash (issue 21, item 4): real Terraform with a slow
`terraform_data` provisioner, real moto on 127.0.0.1, real signals to a real `tfdeploy`.

- every apply writes a `started` record before Terraform starts and a final one after, whose
  result comes from the state object (serial/lineage before and after), not from how it ended;
- a cell whose last record is `started` and whose run is gone is reconciled by the next reader;
- losing the backend lock to another run is `refused` and names the holder;
- records kept for a bucket that did not exist yet are dropped, never written later."""

from __future__ import annotations

import json
import os
import signal
import time

import boto3
import pytest

from tests.e2e.conftest import one_wave, tag, tfdeploy
from tests.safety.test_signals import Run, wait_until_no_processes

pytestmark = [pytest.mark.safety, pytest.mark.slow]

BUCKET = "demo-tfstate-dev"
CELLS = ("dev-eu-central-1-research", "dev-us-east-1-research")
TAGS = ("dev_eu-central-1/research/1.0", "dev_us-east-1/research/1.0")
SLOW = {"TF_VAR_apply_delay_seconds": "6"}


def records(cell: str) -> list[dict]:
    """The cell's record objects, as a user reads them with the S3 API, newest first."""
    s3 = boto3.client("s3", region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"_tfdeploy-ledger/{cell}/")
            .get("Contents", []) if not o["Key"].endswith("/_latest.json")]
    found = [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys]
    return sorted(found, key=lambda r: (r["finished_at"], r["id"]), reverse=True)


def state_serial(cell: str) -> int:
    scope = cell.removeprefix("dev-").removesuffix("-research")
    body = boto3.client("s3", region_name="us-east-1").get_object(
        Bucket=BUCKET, Key=f"research/dev-{scope}/terraform.tfstate")["Body"].read()
    return json.loads(body)["serial"]


def status_of(repo) -> dict[str, dict]:
    out = tfdeploy(repo, "status", "--json").stdout
    return {c["cell"]: c for c in json.loads(out)["cells"]}


def start_fanout(repo) -> Run:
    one_wave(repo)
    for name in TAGS:
        tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    run = Run(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "2", env=SLOW)
    for cell in CELLS:
        run.wait_for(f"[{cell}] plan +1 ~0 -0")
    time.sleep(2.0)  # both cells inside their provisioner's sleep: the resource is being created
    return run


def test_sigterm_of_a_fanout_records_started_then_what_terraform_did(repo):
    run = start_fanout(repo)
    os.kill(run.proc.pid, signal.SIGTERM)
    assert run.finish() == 143, run.stderr
    assert "Traceback" not in run.stderr
    rows = status_of(repo)
    for cell in CELLS:
        final, started = records(cell)[:2]
        assert started["result"] == "started" and started["action"] == "apply", started
        assert started["details"]["holder"]["pid"] > 0
        # Terraform created the resource (tainted: its provisioner was cut short) and saved it.
        assert final["result"] == "interrupted", final
        assert (final["add"], final["change"], final["destroy"]) == (1, 0, 0), final
        assert final["details"]["state_changed"] is True
        assert final["details"]["started_id"] == started["id"]
        assert final["details"]["serial_after"] == state_serial(cell)
        row = rows[cell]
        assert row["result"] == "interrupted" and "failed" not in row["marks"], row
        assert "interrupted" in row["marks"] and row["version"] is None and row["partly"] == "1.0", row
    history = tfdeploy(repo, "history", "--cell", CELLS[0]).stdout
    assert "interrupted (state changed" in history, history


def test_sigkill_of_the_fanout_parent_is_reconciled_by_the_next_reader(repo):
    run = start_fanout(repo)
    os.kill(run.proc.pid, signal.SIGKILL)
    run.finish()
    # Terraform gets its interrupt from the kernel when its parent dies, saves state, unlocks.
    assert wait_until_no_processes(str(repo / ".tfdeploy"), timeout=30) == []
    time.sleep(1.0)
    for cell in CELLS:
        assert [r["result"] for r in records(cell)] == ["started"]  # the dead run's only record
    rows = status_of(repo)
    for cell in CELLS:
        row = rows[cell]
        assert row["result"] == "interrupted" and "interrupted" in row["marks"], row
        assert row["version"] is None and row["partly"] == "1.0", row  # never "1.0 runs there"
        newest = records(cell)[0]
        assert newest["result"] == "interrupted" and newest["details"]["reconciled"], newest
        assert newest["details"]["state_changed"] is True
        assert newest["details"]["serial_after"] == state_serial(cell)
    # Reconciled once: the next reader finds the written record, not a `started` one.
    status_of(repo)
    assert [r["result"] for r in records(CELLS[0])] == ["interrupted", "started"]


def test_a_started_record_of_a_live_run_is_left_alone(repo):
    """A reader never reconciles the run of a process that still runs."""
    tag(repo, TAGS[1])
    tfdeploy(repo, "bootstrap", "--env", "dev")
    run = Run(repo, "apply", "--tag", TAGS[1], "--auto-approve", env=SLOW)
    run.wait_for("(local-exec): Executing:")
    row = status_of(repo)[CELLS[1]]
    assert row["result"] == "started", row
    assert [r["result"] for r in records(CELLS[1])] == ["started"]
    assert run.finish() == 0, run.stderr
    assert [r["result"] for r in records(CELLS[1])] == ["succeeded", "started"]
    row = status_of(repo)[CELLS[1]]
    assert row["version"] == "1.0" and row["marks"] == [], row


LOCK_INFO = {"ID": "6f1c2a9e-0000-4000-8000-00000000beef", "Operation": "OperationTypeApply",
             "Info": "", "Who": "alice@ci-runner-7", "Version": "1.15.5",
             "Created": "2026-12-06 01:02:03.123456 +0000 UTC", "Path": f"{BUCKET}/research/dev-us-east-1/terraform.tfstate"}


@pytest.mark.parametrize("fanout", [False, True], ids=["one-cell", "fan-out"])
def test_losing_the_state_lock_to_another_run_is_refused_and_names_the_holder(repo, fanout):
    tag(repo, TAGS[1])
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", TAGS[1], "--auto-approve")
    boto3.client("dynamodb", region_name="us-east-1").put_item(
        TableName="demo-tfstate-lock-dev",
        Item={"LockID": {"S": LOCK_INFO["Path"]}, "Info": {"S": json.dumps(LOCK_INFO)}})
    args = ("--tag", "dev_us-*/research/1.0") if fanout else ("--tag", TAGS[1])
    got = tfdeploy(repo, "apply", *args, "--auto-approve", check=False)
    assert got.returncode != 0
    text = got.stdout + got.stderr
    assert "locked by alice@ci-runner-7" in text and LOCK_INFO["ID"] in text, text
    assert "2026-12-06 01:02:03" in text and "someone" not in text and "?" not in text.split("locked by")[1][:120], text
    final = records(CELLS[1])[0]
    assert final["result"] == "refused" and final["details"]["state_changed"] is False, final
    assert "alice@ci-runner-7" in final["details"]["error"]
    row = status_of(repo)[CELLS[1]]
    assert "failed" not in row["marks"] and row["version"] == "1.0", row


def test_records_of_applies_before_bootstrap_are_dropped_not_written_later(repo):
    tag(repo, TAGS[1])
    first = tfdeploy(repo, "apply", "--tag", TAGS[1], "--auto-approve", check=False)
    assert first.returncode != 0
    assert "ledger record dropped" in first.stderr and "does not exist" in first.stderr, first.stderr
    tfdeploy(repo, "bootstrap", "--env", "dev")
    shown = tfdeploy(repo, "status", "--json")
    assert records(CELLS[1]) == [], shown.stderr
    row = {c["cell"]: c for c in json.loads(shown.stdout)["cells"]}[CELLS[1]]
    assert row["marks"] == ["never-deployed"], row


def test_a_record_kept_before_its_bucket_existed_is_dropped_with_a_note(repo, tmp_path):
    """An outbox an earlier version filled (a record kept while the bucket did not exist, the
    file saying no why) is
    never written as a deployment once the bucket is made."""
    from tfdeploy.fleet.ledger import Place, keep_in_outbox, record_for
    from tfdeploy.model.tags import parse_tag

    from tfdeploy.paths import repo_cache_dir

    tag(repo, TAGS[1])
    record = record_for(parse_tag(TAGS[1]), commit="0" * 40, action="apply", result="failed", add=0, change=0,
                        destroy=0, caller="", started_at="2026-01-01T00:00:00.000Z",
                        finished_at="2026-01-01T00:00:01.000Z", plan_sha256="", tfdeploy_version="old",
                        build_id="")
    kept = keep_in_outbox(repo_cache_dir(repo, os.environ), record, Place(BUCKET, "us-east-1"))
    tfdeploy(repo, "bootstrap", "--env", "dev")
    shown = tfdeploy(repo, "status")
    assert "dropped" in shown.stderr and str(kept) in shown.stderr, shown.stderr
    assert not kept.exists()
    assert records(CELLS[1]) == []



def test_the_next_apply_of_a_cell_closes_the_record_of_a_run_that_died(repo):
    """A fan-out (or one apply) of a cell whose last run was killed first closes that run's
    record from the state it reads anyway, then runs: the history tells both runs."""
    run = start_fanout(repo)
    os.kill(run.proc.pid, signal.SIGKILL)
    run.finish()
    assert wait_until_no_processes(str(repo / ".tfdeploy"), timeout=30) == []
    time.sleep(1.0)
    serial = state_serial(CELLS[1])
    tfdeploy(repo, "apply", "--tag", TAGS[1], "--auto-approve")
    results = [r["result"] for r in records(CELLS[1])]
    assert results == ["succeeded", "started", "interrupted", "started"], results
    closed = records(CELLS[1])[2]
    assert closed["details"]["reconciled"] and closed["details"]["serial_after"] == serial
    assert closed["details"]["state_changed"] is True
    row = status_of(repo)[CELLS[1]]
    assert row["version"] == "1.0" and row["marks"] == [] and row["partly"] is None, row


def test_sigkill_with_signed_records_status_still_shows_the_interrupted_run(tmp_path, sandbox_env, ledger_key):
    """With `ledger_signing_key` set, the `started` record and the reconciled one are not signed
    (the reconciler may hold no kms:Sign). They are never evidence, but status must not drop them:
    else it says the cell was never deployed (or runs its old version) while the state holds the
    killed run's change (found by benchmarks/soak.py's ledger-vs-state invariant)."""
    from tests.e2e.conftest import make_repo

    signed = make_repo(tmp_path / "infra", lock="dynamodb", ledger_signing_key="alias/tfdeploy-ledger")
    run = start_fanout(signed)
    os.kill(run.proc.pid, signal.SIGKILL)
    run.finish()
    assert wait_until_no_processes(str(signed / ".tfdeploy"), timeout=30) == []
    time.sleep(1.0)
    rows = status_of(signed)
    for cell in CELLS:
        row = rows[cell]
        newest = records(cell)[0]
        assert newest["result"] == "interrupted" and newest["details"]["state_changed"] is True, newest
        assert not newest["signature"]  # the reconciler signs nothing: it needs no kms:Sign
        # The state holds the killed run's resource: status says so, and never that 1.0 runs.
        assert row["result"] == "interrupted" and "interrupted" in row["marks"], row
        assert row["version"] is None and row["partly"] == "1.0", row
        assert "never-deployed" not in row["marks"], row


def test_a_future_dated_forged_record_does_not_hide_a_killed_run_from_status(repo):
    """A record dated a day ahead sorts newest; it must not make the `started` record of a run
    killed after it look closed (found by benchmarks/soak.py: status went on saying the old
    version ran while the state held the killed run's change)."""
    from datetime import datetime, timedelta, timezone

    from tfdeploy.fleet.ledger import record_for
    from tfdeploy.model.tags import parse_tag

    from tests.fleetstate.test_signed_ledger import put_forged

    tfdeploy(repo, "bootstrap", "--env", "dev")  # the bucket the forger writes to (start_fanout's is a no-op)
    ahead = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    forged = record_for(parse_tag("dev_us-east-1/research/0.9"), commit="f" * 40, action="apply",
                        result="succeeded", add=1, change=0, destroy=0, caller="arn:aws:iam::1:user/forger",
                        started_at=ahead, finished_at=ahead, plan_sha256="0" * 64, tfdeploy_version="0",
                        build_id="")
    put_forged(BUCKET, forged.to_dict())
    run = start_fanout(repo)
    os.kill(run.proc.pid, signal.SIGKILL)
    run.finish()
    assert wait_until_no_processes(str(repo / ".tfdeploy"), timeout=30) == []
    time.sleep(1.0)
    row = status_of(repo)["dev-us-east-1-research"]
    assert "interrupted" in row["marks"] and row["partly"] == "1.0", row
    assert row["version"] != "1.0", row  # never "1.0 runs there": its apply was cut short
    reconciled = [r for r in records("dev-us-east-1-research") if r["result"] == "interrupted"]
    assert reconciled and reconciled[0]["details"]["reconciled"], records("dev-us-east-1-research")
