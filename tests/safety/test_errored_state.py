"""A failed state write is never lost (issue 9, item 4): the backend dies mid-apply, Terraform
writes errored.tfstate, tfdeploy keeps it and `tfdeploy state recover` pushes it back."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import tfdeploy
from tests.safety.helpers_celllock import (
    CELL,
    TAG,
    MotoProcess,
    free_port,
    last_line,
    slow_repo,
    start,
    state_object,
)

pytestmark = pytest.mark.safety


def _apply_while_the_backend_dies(repo, moto: MotoProcess) -> tuple[int, str]:
    proc = start(repo, "apply", "--tag", TAG, "--auto-approve", env=moto.env())
    for line in proc.stdout:  # Terraform's live output
        if "Provisioning with 'local-exec'" in line:
            moto.kill()  # the backend dies while Terraform sleeps in the provisioner
            break
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def test_state_terraform_could_not_save_is_kept_and_recovered(tmp_path, sandbox_env):
    moto = MotoProcess(free_port()).start()
    try:
        repo = slow_repo(tmp_path / "infra", delay=4, env=moto.env())
        code, err = _apply_while_the_backend_dies(repo, moto)
        assert code == 1, err
        assert "Traceback" not in err
        line = last_line(err)
        kept_dir = repo / ".tfdeploy" / "errored" / CELL
        kept = sorted(kept_dir.glob("*.tfstate"))
        assert len(kept) == 1, (line, err[-3000:])
        assert line.startswith("tfdeploy: error: ") and str(kept[0]) in line
        assert f"tfdeploy state recover --tag {TAG}" in line
        assert not (repo / ".tfdeploy" / "work" / CELL / "errored.tfstate").exists()
        saved = json.loads(kept[0].read_text())
        assert [r["module"] + "." + r["type"] for r in saved["resources"]] == [
            "module.regional.terraform_data"]

        # The backend comes back empty (a new bucket); a later run rebuilds the work dir and
        # never touches the kept state.
        moto = MotoProcess(moto.port).start()
        tfdeploy(repo, "bootstrap", "--env", "dev", env=moto.env())
        tfdeploy(repo, "plan", "--tag", TAG, env=moto.env())
        assert sorted(kept_dir.glob("*.tfstate")) == kept

        # Without a terminal and without --yes, recover shows the state and refuses in one line.
        refused = tfdeploy(repo, "state", "recover", "--tag", TAG, check=False, env=moto.env())
        assert refused.returncode == 2, refused.stderr
        assert "module.regional.terraform_data.cell" in refused.stdout
        assert "remote state: s3://demo-tfstate-dev/research/dev-us-east-1/terraform.tfstate\n  empty" in refused.stdout
        assert last_line(refused.stderr).startswith("tfdeploy: error: ") and "--yes" in last_line(refused.stderr)

        recovered = tfdeploy(repo, "state", "recover", "--tag", TAG, "--yes", env=moto.env())
        assert "the remote state is empty" in recovered.stdout
        state = state_object(endpoint=moto.url)
        assert state["lineage"] and state["serial"] >= 1
        assert [r["module"] for r in state["resources"]] == ["module.regional"]
        assert not list(kept_dir.glob("*.tfstate"))
        assert json.loads((kept_dir / "recovered" / kept[0].name).read_text()) == saved  # kept, unedited

        # The cell is whole again: nothing left to create.
        again = tfdeploy(repo, "plan", "--tag", TAG, "--detailed-exitcode", check=False, env=moto.env())
        assert again.returncode == 0, again.stdout + again.stderr
    finally:
        moto.kill()


def test_errored_state_left_in_an_old_work_dir_survives_the_next_plan(tmp_path, sandbox_env):
    """A run killed before it could keep the file (SIGKILL) leaves errored.tfstate in the work dir:
    the next run keeps it before rebuilding the work dir, and says so."""
    repo = slow_repo(tmp_path / "infra", delay=0)
    tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve")
    state = state_object()
    errored = repo / ".tfdeploy" / "work" / CELL / "errored.tfstate"
    errored.write_text(json.dumps({**state, "serial": state["serial"] + 1}))

    planned = tfdeploy(repo, "plan", "--tag", TAG)
    kept = sorted((repo / ".tfdeploy" / "errored" / CELL).glob("*.tfstate"))
    assert len(kept) == 1 and kept[0].name.endswith(f"-serial{state['serial'] + 1}.tfstate")
    assert f"kept in {kept[0]}" in planned.stderr and f"tfdeploy state recover --tag {TAG}" in planned.stderr
    assert json.loads(kept[0].read_text())["lineage"] == state["lineage"]


def test_recover_without_a_kept_state_says_so(tmp_path, sandbox_env):
    repo = slow_repo(tmp_path / "infra", delay=0)
    proc = tfdeploy(repo, "state", "recover", "--tag", TAG, "--yes", check=False)
    assert proc.returncode == 1
    assert last_line(proc.stderr) == (f"tfdeploy: error: no kept errored state for cell {CELL} "
                                      f"(looked in {repo / '.tfdeploy' / 'errored' / CELL} and "
                                      f"s3://demo-tfstate-dev/_tfdeploy-errored/{CELL}/)")
    assert "Traceback" not in proc.stderr


def _kept_with_base(repo, base: dict) -> tuple[dict, object]:
    """A kept errored state as Terraform writes it (no lineage, serial 0) plus the base tfdeploy
    records from the failed apply's saved plan."""
    state = state_object()
    errored = {**state, "serial": 0, "lineage": ""}
    errored["outputs"] = {"regional_message": {"value": "recovered", "type": "string"}}
    kept_dir = repo / ".tfdeploy" / "errored" / CELL
    kept_dir.mkdir(parents=True)
    kept = kept_dir / "20260101T000000.000000Z-serial0.tfstate"
    kept.write_text(json.dumps(errored))
    (kept_dir / (kept.name + ".base.json")).write_text(json.dumps(base))
    return state, kept


