"""A single tag is a fleet of one (issue 23, item 5): `apply --tag TAG` and a fan-out that selects
one cell leave the same ledger record and send the same notification, because both run the cell
through the same runner, action, recording and notification code; so do `run --auto-approve` and
`apply --auto-approve` of one tag (`run`'s plan and apply are the one tag's).

Real Terraform (embedded), moto on 127.0.0.1 (S3, DynamoDB, SNS delivering to SQS), a real git repo
with annotated tags; the ledger is read back with `tfdeploy history --json`.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy
from tests.fleetstate.test_notify import _received, _topic_with_queue

SINGLE = "dev_us-east-1/research/1.0"
FLEET_OF_ONE = "dev_eu-central-1/research/1.0"
PATTERN = "dev_eu-central-*/research/1.0"  # matches only FLEET_OF_ONE: the fan-out path
# Both cells fail their apply the same way: the provisioner runs `sleep -1`.
BREAK = "apply_delay_seconds = -1\n"
# What differs between two runs of two cells by nature (times, ids, names), not by path.
VARYING = {"tag", "cell", "scope", "region", "started_at", "finished_at", "time", "key", "id", "run_id",
           "state", "state_key", "duration_s", "signature", "when", "command", "error", "who", "record_id",
           "lineage", "serial_before", "serial_after", "log", "started_id", "plan_sha256",
           "scope_name", "sig", "signed_by"}


def _records(repo, cell: str) -> list[dict]:
    return json.loads(tfdeploy(repo, "history", "--cell", cell, "--json").stdout)["records"]


def _shape(value):
    """The record's or message's shape: its keys and the values that do not vary by cell."""
    if isinstance(value, dict):
        return {k: (k if k in VARYING else _shape(v)) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [_shape(v) for v in value]
    return value


def _both_cells_break(repo) -> tuple[str, str]:
    """Both cells' applies fail the same way (tagged, bootstrapped); the notification topic and queue."""
    for region in ("us-east-1", "eu-central-1"):
        (repo / f"envs/dev/research/{region}.tfvars").write_text(BREAK)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "both Regions break on apply")
    tag(repo, SINGLE)
    tag(repo, FLEET_OF_ONE)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    return _topic_with_queue()


def _both_cells_fixed(repo) -> None:
    for region in ("us-east-1", "eu-central-1"):
        (repo / f"envs/dev/research/{region}.tfvars").write_text("")
    git(repo, "commit", "-qam", "fixed")
    for name in (SINGLE, FLEET_OF_ONE):
        git(repo, "tag", "-d", name)
        tag(repo, name)


def _recorded_alike(repo, result: str) -> list[dict]:
    """Both cells' ledger records, field for field but for the cell's own values; the second's."""
    single_records = _records(repo, "dev-us-east-1-research")
    other_records = _records(repo, "dev-eu-central-1-research")
    assert single_records and single_records[0]["result"] == other_records[0]["result"] == result
    assert [_shape(r) for r in single_records] == [_shape(r) for r in other_records]
    return other_records


