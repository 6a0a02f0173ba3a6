"""Nothing outside the tag steers Terraform: environment variables that move state, add CLI
arguments or override generated variables are refused before Terraform runs (real Terraform, moto)."""

from __future__ import annotations

import json

import boto3
import pytest

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy
from tests.statecheck import all_keys, state_keys

pytestmark = pytest.mark.safety

REGIONAL = "dev_us-east-1/research/1.0"
BUCKET = "demo-tfstate-dev"
KEY = "research/dev-us-east-1/terraform.tfstate"




def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("tfdeploy: error:")]


def assert_refused(proc, *names: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = error_lines(proc.stderr)
    assert len(lines) == 1, proc.stderr
    for name in names:
        assert name in lines[0]
    assert "Traceback" not in proc.stderr


def test_tf_workspace_is_refused_and_nothing_is_written(repo):
    tag(repo, REGIONAL)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    proc = tfdeploy(repo, "apply", "--tag", REGIONAL, "--auto-approve", check=False,
                    env={"TF_WORKSPACE": "evil"})
    assert_refused(proc, "TF_WORKSPACE")
    assert all_keys(BUCKET) == []


def test_tf_cli_args_cannot_widen_a_regional_plan(repo):
    tag(repo, REGIONAL)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    proc = tfdeploy(repo, "apply", "--tag", REGIONAL, "--auto-approve", check=False,
                    env={"TF_CLI_ARGS_plan": "-target=module.global"})
    assert_refused(proc, "TF_CLI_ARGS_plan")
    assert all_keys(BUCKET) == []


@pytest.mark.parametrize("name, value", [("TF_CLI_ARGS", "-lock=false"), ("TF_DATA_DIR", "/tmp/elsewhere"),
                                         ("TF_VAR_account", "999999999999")])
def test_other_steering_variables_are_refused(repo, name, value):
    tag(repo, REGIONAL)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    proc = tfdeploy(repo, "plan", "--tag", REGIONAL, check=False, env={name: value})
    assert_refused(proc, name)


def test_harmless_variables_still_work(repo, tmp_path):
    tag(repo, REGIONAL)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", REGIONAL, "--auto-approve",
             env={"TF_LOG": "ERROR", "TF_LOG_PATH": str(tmp_path / "tf.log"), "TF_IN_AUTOMATION": "1",
                  "TF_VAR_greeting": "hi", "TF_WORKSPACE": ""})
    assert state_keys(BUCKET) == [KEY]


def test_a_workspace_selected_in_the_work_dir_is_never_used(repo):
    """`.terraform/environment` selects a workspace like TF_WORKSPACE does (here carried by the
    tagged tree); the cell always uses the default workspace, so state lands at the documented key."""
    (repo / ".terraform").mkdir()
    (repo / ".terraform" / "environment").write_text("evil")
    git(repo, "add", "-f", ".terraform/environment")
    git(repo, "commit", "-qm", "select a workspace")
    tag(repo, REGIONAL)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    # The workspace exists (someone ran with TF_WORKSPACE=evil once): Terraform would select it.
    evil = f"env:/evil/{KEY}"
    planted = json.dumps({"version": 4, "terraform_version": "1.15.5", "serial": 1,
                          "lineage": "00000000-0000-0000-0000-000000000000", "outputs": {}, "resources": []})
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=BUCKET, Key=evil, Body=planted.encode())
    proc = tfdeploy(repo, "apply", "--tag", REGIONAL, "--auto-approve", check=False)
    assert proc.returncode == 0, proc.stderr
    assert state_keys(BUCKET) == sorted([KEY, evil])
    assert json.loads(boto3.client("s3", region_name="us-east-1").get_object(
        Bucket=BUCKET, Key=evil)["Body"].read()) == json.loads(planted)
    state = json.loads(boto3.client("s3", region_name="us-east-1").get_object(Bucket=BUCKET, Key=KEY)["Body"].read())
    assert state["resources"]


# The policy itself: one pure function, table-driven.
@pytest.mark.parametrize("name, refused", [
    ("TF_WORKSPACE", True), ("TF_CLI_ARGS", True), ("TF_CLI_ARGS_plan", True), ("TF_CLI_ARGS_apply", True),
    ("TF_CLI_ARGS_init", True), ("TF_DATA_DIR", True), ("TF_REATTACH_PROVIDERS", True),
    ("TF_VAR_env", True), ("TF_VAR_region", True), ("TF_VAR_team", True), ("TF_VAR_account", True),
    ("TF_VAR_release_version", True),
    ("TF_VAR_greeting", False), ("TF_VAR_apply_delay_seconds", False), ("TF_VAR_Account", False),
    ("TF_LOG", False), ("TF_LOG_PATH", False), ("TF_LOG_PROVIDER", False), ("TF_PLUGIN_CACHE_DIR", False),
    ("TF_CLI_CONFIG_FILE", False), ("TF_IN_AUTOMATION", False), ("TF_INPUT", False),
    ("TF_TOKEN_app_terraform_io", False), ("TF_REGISTRY_CLIENT_TIMEOUT", False),
    ("TF_STATE_PERSIST_INTERVAL", False), ("AWS_PROFILE", False), ("PATH", False),
])
def test_policy_table(name, refused):
    from tfdeploy.engine.tfenv import refused_variables, why_refused

    assert (why_refused(name) is not None) == refused
    assert (name in refused_variables({name: "x"})) == refused
    assert refused_variables({name: ""}) == {}  # empty is unset for Terraform


def test_policy_error_names_every_variable_and_drops_empty_ones():
    from tfdeploy.engine.tfenv import controlled_environment
    from tfdeploy.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        controlled_environment({"TF_WORKSPACE": "evil", "TF_CLI_ARGS_plan": "-target=x", "TF_LOG": "1"})
    message = str(caught.value)
    assert "TF_CLI_ARGS_plan, TF_WORKSPACE" in message and "\n" not in message
    assert controlled_environment({"TF_WORKSPACE": "", "TF_LOG": "1"}) == {"TF_LOG": "1"}


def test_generated_variables_match_what_tfdeploy_generates():
    import tempfile
    from pathlib import Path

    from tfdeploy.adopt.example import write_example_repo
    from tfdeploy.engine.provider import deployment_tfvars
    from tfdeploy.engine.tfenv import GENERATED_VARIABLES
    from tfdeploy.model.deployment import resolve
    from tfdeploy.model.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        write_example_repo(Path(tmp))
        deployment = resolve(REGIONAL, load_settings(Path(tmp), {}, {}), Path(tmp))
    assert set(deployment_tfvars(deployment)) == set(GENERATED_VARIABLES)
