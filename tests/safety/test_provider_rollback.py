"""Rolling a cell back to a version without AWS resources destroys what the newer one created,
through the cell's own provider (assume_role into the team account). Real AWS provider from the
machine's filesystem mirror, real Terraform, moto."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy

MIRROR = Path(os.environ.get("TFDEPLOY_TEST_PROVIDER_MIRROR", "/opt/tf-plugins"))
HAS_AWS = (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir()
pytestmark = [pytest.mark.safety, pytest.mark.skipif(
    not HAS_AWS, reason=f"no local mirror of hashicorp/aws at {MIRROR} (the registry is unreachable "
                        "here); set TFDEPLOY_TEST_PROVIDER_MIRROR to one")]

ACCOUNT = "111111111111"
V1, V2 = "dev_us-east-1/research/1.0", "dev_us-east-1/research/1.1"
PARAM = "/tfdeploy-test/research/marker"
AWS_PROVIDER = 'provider["registry.terraform.io/hashicorp/aws"]'


def ssm_in_team_account():
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/InfraBuildRole", RoleSessionName="test")["Credentials"]
    return boto3.client("ssm", region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"])


def parameters() -> list[str]:
    return [p["Name"] for p in ssm_in_team_account().describe_parameters()["Parameters"]]


def state() -> dict:
    return json.loads(boto3.client("s3", region_name="us-east-1").get_object(
        Bucket="demo-tfstate-dev", Key="research/dev-us-east-1/terraform.tfstate")["Body"].read())


def test_rollback_to_a_version_without_aws_resources_destroys_them(repo, monkeypatch):
    monkeypatch.setenv("TFDEPLOY_PROVIDER_MIRROR", str(MIRROR))
    regional = repo / "modules" / "regional" / "main.tf"
    plain = regional.read_text()
    regional.write_text(plain + f"""
resource "aws_ssm_parameter" "marker" {{
  name  = "{PARAM}"
  type  = "String"
  value = var.version_label
}}
""")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "1.0: an AWS resource")
    tag(repo, V1)
    regional.write_text(plain)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "1.1: back to no AWS resources")
    tag(repo, V2)
    tfdeploy(repo, "bootstrap", "--env", "dev")

    tfdeploy(repo, "apply", "--tag", V1, "--auto-approve")
    assert parameters() == [PARAM]  # made through the cell's assume_role, in the team account

    planned = json.loads(tfdeploy(repo, "plan", "--tag", V2, "--json").stdout)
    assert planned["summary"]["destroy"] == 1, planned["summary"]
    tfdeploy(repo, "apply", "--tag", V2)
    assert parameters() == []
    assert [r for r in state()["resources"] if r["provider"].endswith(AWS_PROVIDER)] == []
