"""State versions (issue 12, item 9): `tfdeploy state history` lists the versions of a cell's state
object in the versioned state bucket; `tfdeploy state restore` writes an old one back as a NEW
version under the cell lock and Terraform's state lock, never deleting one.

Real Terraform (embedded), moto server, real git tags: 1.0 has one resource, 1.1 adds a second.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy
from tests.safety.helpers_celllock import BUCKET, CELL, KEY, holder_script, last_line
from tests.statecheck import s3, state_of

TAG10 = "dev_us-east-1/research/1.0"
TAG11 = "dev_us-east-1/research/1.1"
EXTRA = "module.regional.terraform_data.extra"
CELL_RESOURCE = "module.regional.terraform_data.cell"


def _versions() -> list[dict]:
    """Every version of the state object, straight from S3 (newest first)."""
    listed = s3().list_object_versions(Bucket=BUCKET, Prefix=KEY)
    return [v for v in listed.get("Versions", []) if v["Key"] == KEY]


def _body(version_id: str) -> dict:
    return json.loads(s3().get_object(Bucket=BUCKET, Key=KEY, VersionId=version_id)["Body"].read())


def _addresses(state: dict) -> list[str]:
    return sorted(f"{r['module']}.{r['type']}.{r['name']}" for r in state["resources"])


def _release_with_an_extra_resource(repo) -> None:
    main = repo / "modules/regional/main.tf"
    main.write_text(main.read_text() + '\nresource "terraform_data" "extra" {\n  input = var.version_label\n}\n')
    git(repo, "commit", "-qam", "1.1 adds a resource")
    tag(repo, TAG11)


def _shown_addresses(repo) -> list[str]:
    """What Terraform itself pulls from the backend (tfdeploy show --json)."""
    shown = json.loads(tfdeploy(repo, "show", "--tag", TAG11, "--json").stdout)
    modules = shown["values"]["root_module"].get("child_modules", [])
    return sorted(r["address"] for m in modules for r in m.get("resources", []))


def test_history_lists_versions_and_restore_writes_an_old_one_as_a_new_version(repo):
    tag(repo, TAG10)
    _release_with_an_extra_resource(repo)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", TAG10, "--auto-approve")
    v10 = state_of(BUCKET, KEY)
    tfdeploy(repo, "apply", "--tag", TAG11, "--auto-approve")
    v11 = state_of(BUCKET, KEY)
    assert _addresses(v10) == [CELL_RESOURCE] and _addresses(v11) == [CELL_RESOURCE, EXTRA]

    # --- history: every version with its serial, lineage, size and resource count ---
    listed = json.loads(tfdeploy(repo, "state", "history", "--tag", TAG11, "--json").stdout)
    assert listed["state"] == f"s3://{BUCKET}/{KEY}"
    in_s3 = _versions()
    assert [v["version_id"] for v in listed["versions"]] == [v["VersionId"] for v in in_s3]
    current, *older = listed["versions"]
    assert current["current"] is True and not any(v["current"] for v in older)
    assert (current["serial"], current["lineage"], current["resources"]) == (v11["serial"], v11["lineage"], 2)
    assert current["size"] == next(v["Size"] for v in in_s3 if v["VersionId"] == current["version_id"])
    (old,) = [v for v in older if v["serial"] == v10["serial"]]
    assert old["resources"] == 1 and old["lineage"] == v10["lineage"]
    assert _body(old["version_id"]) == v10
    text = tfdeploy(repo, "state", "history", "--tag", TAG11).stdout
    current_line = next(line for line in text.splitlines() if current["version_id"] in line)
    assert "current" in current_line and f"serial {v11['serial']}" in current_line
    assert old["version_id"] in text and v10["lineage"][:8] in text
    limited = json.loads(tfdeploy(repo, "state", "history", "--tag", TAG11, "--json", "--limit", "1").stdout)
    assert len(limited["versions"]) == 1 and limited["more"] is True

    before = [v["VersionId"] for v in _versions()]

    # --- restore without a terminal and without --yes: shows what changes, refuses, writes nothing ---
    refused = tfdeploy(repo, "state", "restore", "--tag", TAG11, "--version-id", old["version_id"], check=False)
    assert refused.returncode == 2, refused.stderr
    assert "Traceback" not in refused.stderr
    assert EXTRA in refused.stdout and "removed" in refused.stdout
    assert last_line(refused.stderr).startswith("tfdeploy: error: ") and "--yes" in last_line(refused.stderr)
    assert [v["VersionId"] for v in _versions()] == before

    # --- a version id that is not one of this state's versions ---
    unknown = tfdeploy(repo, "state", "restore", "--tag", TAG11, "--version-id", "no-such-version", "--yes",
                       check=False)
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    assert last_line(unknown.stderr).startswith("tfdeploy: error: no-such-version is not a version of "
                                                f"s3://{BUCKET}/{KEY}")

    # --- another run of the cell holds the cell lock: refused at once, or waited for ---
    holder = subprocess.Popen(holder_script(repo / ".tfdeploy", 120), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = tfdeploy(repo, "state", "restore", "--tag", TAG11, "--version-id", old["version_id"], "--yes",
                        check=False)
        assert busy.returncode == 1
        assert last_line(busy.stderr).startswith(f"tfdeploy: error: cell {CELL} is busy: pid {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert [v["VersionId"] for v in _versions()] == before

    # --- another machine holds Terraform's state lock: refused in one line, nothing written ---
    lock_info = {"ID": "11111111-2222-3333-4444-555555555555", "Operation": "OperationTypeApply",
                 "Who": "someone@elsewhere", "Version": "1.15.5", "Created": "2026-01-01T00:00:00Z",
                 "Path": f"{BUCKET}/{KEY}", "Info": ""}
    s3().put_object(Bucket=BUCKET, Key=KEY + ".tflock", Body=json.dumps(lock_info).encode())
    try:
        locked = tfdeploy(repo, "state", "restore", "--tag", TAG11, "--version-id", old["version_id"], "--yes",
                          "--lock-timeout", "2s", check=False)
    finally:
        s3().delete_object(Bucket=BUCKET, Key=KEY + ".tflock")
    assert locked.returncode == 1 and "Traceback" not in locked.stderr
    assert "the state is locked by someone@elsewhere" in last_line(locked.stderr)
    assert [v["VersionId"] for v in _versions()] == before
    assert state_of(BUCKET, KEY) == v11

    # --- restore with --yes while the cell is busy for a moment: waits (--lock-timeout), then writes ---
    holder = subprocess.Popen(holder_script(repo / ".tfdeploy", 2), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    restored = tfdeploy(repo, "state", "restore", "--tag", TAG11, "--version-id", old["version_id"], "--yes",
                        "--lock-timeout", "1m")
    holder.wait()
    assert time.monotonic() - started >= 1
    assert EXTRA in restored.stdout
    after = _versions()
    assert set(before) < {v["VersionId"] for v in after}, "a version was deleted"
    assert len(after) > len(before) and after[0]["VersionId"] not in before
    now = state_of(BUCKET, KEY)
    assert _addresses(now) == _addresses(v10)
    assert now["resources"] == v10["resources"] and now["outputs"] == v10["outputs"]
    assert now["lineage"] == v11["lineage"] and now["serial"] > v11["serial"]
    for version_id in before:  # every old version is still there, unchanged
        assert _body(version_id)["lineage"] == v11["lineage"]
    assert _body(old["version_id"]) == v10
    assert _shown_addresses(repo) == [CELL_RESOURCE]

    # The history now shows the restored content as the current version.
    again = json.loads(tfdeploy(repo, "state", "history", "--tag", TAG11, "--json").stdout)
    assert again["versions"][0]["current"] and again["versions"][0]["resources"] == 1
    assert again["versions"][0]["serial"] == now["serial"]


def test_restore_refuses_another_lineage_unless_forced(tmp_path, sandbox_env):
    # S3 lockfile mode: a state object written behind Terraform's back has no stale digest row.
    repo = make_repo(tmp_path / "infra", lock="s3")
    tag(repo, TAG10)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", TAG10, "--auto-approve")
    state = state_of(BUCKET, KEY)
    # Someone replaced the state with one of another lineage (e.g. a hand-made push -force).
    foreign = {**state, "lineage": "00000000-feed-beef-0000-000000000000", "serial": 1, "resources": []}
    s3().put_object(Bucket=BUCKET, Key=KEY, Body=json.dumps(foreign).encode())
    first = next(v["VersionId"] for v in _versions() if _body(v["VersionId"])["lineage"] == state["lineage"])

    refused = tfdeploy(repo, "state", "restore", "--tag", TAG10, "--version-id", first, "--yes", check=False)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    line = last_line(refused.stderr)
    assert line.startswith("tfdeploy: error: not restored: version ") and "lineage" in line and "--force" in line
    assert state_of(BUCKET, KEY) == foreign

    tfdeploy(repo, "state", "restore", "--tag", TAG10, "--version-id", first, "--yes", "--force")
    now = state_of(BUCKET, KEY)
    assert now["lineage"] == state["lineage"] and now["resources"] == state["resources"]
    assert len(_versions()) >= 3  # the original, the foreign one and the restored one


@pytest.mark.parametrize("args, code, message", [
    (["--limit", "0"], 2, "--limit"),
    ([], 1, "tfdeploy bootstrap --env dev"),  # no state bucket yet
])
def test_history_input_errors_are_one_line(repo, args, code, message):
    tag(repo, TAG10)
    proc = tfdeploy(repo, "state", "history", "--tag", TAG10, *args, check=False)
    assert proc.returncode == code and "Traceback" not in proc.stderr
    assert last_line(proc.stderr).startswith("tfdeploy: error: ") and message in last_line(proc.stderr)


def test_restore_document_and_history_lines_pure():
    from datetime import UTC, datetime

    from tfdeploy.engine.errored import summarize_state
    from tfdeploy.engine.stateversions import StateVersion, changes, describe, restore_document
    from tfdeploy.errors import TfdeployError

    old = {"lineage": "L1", "serial": 3, "resources": []}
    assert restore_document(old, {"lineage": "L1", "serial": 7}, force=False) == ({**old, "serial": 8}, False)
    assert restore_document(old, None, force=False) == (old, False)  # nothing to follow
    with pytest.raises(TfdeployError, match="another state.*--force"):
        restore_document(old, {"lineage": "L2", "serial": 7}, force=False)
    assert restore_document(old, {"lineage": "L2", "serial": 7}, force=True) == ({**old, "serial": 8}, True)

    current = summarize_state({"lineage": "L1", "serial": 7, "resources": [
        {"module": "module.regional", "mode": "managed", "type": "terraform_data", "name": "extra",
         "instances": [{}]}]})
    assert changes(current, summarize_state(old)) == ([], ["module.regional.terraform_data.extra"])

    when = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert describe(StateVersion("v9", when, 0, True, True)) == (
        "v9  2026-01-02 03:04:05Z  delete marker (the state object was deleted)  current")
    line = describe(StateVersion("v1", when, 1674, False, False, summarize_state(old)))
    assert line == "v1  2026-01-02 03:04:05Z      1674 B  serial 3, lineage L1, 0 resource(s)"