def test_one_tag_and_a_fan_out_of_one_record_and_notify_alike(repo):
    topic, queue = _both_cells_break(repo)
    env = {"TFDEPLOY_NOTIFY_TOPIC_ARN": topic}

    single = tfdeploy(repo, "apply", "--tag", SINGLE, "--auto-approve", check=False, env=env)
    (single_message,) = _received(queue, 1)
    fanned = tfdeploy(repo, "apply", "--tag", PATTERN, "--auto-approve", check=False, env=env)
    (fanned_message,) = _received(queue, 1)

    # The same result code, and no traceback, either way.
    assert (single.returncode, fanned.returncode) == (1, 1), (single.stderr, fanned.stderr)
    assert "Traceback" not in single.stderr + fanned.stderr
    # The one-cell view: Terraform's output and one error line, no matrix.
    assert single.stderr.strip().splitlines()[-1].startswith("tfdeploy: error: terraform apply failed")
    assert "tfdeploy: apply of 1 cells" not in single.stdout and "tfdeploy: apply of 1 cells" in fanned.stdout

    # One notification each, of the same event and shape: the cell's apply-failed.
    one, other = (json.loads(m["Message"]) for m in (single_message, fanned_message))
    assert single_message["Subject"] == f"tfdeploy: apply failed: {SINGLE}"
    assert fanned_message["Subject"] == f"tfdeploy: apply failed: {FLEET_OF_ONE}"
    assert (one["event"], one["result"], one["tag"], one["cell"]) == ("apply-failed", "failed", SINGLE,
                                                                      "dev-us-east-1-research")
    assert (other["event"], other["result"], other["tag"]) == ("apply-failed", "failed", FLEET_OF_ONE)
    assert one["state"] == "s3://demo-tfstate-dev/research/dev-us-east-1/terraform.tfstate"
    assert other["state"] == "s3://demo-tfstate-dev/research/dev-eu-central-1/terraform.tfstate"
    assert one["error"].startswith("terraform apply failed") and other["error"].startswith("terraform apply failed")
    assert _shape(one) == _shape(other)

    # The same ledger records (started, then failed), field for field but for the cell's own values.
    _recorded_alike(repo, "failed")

    # Fixed, both succeed and record alike again; a success notifies nobody.
    _both_cells_fixed(repo)
    ok_single = tfdeploy(repo, "apply", "--tag", SINGLE, "--auto-approve", env=env)
    ok_fanned = tfdeploy(repo, "apply", "--tag", PATTERN, "--auto-approve", env=env)
    assert f"applied {SINGLE}: +" in ok_single.stdout  # the one-cell view, as before
    assert "applied" in ok_fanned.stdout
    assert _received(queue, 0, wait_s=2) == []
    _recorded_alike(repo, "succeeded")


@pytest.mark.slow  # two runs of checkov and four applies: ~35 s
def test_run_and_apply_of_one_tag_record_and_notify_alike(repo, checkov_bin):
    """`run --auto-approve` (lint, scan, plan, apply) applies its cell as `apply --auto-approve` of
    one tag does: the same failure gives the same ledger records and the same `apply-failed`
    notification, and a success the same records, because `run`'s plan and apply are the one
    tag's plan and apply (fleet/runner.run_one, fleet/actions), with lint and scan before."""
    topic, queue = _both_cells_break(repo)
    env = {"TFDEPLOY_NOTIFY_TOPIC_ARN": topic, "TFDEPLOY_CHECKOV": checkov_bin}
    run_args = ("run", "--tag", FLEET_OF_ONE, "--auto-approve", "--allow-missing", "tflint")

    applied = tfdeploy(repo, "apply", "--tag", SINGLE, "--auto-approve", check=False, env=env)
    apply_messages = _received(queue, 1)
    ran = tfdeploy(repo, *run_args, check=False, env=env)
    run_messages = _received(queue, 1)

    assert (applied.returncode, ran.returncode) == (1, 1), (applied.stderr, ran.stderr)
    assert "Traceback" not in applied.stderr + ran.stderr
    # run's own view, as before: a line per stage, then the run in one line and the error.
    assert f"run {FLEET_OF_ONE}: lint passed, scan passed, plan passed, apply failed" in ran.stdout
    assert ran.stderr.strip().splitlines()[-1].startswith("tfdeploy: error: terraform apply failed")

    # One notification each, the cell's apply-failed, of the same shape.
    assert len(apply_messages) == 1 and len(run_messages) == 1, (apply_messages, run_messages)
    one, other = (json.loads(m[0]["Message"]) for m in (apply_messages, run_messages))
    assert run_messages[0]["Subject"] == f"tfdeploy: apply failed: {FLEET_OF_ONE}"
    assert (other["event"], other["result"], other["tag"]) == ("apply-failed", "failed", FLEET_OF_ONE)
    assert other["state"] == "s3://demo-tfstate-dev/research/dev-eu-central-1/terraform.tfstate"
    assert _shape(one) == _shape(other)

    # The same ledger records (started, then failed), both saying nobody reviewed the plan.
    assert _recorded_alike(repo, "failed")[0]["details"]["plan"].startswith("auto-approved")

    # Fixed, both succeed and record alike; a success notifies nobody.
    _both_cells_fixed(repo)
    tfdeploy(repo, "apply", "--tag", SINGLE, "--auto-approve", env=env)
    ok_run = tfdeploy(repo, *run_args, env=env)
    assert f"run {FLEET_OF_ONE}: lint passed, scan passed, plan passed, apply passed" in ok_run.stdout
    assert _received(queue, 0, wait_s=2) == []
    _recorded_alike(repo, "succeeded")
