"""One writer per cell whatever `lock` mode (--set lock=...) each run is given (real Terraform, moto, git tags)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time

import boto3
import pytest

from tests.conftest import git
from tests.e2e.conftest import TFDEPLOY, tag, tfdeploy

pytestmark = pytest.mark.safety

BUCKET = "demo-tfstate-dev"
KEY = "research/dev-us-east-1/terraform.tfstate"
TABLE = "demo-tfstate-lock-dev"
V1, V2, V3 = "dev_us-east-1/research/1.0", "dev_us-east-1/research/1.1", "dev_us-east-1/research/1.2"


def s3():
    return boto3.client("s3", region_name="us-east-1")


def ddb():
    return boto3.client("dynamodb", region_name="us-east-1")


def state_bytes() -> bytes | None:
    try:
        return s3().get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    except s3().exceptions.NoSuchKey:
        return None


def digest_row() -> str | None:
    item = ddb().get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}-md5"}}).get("Item")
    return item["Digest"]["S"] if item else None


def objects() -> list[str]:
    return sorted(o["Key"] for o in s3().list_objects_v2(Bucket=BUCKET).get("Contents", []))


def release(repo, version: str, greeting: str, delay: int = 0) -> None:
    """Commit a new greeting (a real change to apply) and tag it."""
    (repo / "envs/dev/research/us-east-1.tfvars").write_text(
        f'greeting = "{greeting}"\napply_delay_seconds = {delay}\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", f"release {version}")
    tag(repo, version)


def last_line(proc) -> str:
    return proc.stderr.strip().splitlines()[-1]


def test_dynamodb_mode_also_takes_the_s3_lockfile_and_keeps_the_digest(repo):
    release(repo, V1, "one")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", V1, "--auto-approve", "--set", "lock=dynamodb")
    # The digest Terraform keeps is the MD5 of the state object's bytes.
    assert digest_row() == hashlib.md5(state_bytes()).hexdigest()
    assert f"{KEY}.tfdeploy-lock-mode.json" in objects()
    resolved = tfdeploy(repo, "resolve", "--tag", V1, "--json", "--set", "lock=dynamodb").stdout
    assert '"use_lockfile": true' in resolved and '"dynamodb_table": "demo-tfstate-lock-dev"' in resolved


def test_concurrent_applies_with_different_lock_modes_never_both_write(repo, tmp_path):
    release(repo, V1, "slow", delay=6)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "plan", "--tag", V1, "--set", "lock=dynamodb")  # first run of the cell: records the mode
    slow = subprocess.Popen([TFDEPLOY, "apply", "--tag", V1, "--set", "lock=dynamodb"], cwd=repo,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while f"{KEY}.tflock" not in objects():  # the slow apply holds the lock now
        assert time.monotonic() < deadline and slow.poll() is None, slow.communicate()
        time.sleep(0.2)
    # Another machine: its own cache (so not this machine's cell lock), the other lock mode.
    other = tfdeploy(repo, "apply", "--tag", V1, "--auto-approve", "--set", "lock=s3", check=False,
                     env={"TFDEPLOY_CACHE_DIR": str(tmp_path / "other-machine")})
    out, err = slow.communicate(timeout=120)
    assert slow.returncode == 0, err
    assert other.returncode == 2, other.stderr
    assert "state is locked in dynamodb mode" in last_line(other)


def test_two_first_writers_in_different_modes_on_a_fresh_cell_only_one_wins(repo, tmp_path, slow_answers):
    """No earlier run recorded the cell's mode: two machines (their own caches, so no shared cell
    lock) apply it for the first time at the same moment, one in dynamodb mode and one in s3 mode.
    Exactly one applies; the other is refused by the mode the winner recorded; the state is the
    winner's alone, in the winner's mode.

    The record's PUT is made slow (3 s on the network), so both runs find no record and both try
    to create it: the race is certain, not left to start-up timing."""
    import threading

    slow_answers(lambda e: e["REQUEST_METHOD"] == "PUT" and e["PATH_INFO"].endswith(".tfdeploy-lock-mode.json"), 3)

    release(repo, V1, "first", delay=3)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    assert state_bytes() is None and f"{KEY}.tfdeploy-lock-mode.json" not in objects()  # a fresh cell
    modes = ("dynamodb", "s3")
    barrier = threading.Barrier(len(modes))
    done: dict[str, subprocess.CompletedProcess] = {}

    def first_run(mode: str) -> None:
        env = {"TFDEPLOY_CACHE_DIR": str(tmp_path / f"machine-{mode}")}
        barrier.wait()  # both released together
        done[mode] = tfdeploy(repo, "apply", "--tag", V1, "--auto-approve", "--set", f"lock={mode}", check=False, env=env)

    threads = [threading.Thread(target=first_run, args=(mode,)) for mode in modes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    winners = [mode for mode in modes if done[mode].returncode == 0]
    assert len(winners) == 1, {m: (p.returncode, p.stderr[-600:]) for m, p in done.items()}
    winner, = winners
    loser, = set(modes) - {winner}
    assert done[loser].returncode == 2, done[loser].stderr
    assert f"cell dev-us-east-1-research's state is locked in {winner} mode (recorded at " in last_line(done[loser])
    assert "Traceback" not in done[loser].stderr + done[winner].stderr

    # Intact: one state, the winner's apply, in the winner's mode; no lock left behind.
    state = json.loads(state_bytes())
    [instance] = [i for r in state["resources"] for i in r["instances"]]
    assert instance.get("status") != "tainted" and instance["attributes"]["input"]["value"]["message"] == (
        "first from us-east-1")
    record = json.loads(s3().get_object(Bucket=BUCKET, Key=f"{KEY}.tfdeploy-lock-mode.json")["Body"].read())
    assert record["mode"] == winner
    assert digest_row() == (hashlib.md5(state_bytes()).hexdigest() if winner == "dynamodb" else None)
    assert f"{KEY}.tflock" not in objects()
    # And the loser's machine, told to use the recorded mode, goes on from the winner's state.
    again = tfdeploy(repo, "apply", "--tag", V1, "--auto-approve", "--set", f"lock={winner}",
                     env={"TFDEPLOY_CACHE_DIR": str(tmp_path / f"machine-{loser}")})
    assert "No changes" in again.stdout + again.stderr or "+0 ~0 -0" in again.stdout + again.stderr, again.stdout


def test_a_run_in_the_other_mode_is_refused_and_writes_nothing(repo):
    release(repo, V1, "one")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", V1, "--auto-approve", "--set", "lock=dynamodb")
    before, digest, listing = state_bytes(), digest_row(), objects()
    release(repo, V2, "two")
    proc = tfdeploy(repo, "apply", "--tag", V2, "--auto-approve", "--set", "lock=s3", check=False)
    assert proc.returncode == 2
    line = last_line(proc)
    assert line == (
        "tfdeploy: error: cell dev-us-east-1-research's state is locked in dynamodb mode "
        f"(recorded at s3://{BUCKET}/{KEY}.tfdeploy-lock-mode.json); run with --set lock=dynamodb, "
        f"or switch deliberately: tfdeploy state migrate-lock --tag {V2} --to s3"), line
    assert (state_bytes(), digest_row(), objects()) == (before, digest, listing)


def test_the_mode_check_beside_init_lets_nothing_after_init_run(repo, tmp_path, terraform_bin):
    """The lock-mode check runs beside `terraform init` (engine/preflight.py): a refused run, a
    single apply or a fan-out, has run init and no other Terraform command, and changed nothing."""
    release(repo, V1, "one")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    first = tfdeploy(repo, "apply", "--tag", V1, "--auto-approve", "--set", "lock=dynamodb")
    assert "Terraform has been successfully initialized!" in first.stdout  # held only until the answers
    before = (state_bytes(), digest_row(), objects())
    log = tmp_path / "terraform-commands.log"
    wrapper = tmp_path / "terraform"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{terraform_bin}" "$@"\n')
    wrapper.chmod(0o755)
    release(repo, V2, "two")
    for args in (["--tag", V2], ["--tag", "dev_us-*/research/1.1", "--parallel", "2"]):
        log.unlink(missing_ok=True)
        proc = tfdeploy(repo, "apply", *args, "--auto-approve", "--set", "lock=s3", check=False,
                        env={"TFDEPLOY_TERRAFORM": str(wrapper)})
        assert proc.returncode != 0 and "locked in dynamodb mode" in proc.stdout + proc.stderr, proc.stderr
        # What init printed is held until the check answers: a refused run never says it initialised.
        assert "successfully initialized" not in proc.stdout + proc.stderr, proc.stdout
        ran = log.read_text().split() if log.exists() else []
        assert set(ran) <= {"init"}, ran  # no plan, apply, refresh or import after a refusal
        assert (state_bytes(), digest_row(), objects()) == before


def test_an_existing_state_without_a_record_is_inferred_from_its_digest_row(repo):
    release(repo, V1, "one")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", V1, "--auto-approve", "--set", "lock=dynamodb")
    s3().delete_object(Bucket=BUCKET, Key=f"{KEY}.tfdeploy-lock-mode.json")  # a pre-tfdeploy state
    proc = tfdeploy(repo, "plan", "--tag", V1, "--set", "lock=s3", check=False)
    assert proc.returncode == 2 and "locked in dynamodb mode (inferred from" in last_line(proc)


def test_migrate_lock_both_directions(repo):
    release(repo, V1, "one")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", V1, "--auto-approve", "--set", "lock=dynamodb")

    moved = tfdeploy(repo, "state", "migrate-lock", "--tag", V1, "--to", "s3", "--yes")
    assert "now s3" in moved.stdout
    assert digest_row() is None
    release(repo, V2, "two")
    tfdeploy(repo, "apply", "--tag", V2, "--auto-approve", "--set", "lock=s3")
    assert b'"two from us-east-1"' in state_bytes()
    refused = tfdeploy(repo, "plan", "--tag", V2, "--set", "lock=dynamodb", check=False)
    assert refused.returncode == 2 and "locked in s3 mode" in last_line(refused)

    back = tfdeploy(repo, "state", "migrate-lock", "--tag", V2, "--to", "dynamodb", "--yes")
    assert "now dynamodb" in back.stdout
    assert digest_row() == hashlib.md5(state_bytes()).hexdigest()
    release(repo, V3, "three")
    tfdeploy(repo, "apply", "--tag", V3, "--auto-approve", "--set", "lock=dynamodb")
    assert b'"three from us-east-1"' in state_bytes()
    assert f"{KEY}.tflock" not in objects()  # every lock released


def test_held_output_is_written_in_order_once_released_and_never_once_dropped():
    """The stream init writes to while the checks are asked (pure; the runs above use it)."""
    import io

    from tfdeploy.engine.preflight import HeldOutput

    shown = io.StringIO()
    held = HeldOutput(shown)
    held.write("Initializing the backend...\n")
    held.flush()
    assert shown.getvalue() == ""
    held.release()
    held.write("Terraform has been successfully initialized!\n")
    held.release()  # twice: nothing written twice
    assert shown.getvalue() == "Initializing the backend...\nTerraform has been successfully initialized!\n"

    hidden = io.StringIO()
    refused = HeldOutput(hidden)
    refused.write("Initializing the backend...\n")
    refused.drop()
    refused.write("Terraform has been successfully initialized!\n")
    refused.release()  # the way out of `beside` releases: a dropped stream stays dropped
    assert hidden.getvalue() == ""


def lock_item() -> dict | None:
    return ddb().get_item(TableName=TABLE, Key={"LockID": {"S": f"{BUCKET}/{KEY}"}}).get("Item")


@pytest.mark.parametrize("lost", ["s3 lockfile PUT", "dynamodb lock PutItem"])
def test_migrate_lock_whose_lock_answer_was_lost_knows_its_own_lock_and_releases_it(repo, lose_answer, lost):
    # The SDK resends a lock write whose answer was lost; the write had landed, so the resend finds
    # a lock: migrate-lock's own (same lock ID), not another run's. It must go on, then release it.
    release(repo, V1, "one")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", V1, "--auto-approve", "--set", "lock=dynamodb")
    if lost == "s3 lockfile PUT":
        losses = lose_answer(lambda e: e["REQUEST_METHOD"] == "PUT" and e["PATH_INFO"].endswith(".tflock"))
    else:
        losses = lose_answer(lambda e: e.get("HTTP_X_AMZ_TARGET", "").endswith(".PutItem"))

    moved = tfdeploy(repo, "state", "migrate-lock", "--tag", V1, "--to", "s3", "--yes", check=False)
    assert len(losses) == 1, losses  # the answer was lost, and the write resent
    assert moved.returncode == 0, moved.stderr
    assert "now s3" in moved.stdout
    assert digest_row() is None
    assert f"{KEY}.tflock" not in objects() and lock_item() is None  # both locks released
    release(repo, V2, "two")
    tfdeploy(repo, "apply", "--tag", V2, "--auto-approve", "--set", "lock=s3")
    assert b'"two from us-east-1"' in state_bytes()


@pytest.mark.parametrize("held", ["s3 lockfile", "dynamodb lock"])
def test_migrate_lock_refuses_a_lock_another_run_holds_and_leaves_it_alone(repo, held):
    release(repo, V1, "one")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", V1, "--auto-approve", "--set", "lock=dynamodb")
    theirs = ('{"ID": "0f0f0f0f-other-run", "Operation": "OperationTypeApply", "Who": "ci@runner", '
              '"Version": "1.15.5", "Created": "2026-11-22T10:00:00Z", "Path": "x"}')
    if held == "s3 lockfile":
        s3().put_object(Bucket=BUCKET, Key=f"{KEY}.tflock", Body=theirs.encode())
    else:
        ddb().put_item(TableName=TABLE, Item={"LockID": {"S": f"{BUCKET}/{KEY}"}, "Info": {"S": theirs}})
    digest = digest_row()

    refused = tfdeploy(repo, "state", "migrate-lock", "--tag", V1, "--to", "s3", "--yes", check=False)
    assert refused.returncode == 1
    assert last_line(refused).startswith(f"tfdeploy: error: the state of {KEY} is locked")
    assert last_line(refused).endswith("wait for that run to finish and try again")
    if held == "s3 lockfile":
        assert "lock ID 0f0f0f0f-other-run" in last_line(refused)
        assert s3().get_object(Bucket=BUCKET, Key=f"{KEY}.tflock")["Body"].read() == theirs.encode()
    else:
        assert lock_item()["Info"]["S"] == theirs
        assert f"{KEY}.tflock" not in objects()  # only migrate-lock's own lockfile was released
    assert digest_row() == digest  # nothing migrated