def test_recover_follows_the_remote_state_the_failed_apply_started_from(tmp_path, sandbox_env):
    repo = slow_repo(tmp_path / "infra", delay=0)
    tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve")
    state, kept = _kept_with_base(repo, {"lineage": "", "serial": 0})
    (kept.parent / (kept.name + ".base.json")).write_text(
        json.dumps({"lineage": state["lineage"], "serial": state["serial"]}))

    proc = tfdeploy(repo, "state", "recover", "--tag", TAG, "--yes")
    assert f"follows it as serial {state['serial'] + 1}" in proc.stdout
    after = state_object()
    assert after["lineage"] == state["lineage"] and after["serial"] > state["serial"]
    assert after["outputs"]["regional_message"]["value"] == "recovered"


def test_recover_refuses_when_the_remote_moved_on_unless_forced(tmp_path, sandbox_env):
    repo = slow_repo(tmp_path / "infra", delay=0)
    tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve")
    state, kept = _kept_with_base(repo, {"lineage": "", "serial": 0})
    (kept.parent / (kept.name + ".base.json")).write_text(
        json.dumps({"lineage": state["lineage"], "serial": state["serial"] - 1}))

    refused = tfdeploy(repo, "state", "recover", "--tag", TAG, "--yes", check=False)
    assert refused.returncode == 1
    assert last_line(refused.stderr).startswith("tfdeploy: error: not pushed: the remote state changed after "
                                                "the failed apply began")
    assert "--force" in last_line(refused.stderr)
    assert state_object() == state and kept.is_file()

    tfdeploy(repo, "state", "recover", "--tag", TAG, "--yes", "--force")
    assert state_object()["outputs"]["regional_message"]["value"] == "recovered"
    assert (kept.parent / "recovered" / kept.name).is_file()
