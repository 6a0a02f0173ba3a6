"""Item 7 (export half): the exported tree never carries Terraform's local state or workspace
selection (`.terraform/`, `*.tfstate`, `*.tfstate.*`, `terraform.tfstate.d/`), from the tagged
commit or the working tree. Real git, real Terraform, moto.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from tfdeploy.engine.gitsource import export_commit, export_worktree

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy
from tests.statecheck import state_keys

pytestmark = pytest.mark.safety

TAG = "dev_us-east-1/research/1.0"
KEY = "research/dev-us-east-1/terraform.tfstate"
LOCAL_STATE = {
    ".terraform/environment": "evil",
    "terraform.tfstate": '{"version": 4, "serial": 99, "lineage": "planted", "resources": []}\n',
    "errored.tfstate": '{"version": 4, "serial": 98, "lineage": "planted", "resources": []}\n',
    "terraform.tfstate.backup": "{}\n",
    "terraform.tfstate.d/evil/terraform.tfstate": "{}\n",
    "modules/regional/.terraform/environment": "evil",
}


def _plant(repo: Path, files: dict[str, str] = LOCAL_STATE) -> None:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-f", *files)
    git(repo, "commit", "-qm", "local terraform state committed by mistake")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink()}


def test_workspace_file_in_the_tagged_tree_does_not_move_the_state(tmp_path, sandbox_env):
    repo = make_repo(tmp_path / "infra", lock="dynamodb")
    # What was seen: this one file made apply write to env:/evil/<key> while reporting <key>.
    planted = {".terraform/environment": "evil"}
    _plant(repo, planted)
    tag(repo, TAG)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    # The workspace exists (e.g. an earlier run with TF_WORKSPACE=evil left an empty state there).
    s3 = boto3.client("s3", region_name="us-east-1")
    empty = {"version": 4, "terraform_version": "1.15.5", "serial": 1, "lineage": "evil",
             "outputs": {}, "resources": [], "check_results": None}
    s3.put_object(Bucket="demo-tfstate-dev", Key=f"env:/evil/{KEY}", Body=json.dumps(empty).encode())
    applied = tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve")

    evil = json.loads(s3.get_object(Bucket="demo-tfstate-dev", Key=f"env:/evil/{KEY}")["Body"].read())
    assert evil["resources"] == [] and evil["serial"] == 1  # untouched
    assert state_keys("demo-tfstate-dev") == [f"env:/evil/{KEY}", KEY]
    state = json.loads(s3.get_object(Bucket="demo-tfstate-dev", Key=KEY)["Body"].read())
    assert state["resources"]
    assert applied.stderr.count("ignored from the tagged tree:") == 1
    assert ".terraform/environment" in applied.stderr

    workdir = repo / ".tfdeploy" / "work" / "dev-us-east-1-research"
    assert not (workdir / "terraform.tfstate").exists()
    assert not (workdir / ".terraform" / "environment").exists()


def test_commit_export_leaves_local_state_out(tmp_path, capfd):
    repo = make_repo(tmp_path / "infra", lock="dynamodb")
    _plant(repo)
    dest = tmp_path / "out"
    dest.mkdir()
    ignored = export_commit(repo, git(repo, "rev-parse", "HEAD").strip(), dest)
    assert sorted(ignored) == sorted(LOCAL_STATE)
    assert not _files(dest) & set(LOCAL_STATE)
    assert "main.tf" in _files(dest) and ".terraform.lock.hcl" not in LOCAL_STATE
    assert capfd.readouterr().err.count("ignored from the tagged tree:") == 1


def test_worktree_export_leaves_local_state_out(tmp_path, capfd):
    repo = make_repo(tmp_path / "infra", lock="dynamodb")
    _plant(repo)
    dest = tmp_path / "out"
    dest.mkdir()
    export_worktree(repo, dest)
    assert not _files(dest) & set(LOCAL_STATE)
    assert "envs/dev/research/variables.tfvars" in _files(dest)
    assert "ignored from the working tree:" in capfd.readouterr().err


def test_links_inside_the_tree_are_exported_as_links(tmp_path):
    repo = make_repo(tmp_path / "infra", lock="dynamodb")
    (repo / "docs").mkdir()
    (repo / "docs" / "main-link.tf.txt").symlink_to("../main.tf")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "in-tree link")
    for export in (lambda d: export_commit(repo, git(repo, "rev-parse", "HEAD").strip(), d),
                   lambda d: export_worktree(repo, d)):
        dest = tmp_path / f"out{id(export)}"
        dest.mkdir()
        export(dest)
        link = dest / "docs" / "main-link.tf.txt"
        assert link.is_symlink() and link.read_text() == (repo / "main.tf").read_text()
