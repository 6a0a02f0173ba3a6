"""Item 9, strict input: every validated value is matched whole, tfvars are read strictly, and no
symlink can make tfdeploy read (or Terraform run) a file from outside the repo.

Real git repos with real annotated tags and the real CLI as a subprocess; the plan cases run the
real flow against moto (they stop before Terraform, at the export).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from tfdeploy.delivery.events import event_pattern
from tfdeploy.errors import ConfigError, TfdeployError, ValidationError
from tfdeploy.model.envs import team_config_from
from tfdeploy.model.settings import merge_settings
from tfdeploy.model.tags import parse_tag

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy

pytestmark = pytest.mark.safety

TAG = "dev_us-east-1/research/1.0"
TEAM_FILE = "envs/dev/research/variables.tfvars"

# A good value, then the same value with something around it that a `$`-anchored regex lets through
# (a trailing newline) or that a careless strip would hide.
AROUND = [("", "\n"), ("", "\r\n"), ("", "\r"), (" ", ""), ("", " "), ("\n", ""), ("", "\t"),
          ("", "\x00"), ("", "\n\n")]
SETTINGS = [
    ("backend_prefix", "acme-tfstate"),
    ("role_name", "InfraBuildRole"),
    ("session_name", "INFRA_BUILD"),
    ("default_branch", "main"),
    ("state_region", "us-east-1"),
    ("global_region", "eu-central-1"),
    ("state_layout", "central"),
    ("lock", "s3"),
]
LIST_SETTINGS = [
    ("environments", "dev"),
    ("extra_regions", "xx-test-1"),
    ("scan_soft_fail_envs", "dev"),
]


def _one_error_line(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("tfdeploy: error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


@pytest.mark.parametrize("name,good", SETTINGS)
def test_scalar_settings_are_matched_whole(name, good):
    merge_settings({name: good}, {}, {})  # the value itself is fine
    for before, after in AROUND:
        with pytest.raises(ConfigError):
            merge_settings({name: before + good + after}, {}, {})


@pytest.mark.parametrize("name,good", LIST_SETTINGS)
def test_list_settings_are_matched_whole(name, good):
    merge_settings({name: [good]}, {}, {})
    for before, after in AROUND:
        with pytest.raises(ConfigError):
            merge_settings({name: [before + good + after]}, {}, {})


def test_account_is_matched_whole():
    assert team_config_from({"account": "111111111111"}, "f")[0] == "111111111111"
    for before, after in AROUND:
        with pytest.raises(ConfigError):
            team_config_from({"account": before + "111111111111" + after}, "f")


@pytest.mark.parametrize("part", ["env", "region", "team", "version"])
def test_tag_parts_are_matched_whole(part):
    parts = {"env": "dev", "region": "us-east-1", "team": "research", "version": "1.0"}
    for before, after in AROUND:
        bad = dict(parts, **{part: before + parts[part] + after})
        with pytest.raises(ValidationError):
            parse_tag(f"{bad['env']}_{bad['region']}/{bad['team']}/{bad['version']}")


def test_event_pattern_env_is_matched_whole():
    event_pattern("dev")
    for before, after in AROUND:
        with pytest.raises(ValidationError):
            event_pattern(before + "dev" + after)


@pytest.fixture
def infra(tmp_path):
    return make_repo(tmp_path / "infra", lock="dynamodb")


def _commit_and_tag(repo: Path, name: str = TAG) -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "change")
    tag(repo, name)


def test_account_with_a_newline_in_tfvars_is_refused(infra):
    (infra / TEAM_FILE).write_text('account = "111111111111\\n"\n')
    _commit_and_tag(infra)
    proc = tfdeploy(infra, "resolve", "--tag", TAG, check=False)
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert TEAM_FILE in line and "12-digit" in line
    assert "arn:" not in proc.stdout


def test_role_name_with_a_newline_from_the_environment_is_refused(infra):
    tag(infra, TAG)
    proc = tfdeploy(infra, "resolve", "--tag", TAG, check=False,
                    env={"TFDEPLOY_ROLE_NAME": "InfraBuildRole\n"})
    assert proc.returncode == 2
    assert "role_name" in _one_error_line(proc)


def test_duplicate_key_in_tfvars_is_an_error_naming_file_and_key(infra):
    (infra / TEAM_FILE).write_text('account = "111111111111"\naccount = "222222222222"\n')
    _commit_and_tag(infra)
    proc = tfdeploy(infra, "resolve", "--tag", TAG, check=False)
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert TEAM_FILE in line and "'account'" in line and "line 2" in line
    assert "222222222222" not in proc.stdout


def test_duplicate_key_in_a_scope_tfvars_is_an_error(infra):
    scope_file = "envs/dev/research/us-east-1.tfvars"
    (infra / scope_file).write_text('greeting = "a"\ngreeting = "b"\n')
    _commit_and_tag(infra)
    proc = tfdeploy(infra, "resolve", "--tag", TAG, check=False)
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert scope_file in line and "'greeting'" in line


def test_oversized_tfvars_is_refused_before_parsing(infra):
    padding = "# padding padding padding padding padding padding padding padding padding\n"
    (infra / TEAM_FILE).write_text('account = "111111111111"\n' + padding * (8 * 1024 * 1024 // len(padding)))
    _commit_and_tag(infra)
    started = time.monotonic()
    proc = tfdeploy(infra, "resolve", "--tag", TAG, check=False)
    elapsed = time.monotonic() - started
    assert proc.returncode == 2
    line = _one_error_line(proc)
    assert TEAM_FILE in line and "1 MiB" in line
    assert elapsed < 15, f"took {elapsed:.1f}s: the file was read or parsed before the size check"


@pytest.fixture
def outside(tmp_path) -> Path:
    """A tfvars file outside the repo with an account nobody configured."""
    path = tmp_path / "outside.tfvars"
    path.write_text('account = "999999999999"\n')
    return path


def test_symlinked_team_file_is_refused_by_resolve(infra, outside):
    (infra / TEAM_FILE).unlink()
    (infra / TEAM_FILE).symlink_to(outside)
    _commit_and_tag(infra)
    for args in (["--tag", TAG], ["--tag", TAG, "--worktree"], ["--tag", "dev_us-east-1/research/9.9"]):
        proc = tfdeploy(infra, "resolve", *args, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        line = _one_error_line(proc)
        assert TEAM_FILE in line and "symlink" in line
        assert "999999999999" not in proc.stdout


def test_symlink_inside_envs_is_refused_even_when_it_stays_in_the_tree(infra):
    (infra / "envs/dev/research/us-east-1.tfvars").unlink()
    (infra / "envs/dev/research/us-east-1.tfvars").symlink_to("../risk/us-east-1.tfvars")
    _commit_and_tag(infra)
    proc = tfdeploy(infra, "resolve", "--tag", TAG, check=False)
    assert proc.returncode == 2
    assert "envs/dev/research/us-east-1.tfvars" in _one_error_line(proc)


def test_symlinked_team_file_is_refused_by_plan(infra, outside, sandbox_env):
    (infra / TEAM_FILE).unlink()
    (infra / TEAM_FILE).symlink_to(outside)
    _commit_and_tag(infra)
    proc = tfdeploy(infra, "plan", "--tag", TAG, check=False)
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc)
    assert TEAM_FILE in line and "symlink" in line


def test_symlink_leaving_the_tree_anywhere_is_refused_by_plan(infra, sandbox_env, tmp_path):
    secret = tmp_path / "secret.tf"
    secret.write_text('output "stolen" {\n  value = "from outside"\n}\n')
    (infra / "modules/regional/extra.tf").symlink_to(secret)
    (infra / "modules/up.tf").symlink_to("../../escape.tf")  # relative, still leaves the tree
    _commit_and_tag(infra)
    proc = tfdeploy(infra, "plan", "--tag", TAG, check=False)
    assert proc.returncode == 2, proc.stderr
    line = _one_error_line(proc)
    assert "modules/regional/extra.tf" in line or "modules/up.tf" in line
    assert "outside" in line


def test_symlinked_pyproject_leaving_the_repo_is_refused(infra, tmp_path):
    elsewhere = tmp_path / "elsewhere.toml"
    elsewhere.write_text((infra / "pyproject.toml").read_text().replace("demo-tfstate", "evil-tfstate"))
    (infra / "pyproject.toml").unlink()
    (infra / "pyproject.toml").symlink_to(elsewhere)
    _commit_and_tag(infra)
    for args in (["--tag", TAG], ["--tag", TAG, "--worktree"]):
        proc = tfdeploy(infra, "resolve", *args, check=False)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert "pyproject.toml" in _one_error_line(proc)
        assert "evil-tfstate" not in proc.stdout


def test_aws_detection_does_not_follow_a_symlink_out_of_the_tree(tmp_path):
    from tfdeploy.engine.provider import uses_aws_provider

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "aws.tf").write_text('resource "aws_s3_bucket" "b" {}\n')
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text('resource "terraform_data" "x" {}\n')
    (root / "linked.tf").symlink_to(outside / "aws.tf")
    with pytest.raises(TfdeployError) as caught:
        uses_aws_provider(root)
    assert "linked.tf" in str(caught.value)
