"""Item 12, one truth per tag: `resolve` shows what `plan` deploys (the tagged commit's settings and
envs/), the working tree only when asked (`--worktree`) or when the tag does not exist yet, both
announced; a repeated `--tag` is an error, not "the last one wins". Real git, real CLI, moto.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import make_repo, tag, tfdeploy

pytestmark = pytest.mark.safety

TAG = "dev_us-east-1/research/1.0"
TEAM_FILE = "envs/dev/research/variables.tfvars"
TAGGED_ACCOUNT = "111111111111"
WORKTREE_ACCOUNT = "333333333333"


@pytest.fixture
def drifted(tmp_path):
    """A tagged repo whose working tree has since moved the team to another account and bucket."""
    repo = make_repo(tmp_path / "infra", lock="dynamodb")
    tag(repo, TAG)
    team = repo / TEAM_FILE
    team.write_text(team.read_text().replace(TAGGED_ACCOUNT, WORKTREE_ACCOUNT))
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"demo-tfstate"', '"drifted-tfstate"'))
    return repo


def test_resolve_shows_what_plan_uses(drifted, sandbox_env):
    resolved = json.loads(tfdeploy(drifted, "resolve", "--tag", TAG, "--json").stdout)
    assert resolved["account"] == TAGGED_ACCOUNT
    assert resolved["backend"]["bucket"] == "demo-tfstate-dev"

    tfdeploy(drifted, "bootstrap", "--env", "dev", "--backend-prefix", "demo-tfstate")
    planned = json.loads(tfdeploy(drifted, "plan", "--tag", TAG, "--json").stdout)
    assert planned["deployment"]["account"] == resolved["account"]
    assert planned["deployment"]["backend"] == resolved["backend"]
    assert planned["deployment"]["role_arn"] == resolved["role_arn"]


def test_resolve_worktree_is_announced(drifted):
    proc = tfdeploy(drifted, "resolve", "--tag", TAG, "--json", "--worktree")
    assert json.loads(proc.stdout)["account"] == WORKTREE_ACCOUNT
    assert "working tree" in proc.stderr.lower() and proc.stderr.count("\n") == 1


def test_resolve_of_a_tag_not_made_yet_reads_the_working_tree_and_says_so(drifted):
    proc = tfdeploy(drifted, "resolve", "--tag", "dev_us-east-1/research/2.0", "--json")
    assert json.loads(proc.stdout)["account"] == WORKTREE_ACCOUNT
    assert proc.stderr.count("\n") == 1
    assert "does not exist" in proc.stderr and "working tree" in proc.stderr


def test_resolve_of_a_tag_does_not_read_a_broken_working_tree(drifted):
    (drifted / TEAM_FILE).write_text("account = \n")
    proc = tfdeploy(drifted, "resolve", "--tag", TAG, "--json")
    assert json.loads(proc.stdout)["account"] == TAGGED_ACCOUNT


# plan, apply, destroy (fan-out, tests/fleet) and publish (a release, tests/delivery) take many tags;
# the others exactly one.
@pytest.mark.parametrize("command", ["resolve", "init", "output", "show", "lint", "scan"])
def test_repeated_tag_is_an_error(drifted, command):
    proc = tfdeploy(drifted, command, "--tag", TAG, "--tag", "dev_global/research/1.0", check=False)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert proc.stderr.strip().splitlines() == [
        "tfdeploy: error: --tag given 2 times; this command takes one tag (plan, apply, destroy and "
        "publish take many)"]
