"""A full local disk during an apply or a fan-out (a real 3 MiB tmpfs as the repo cache, where the
work dirs, kept errored states, run logs and records live): what tfdeploy says it kept, it kept;
an errored state the disk cannot take goes to the state bucket and `state recover` reads it there;
the run ends in lines, never a traceback; a cell whose apply succeeded is recorded as succeeded."""

from __future__ import annotations

import errno
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy
from tests.safety.helpers_celllock import CELL, KEY, TAG, last_line, slow_repo, start, state_object
from tests.statecheck import all_keys, s3

pytestmark = pytest.mark.safety

BUCKET = "demo-tfstate-dev"
ERRORED = f"_tfdeploy-errored/{CELL}/"


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs (needs mount rights: root, or skipped with the reason)."""
    disk = tmp_path / "small-disk"
    disk.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(reason=f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode}); "
                    "the disk-full tests need a real small filesystem")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> None:
    """Take every free block of the disk."""
    import os

    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.mark.parametrize("fanout", [False, True], ids=["one-cell", "fan-out"])
def test_an_errored_state_the_full_disk_cannot_take_goes_to_the_backend_and_recover_reads_it(
        tmp_path, sandbox_env, small_disk, lose_answer, fanout):
    """One cell: Terraform prints the state as text; a fan-out (-json): as an event."""
    env = {"TFDEPLOY_CACHE_DIR": str(small_disk)}
    repo = slow_repo(tmp_path / "infra", delay=4, env=env)
    selected = "dev_us-east-1/research/1.*" if fanout else TAG
    proc = start(repo, "apply", "--tag", selected, "--auto-approve", env=env)
    for line in proc.stdout:
        if ("plan +1" if fanout else "Provisioning with 'local-exec'") in line:
            # While the apply sleeps: the backend will not answer Terraform's state save (every
            # attempt of its check before the write), and the disk under the work dir fills up.
            time.sleep(1 if fanout else 0)
            for _ in range(5):
                lost = lose_answer(lambda e: e["REQUEST_METHOD"] == "HEAD" and e["PATH_INFO"].endswith("/" + KEY))
            fill(small_disk)
            break
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err
    assert "Traceback" not in err and len(lost) == 5, lost
    objects = [k for k in all_keys(BUCKET) if k.startswith(ERRORED)]
    assert len(objects) == 1, (objects, out[-3000:], err[-3000:])
    if fanout:  # the cell's line in the run's output
        [line] = [x for x in out.splitlines() if x.startswith(f"[{CELL}] failed")]
    else:
        line = last_line(err)
        assert line.startswith("tfdeploy: error: ")
    assert "the local disk failed" in line and f"kept in the backend at s3://{BUCKET}/{objects[0]}" in line
    assert f"tfdeploy state recover --tag {TAG}" in line
    kept = json.loads(s3().get_object(Bucket=BUCKET, Key=objects[0])["Body"].read())
    assert [(r["module"], r["type"]) for r in kept["resources"]] == [("module.regional", "terraform_data")]
    # Nothing on the full disk is called kept: no empty or partial state among the kept ones.
    assert not list((small_disk / "errored" / CELL).glob("*.tfstate"))

    (small_disk / "filler").unlink()
    tfdeploy(repo, "bootstrap", "--env", "dev", env=env)
    recovered = tfdeploy(repo, "state", "recover", "--tag", TAG, "--yes", env=env)
    assert f"kept state: s3://{BUCKET}/{objects[0]}" in recovered.stdout
    state = state_object()
    assert [(r["module"], r["type"]) for r in state["resources"]] == [("module.regional", "terraform_data")]
    keys = all_keys(BUCKET)
    assert objects[0] in keys and objects[0] + ".recovered" in keys  # marked, never deleted
    again = tfdeploy(repo, "plan", "--tag", TAG, "--detailed-exitcode", check=False, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    # Recovered: the next recover finds nothing left to push.
    none = tfdeploy(repo, "state", "recover", "--tag", TAG, "--yes", check=False, env=env)
    assert none.returncode == 1 and "no kept errored state" in last_line(none.stderr)


REGIONS = ("us-east-1", "eu-central-1", "us-west-2")


def test_a_fanout_that_fills_the_disk_records_what_terraform_did_without_a_traceback(
        tmp_path, sandbox_env, small_disk):
    env = {"TFDEPLOY_CACHE_DIR": str(small_disk)}
    repo = make_repo(tmp_path / "infra", lock="dynamodb")
    (repo / "envs/dev/research/variables.tfvars").write_text(
        'account = "111111111111"\nallowed_regions = ["us-east-1", "eu-central-1", "us-west-2"]\n'
        "apply_delay_seconds = 3\n")
    git(repo, "commit", "-qam", "3 Regions, slow applies")
    for scope in (*REGIONS, "global"):
        tag(repo, f"dev_{scope}/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev", env=env)
    proc = start(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--parallel", "4", env=env)
    planned, out = set(), []
    for line in proc.stdout:
        out.append(line)
        found = re.match(r"^\[(dev-(?:us|eu)-[a-z0-9-]+-research)\] plan \+1", line)
        if found:
            planned.add(found.group(1))
        if len(planned) == len(REGIONS):
            # --auto-approve plans into a saved plan, checks it, then applies it: a cell's apply has
            # started once it claimed (spent) its plan; fill the disk only then, not mid-plan.
            spent = [small_disk / "work" / cell / "tfdeploy.tfplan.spent" for cell in planned]
            deadline = time.monotonic() + 60
            while not all(path.exists() for path in spent) and time.monotonic() < deadline:
                time.sleep(0.05)
            fill(small_disk)  # the regional applies are running (sleeping in a provisioner)
            # The canary wave (one Region) finished before the others applied (they planned while
            # it applied): the disk fails only under the cells still applying now, those whose
            # log has no last line yet.
            running = sorted(c for c in planned
                             if not any("# finished " in log.read_text()
                                        for log in (small_disk / "runs").glob(f"*/{c}.log")))
            break
    rest, err = proc.communicate(timeout=600)
    out = "".join(out) + rest
    assert "Traceback" not in err and "internal error" not in out + err, err
    assert proc.returncode == 0, out + err
    for scope in (*REGIONS, "global"):
        cell = f"dev-{scope}-research"
        assert re.search(rf"^{cell}\s+\S+\s+applied\s+\+1 ~0 -0", out, re.M), out
    assert "the local disk is full" in err
    summary = [line for line in err.splitlines() if "the local disk failed during this run" in line]
    assert len(summary) == 1, err
    # One line per cell the disk failed under (its result file, or its log), however many writes failed.
    assert running, out
    for cell in running:
        mine = [line for line in err.splitlines() if line.startswith(f"[{cell}] tfdeploy: warning: ")]
        assert len(mine) == 1 and "No space left on device" in mine[0], err

    (small_disk / "filler").unlink()
    status = json.loads(tfdeploy(repo, "status", "--env", "dev", "--json", env=env).stdout)
    results = {c["cell"]: (c["version"], c["result"]) for c in status["cells"] if c["team"] == "research"}
    assert results == {f"dev-{s}-research": ("1.0", "succeeded") for s in (*REGIONS, "global")}, results


def test_the_state_terraform_prints_is_found_in_its_output():
    """Pure: when Terraform could write neither the backend nor errored.tfstate it prints the
    state between its messages; that copy is what tfdeploy keeps."""
    from tfdeploy.engine.errored import emergency_dump, readable_state

    state = {"version": 4, "terraform_version": "1.15.5", "serial": 3, "lineage": "L",
             "outputs": {}, "resources": [{"module": "module.regional", "type": "terraform_data"}]}
    output = ("module.regional.terraform_data.cell: Creation complete\n"
              + json.dumps(state, indent=2) + "\n\nError: Failed to save state\n{not json}\n")
    assert json.loads(emergency_dump(output)) == state
    # With -json, Terraform sends it as an event; its human rendering drops the state.
    from tfdeploy.engine.errored import dumped_in_events

    event = {"@level": "info", "@message": "Emergency state dump", "type": "state_dump", "state": state}
    assert json.loads(emergency_dump(dumped_in_events([{"type": "apply_complete"}, event]))) == state
    assert emergency_dump("Error: Failed to save state\n") is None
    assert readable_state(b"") is None and readable_state(b'{"version": 4, "resour') is None
    assert readable_state(json.dumps(state).encode()) == state


def test_when_neither_the_disk_nor_the_backend_can_keep_it_the_state_is_printed_and_the_line_says_so(
        tmp_path, sandbox_env, small_disk):
    from tests.safety.helpers_celllock import MotoProcess, free_port

    moto = MotoProcess(free_port()).start()
    try:
        env = {**moto.env(), "TFDEPLOY_CACHE_DIR": str(small_disk)}
        repo = slow_repo(tmp_path / "infra", delay=4, env=env)
        proc = start(repo, "apply", "--tag", TAG, "--auto-approve", env=env)
        for line in proc.stdout:
            if "Provisioning with 'local-exec'" in line:
                moto.kill()  # the backend dies...
                fill(small_disk)  # ...and the local disk is full
                break
        _out, err = proc.communicate(timeout=600)
    finally:
        moto.kill()
    assert proc.returncode == 1 and "Traceback" not in err, err
    line = last_line(err)
    assert "neither the local disk nor the backend could keep it" in line and "printed it on stderr above" in line
    assert f"tfdeploy state recover --tag {TAG} --file FILE" in line
    printed = err[err.index(f"the state Terraform could not save for cell {CELL} follows"):]
    state = json.loads(printed[printed.index("{"):printed.rindex("}") + 1].split("\ntfdeploy: ")[0])
    assert [(r["module"], r["type"]) for r in state["resources"]] == [("module.regional", "terraform_data")]
    assert not list((small_disk / "errored" / CELL).glob("*.tfstate"))  # nothing claimed kept


def test_a_command_started_on_a_full_disk_ends_in_one_line(tmp_path, sandbox_env, small_disk):
    env = {"TFDEPLOY_CACHE_DIR": str(small_disk)}
    repo = slow_repo(tmp_path / "infra", delay=0, env=env)
    fill(small_disk)
    proc = tfdeploy(repo, "plan", "--tag", TAG, check=False, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("tfdeploy: error: ")]
    assert len(errors) == 1 and errors[0] == last_line(proc.stderr), proc.stderr
    assert "the local disk is full" in errors[0] or "No space left on device" in errors[0], errors[0]

    # A fan-out: the cell fails alone with what is wrong (not "internal error"), then the run's lines.
    fan = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", check=False, env=env)
    assert fan.returncode == 1 and "Traceback" not in fan.stderr, fan.stderr
    assert "internal error" not in fan.stdout + fan.stderr
    assert re.search(rf"^\[{CELL}\] failed \(\S+\): the local disk is full", fan.stdout, re.M), fan.stdout
    assert not [line for line in fan.stderr.splitlines() if line.startswith(f"[{CELL}]")], fan.stderr  # said once
    assert len([line for line in fan.stderr.splitlines()
                if "the local disk failed during this run under 1 of 1 cells" in line]) == 1, fan.stderr


def test_a_state_only_the_work_dir_holds_is_named_and_its_work_dir_is_not_rebuilt_away(tmp_path, sandbox_env):
    """The kept place cannot be written (here: a file where its folder goes) and the backend is
    dead: the line names the work dir's errored.tfstate as the only copy, and no later run
    rebuilds that work dir until the state could be kept."""
    from tests.safety.helpers_celllock import MotoProcess, free_port

    moto = MotoProcess(free_port()).start()
    try:
        repo = slow_repo(tmp_path / "infra", delay=4, env=moto.env())
        (repo / ".tfdeploy").mkdir(exist_ok=True)
        (repo / ".tfdeploy" / "errored").write_text("not a folder\n")
        proc = start(repo, "apply", "--tag", TAG, "--auto-approve", env=moto.env())
        for line in proc.stdout:
            if "Provisioning with 'local-exec'" in line:
                moto.kill()
                break
        _out, err = proc.communicate(timeout=600)
        assert proc.returncode == 1 and "Traceback" not in err, err
        only = repo / ".tfdeploy" / "work" / CELL / "errored.tfstate"
        line = last_line(err)
        assert f"its only copy is {only}" in line and "copy it somewhere safe now" in line, line
        saved = json.loads(only.read_text())
        assert [(r["module"], r["type"]) for r in saved["resources"]] == [("module.regional", "terraform_data")]

        moto = MotoProcess(moto.port).start()
        refused = tfdeploy(repo, "plan", "--tag", TAG, check=False, env=moto.env())
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert f"a state Terraform could not save is in {only} and cannot be kept" in last_line(refused.stderr)
        assert json.loads(only.read_text()) == saved  # untouched

        (repo / ".tfdeploy" / "errored").unlink()
        tfdeploy(repo, "bootstrap", "--env", "dev", env=moto.env())
        planned = tfdeploy(repo, "plan", "--tag", TAG, env=moto.env())
        [kept] = (repo / ".tfdeploy" / "errored" / CELL).glob("*.tfstate")
        assert json.loads(kept.read_text()) == saved and f"kept in {kept}" in planned.stderr
    finally:
        moto.kill()
