"""Releases without churn: a new tag of unchanged code plans `+0 ~0 -0`.

The generated provider's default tags used to carry the version and the tag, so every release
updated every taggable resource in place. Now they carry stable keys only (the `default_tags`
setting decides); the version lives in the deployment record and the outputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy

MIRROR = Path(os.environ.get("TFDEPLOY_TEST_PROVIDER_MIRROR", "/opt/tf-plugins"))
HAS_AWS = (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir()
NO_MIRROR = (f"no local mirror of hashicorp/aws at {MIRROR} (the registry is unreachable here); "
             "set TFDEPLOY_TEST_PROVIDER_MIRROR to one")

ACCOUNT = "111111111111"  # the example repo's research account
V1, V2 = "dev_us-east-1/research/1.0", "dev_us-east-1/research/1.1"

_VARIABLES = "".join(f'variable "{name}" {{\n  type = {kind}\n}}\n\n' for name, kind in (
    ("env", "string"), ("region", "string"), ("team", "string"), ("version_label", "string"),
    ("greeting", "string"), ("apply_delay_seconds", "number")))

# A taggable AWS resource: with the version in the default tags, every release changed it.
AWS_REGIONAL = _VARIABLES + """\
terraform {
  required_providers {
    aws = {
      source = "hashicorp/aws"
    }
  }
}

resource "aws_ssm_parameter" "cell" {
  name  = "/${var.team}/${var.env}/${var.region}/greeting"
  type  = "String"
  value = var.greeting
}

output "message" {
  value = aws_ssm_parameter.cell.name
}
"""

PLAIN_REGIONAL = _VARIABLES + """\
resource "terraform_data" "cell" {
  input = {
    name    = "${var.team}-${var.env}-${var.region}"
    message = var.greeting
  }
}

output "message" {
  value = terraform_data.cell.output.message
}
"""



def _stack(tmp_path: Path, regional: str) -> Path:
    repo = make_repo(tmp_path / "infra")
    (repo / "modules" / "regional" / "main.tf").write_text(regional)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "stack without the version in its resources")
    tag(repo, V1)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    return repo


def _release_then_retag(repo: Path) -> dict:
    """Apply 1.0, tag 1.1 on the same commit, and plan it: the plan's JSON."""
    tfdeploy(repo, "apply", "--tag", V1, "--auto-approve")
    tag(repo, V2)  # same commit, new version
    return json.loads(tfdeploy(repo, "plan", "--tag", V2, "--json").stdout)


def _resource_actions(plan: dict) -> list[tuple[str, list[str]]]:
    return [(rc["address"], rc["change"]["actions"]) for rc in plan["plan"]["resource_changes"]
            if rc["change"]["actions"] != ["no-op"]]


def test_new_tag_of_unchanged_code_plans_no_changes_provider_free(tmp_path, sandbox_env):
    repo = _stack(tmp_path, PLAIN_REGIONAL)
    plan = _release_then_retag(repo)
    assert plan["summary"] == {**plan["summary"], "add": 0, "change": 0, "destroy": 0}
    assert _resource_actions(plan) == []
    # The version lives in the deployment record (and release_version for the code), not on resources.
    assert plan["deployment"]["version"] == "1.1"
    assert plan["plan"]["variables"]["release_version"]["value"] == "1.1"


@pytest.mark.skipif(not HAS_AWS, reason=NO_MIRROR)
def test_new_tag_of_unchanged_code_plans_no_changes_with_the_aws_provider(tmp_path, sandbox_env, monkeypatch):
    monkeypatch.setenv("TFDEPLOY_PROVIDER_MIRROR", str(MIRROR))
    repo = _stack(tmp_path, AWS_REGIONAL)
    plan = _release_then_retag(repo)
    assert _resource_actions(plan) == [], "a release of unchanged code must not touch any resource"
    assert (plan["summary"]["add"], plan["summary"]["change"], plan["summary"]["destroy"]) == (0, 0, 0)

    # What the default tags put on the real resource: stable keys, no version, no tag.
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/InfraBuildRole", RoleSessionName="test")["Credentials"]
    ssm = boto3.client("ssm", region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                       aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])
    tags = {t["Key"]: t["Value"] for t in ssm.list_tags_for_resource(
        ResourceType="Parameter", ResourceId="/research/dev/us-east-1/greeting")["TagList"]}
    assert tags == {"tfdeploy:env": "dev", "tfdeploy:team": "research", "tfdeploy:scope": "us-east-1",
                    "tfdeploy:managed-by": "tfdeploy"}
