"""Stale locks (issue 9, item 5): `tfdeploy locks` lists held state locks in both modes and
`tfdeploy unlock` releases a dead holder's lock, never a live one."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.e2e.conftest import tfdeploy
from tests.safety.helpers_celllock import (
    CELL,
    TAG,
    finish,
    last_line,
    slow_repo,
    start,
    wait_for,
)

pytestmark = pytest.mark.safety


def _held(repo) -> list[dict]:
    return json.loads(tfdeploy(repo, "locks", "--env", "dev", "--json").stdout)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def _terraform_apply_of(pid: int) -> int:
    for child in _children(pid):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"apply" in cmdline:
            return child
    raise AssertionError("no terraform apply under tfdeploy")


@pytest.mark.parametrize("lock_mode", ["dynamodb", "s3"])
def test_stale_state_lock_is_listed_and_released(tmp_path, sandbox_env, lock_mode):
    repo = slow_repo(tmp_path / "infra", delay=15, lock=lock_mode)
    run = start(repo, "apply", "--tag", TAG, "--auto-approve")
    try:
        wait_for(lambda: _held(repo), what="the apply's state lock")
        (held,) = _held(repo)
        assert held["cell"] == CELL and held["mode"] == lock_mode and held["operation"] == "OperationTypeApply"
        assert held["tags"] == [TAG] and held["key"] == "research/dev-us-east-1/terraform.tfstate"
        table = tfdeploy(repo, "locks").stdout
        assert CELL in table and held["lock_id"] in table and "OperationTypeApply" in table

        # The holder is alive on this machine: unlock refuses, naming it.
        live = tfdeploy(repo, "unlock", "--tag", TAG, "--lock-id", held["lock_id"], "--yes", check=False)
        assert live.returncode == 1
        assert last_line(live.stderr).startswith(f"tfdeploy: error: cell {CELL} is in use on this machine by "
                                                 f"pid {run.pid} (")

        # Terraform dies without releasing its lock (SIGKILL): the lock is stale.
        terraform = _terraform_apply_of(run.pid)
        below = _descendants(terraform)  # the provisioner's sleep, killed too so nothing lingers
        os.kill(terraform, signal.SIGKILL)
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        code, _, _ = finish(run)
        assert code == 1
        (stale,) = _held(repo)
        assert stale["lock_id"] == held["lock_id"]
        # --scope filters as everywhere (the stale lock stays put): its Region lists it, global does not.
        by_scope = {scope: json.loads(tfdeploy(repo, "locks", "--scope", scope, "--json").stdout)
                    for scope in ("us-east-1", "global", "all")}
        assert [h["cell"] for h in by_scope["us-east-1"]] == [CELL] == [h["cell"] for h in by_scope["all"]]
        assert by_scope["global"] == []
        blocked = tfdeploy(repo, "plan", "--tag", TAG, check=False)
        assert blocked.returncode == 1
        assert f"tfdeploy unlock --tag {TAG} --lock-id {held['lock_id']}" in last_line(blocked.stderr)

        no_tty = tfdeploy(repo, "unlock", "--tag", TAG, "--lock-id", held["lock_id"], check=False)
        assert no_tty.returncode == 2 and "--yes" in last_line(no_tty.stderr)
        assert _held(repo)

        released = tfdeploy(repo, "unlock", "--tag", TAG, "--lock-id", held["lock_id"], "--yes")
        assert f"released lock {held['lock_id']}" in released.stdout
        assert _held(repo) == []
        tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve", "--lock-timeout", "1s")

    finally:
        if run.poll() is None:
            run.kill()
            run.wait()

def test_unlock_of_an_unknown_lock_id_is_one_line(tmp_path, sandbox_env):
    repo = slow_repo(tmp_path / "infra", delay=0)
    proc = tfdeploy(repo, "unlock", "--tag", TAG, "--lock-id", "not-a-lock", "--yes", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert last_line(proc.stderr) == ("tfdeploy: error: no state lock with ID not-a-lock is held in the dev "
                                      "backend; tfdeploy locks lists the held ones")
    assert tfdeploy(repo, "locks", "--env", "dev").stdout.strip() == "no state locks held"


def test_a_dynamodb_mode_lock_held_in_both_places_is_listed_once():
    from tfdeploy.engine.statelocks import StateLock, merge_modes

    def lock(mode: str, where: str, lock_id: str = "id-1") -> StateLock:
        return StateLock(mode=mode, bucket="b", key="k", lock_id=lock_id, operation="OperationTypeApply",
                         who="me@host", created="", cell="dev-us-east-1-research", tags=(), where=where)

    merged = merge_modes([lock("s3", "s3://b/k.tflock"), lock("dynamodb", "DynamoDB table t"),
                          lock("s3", "s3://b/k.tflock", lock_id="id-2")])
    assert [(m.mode, m.lock_id, m.where) for m in merged] == [
        ("dynamodb", "id-1", "DynamoDB table t + s3://b/k.tflock"), ("s3", "id-2", "s3://b/k.tflock")]


def test_a_lockfile_released_between_the_listing_and_the_read_is_not_held(aws_sandbox, monkeypatch):
    """`tfdeploy locks` polled while a run plans and applies (CI, stop 29): the run released its
    `.tflock` after the listing named it and before its body was read. That lock is not held; the
    command must not fail on it, and a lockfile still there is listed."""
    import boto3

    from tfdeploy.aws import clients
    from tfdeploy.engine.statelocks import list_locks
    from tfdeploy.model.backend import backend_for
    from tfdeploy.model.settings import Settings
    from tfdeploy.model.tags import parse_tag

    settings = Settings(backend_prefix="demo-tfstate", lock="s3")
    tag = parse_tag(TAG)
    backend = backend_for(tag, settings, "us-east-1")
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=aws_sandbox)
    s3.create_bucket(Bucket=backend.bucket)
    info = json.dumps({"ID": "held-1", "Operation": "OperationTypeApply", "Who": "ci@runner", "Created": ""})
    s3.put_object(Bucket=backend.bucket, Key=backend.key + ".tflock", Body=info.encode())
    s3.put_object(Bucket=backend.bucket, Key="other/dev-us-east-1/terraform.tfstate.tflock", Body=info.encode())

    real_client = clients.client

    def released_on_read(service, *args, **kwargs):
        made = real_client(service, *args, **kwargs)
        if service == "s3":  # the holder finishes right as its lockfile is read
            def release(params, **_):
                if params["Key"] == backend.key + ".tflock":
                    s3.delete_object(Bucket=backend.bucket, Key=params["Key"])
            made.meta.events.register("before-parameter-build.s3.GetObject", release)
        return made

    monkeypatch.setattr(clients, "client", released_on_read)
    held = list_locks(settings, [tag], ["dev"], os.environ)
    assert [(lock.key, lock.lock_id) for lock in held] == [("other/dev-us-east-1/terraform.tfstate", "held-1")]
