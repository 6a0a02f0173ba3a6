"""This repo's own Terraform, deployed through tfdeploy with the REAL AWS provider, against moto.

The registry is unreachable from these machines, but the machine image carries a filesystem mirror
of hashicorp/aws (/opt/tf-plugins). tfdeploy installs from it via TFDEPLOY_PROVIDER_MIRROR, so the
reference infrastructure is validated, planned and applied for real: generated provider with
assume_role into the team account (moto STS), default tags, the S3 backend and the lock table.
Without such a mirror these tests are skipped, saying why.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import boto3
import pytest

from tests.conftest import REPO_ROOT, git
from tests.e2e.conftest import tfdeploy

MIRROR = Path(os.environ.get("TFDEPLOY_TEST_PROVIDER_MIRROR", "/opt/tf-plugins"))
HAS_AWS = (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir()
NO_MIRROR = (f"no local mirror of hashicorp/aws at {MIRROR} (the registry is unreachable here); "
             "set TFDEPLOY_TEST_PROVIDER_MIRROR to one")
pytestmark = pytest.mark.skipif(not HAS_AWS, reason=NO_MIRROR)

REGIONAL = "dev_us-east-1/research/1.0"
ACCOUNT = "111111111111"  # envs/dev/research/variables.tfvars
GLOBAL = "dev_global/research/1.0"


def in_team_account(service: str):
    """A client acting in the team account, as Terraform did: moto keeps one state per account,
    and resources made through the assumed InfraBuildRole live in that account."""
    creds = boto3.client("sts", region_name="us-east-1").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/InfraBuildRole", RoleSessionName="test")["Credentials"]
    return boto3.client(service, region_name="us-east-1", aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"])


@pytest.fixture
def infra(tmp_path, sandbox_env, monkeypatch):
    """A clone of this repo at HEAD, tagged like a release, with the provider mirror configured."""
    clone = tmp_path / "infra"
    git(tmp_path, "clone", "-q", str(REPO_ROOT), str(clone))
    git(clone, "checkout", "-q", "-B", "main")
    for name in (REGIONAL, GLOBAL):
        git(clone, "tag", "-a", name, "-m", f"release {name}")
    monkeypatch.setenv("TFDEPLOY_PROVIDER_MIRROR", str(MIRROR))
    tfdeploy(clone, "bootstrap", "--env", "dev")
    return clone


def test_lint_validates_with_the_real_provider(infra):
    proc = tfdeploy(infra, "lint", "--tag", REGIONAL, "--allow-missing", "tflint", "--json")
    result = json.loads(proc.stdout)
    assert result["status"] == "passed", result
    assert result["exports"]["VALIDATE_STATUS"] == "passed"
    assert result["exports"]["FMT_UNFORMATTED"] == "0"


def test_regional_plan_and_global_apply(infra):
    planned = json.loads(tfdeploy(infra, "plan", "--tag", REGIONAL, "--json").stdout)
    addresses = [rc["address"] for rc in planned["plan"]["resource_changes"]]
    assert all(a.startswith("module.regional.") for a in addresses)
    types = {rc["type"] for rc in planned["plan"]["resource_changes"]}
    assert {"aws_vpc", "aws_subnet", "aws_lb", "aws_lb_listener", "aws_flow_log"} <= types
    assert planned["summary"]["change"] == 0 and planned["summary"]["destroy"] == 0

    tfdeploy(infra, "apply", "--tag", GLOBAL, "--auto-approve")
    state = json.loads(boto3.client("s3", region_name="us-east-1").get_object(
        Bucket="acme-tfstate-dev", Key="research/dev-global/terraform.tfstate")["Body"].read())
    assert {r["module"].split(".")[1] for r in state["resources"] if "module" in r} == {"global"}
    roles = [r for r in state["resources"] if r["type"] == "aws_iam_role"]
    assert roles, "the global namespace creates the workload role"
    role_name = roles[0]["instances"][0]["attributes"]["name"]
    # The generated provider's default tags reached the real resource.
    tags = in_team_account("iam").list_role_tags(RoleName=role_name)["Tags"]
    assert {"Key": "tfdeploy:scope", "Value": "global"} in tags
    assert {"Key": "tfdeploy:managed-by", "Value": "tfdeploy"} in tags
    assert not [t for t in tags if t["Key"] in ("tfdeploy:version", "tfdeploy:tag")]  # stable across releases


def test_regional_apply_creates_the_network_and_load_balancer(infra):
    tfdeploy(infra, "apply", "--tag", REGIONAL, "--auto-approve")
    state = json.loads(boto3.client("s3", region_name="us-east-1").get_object(
        Bucket="acme-tfstate-dev", Key="research/dev-us-east-1/terraform.tfstate")["Body"].read())
    vpcs = [r for r in state["resources"] if r["type"] == "aws_vpc"]
    vpc_id = vpcs[0]["instances"][0]["attributes"]["id"]
    ec2 = in_team_account("ec2")
    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.20.0.0/16"  # from envs/dev/research/us-east-1.tfvars
    assert {"Key": "tfdeploy:scope", "Value": "us-east-1"} in vpc["Tags"]
    lbs = in_team_account("elbv2").describe_load_balancers()["LoadBalancers"]
    assert [lb["Type"] for lb in lbs if lb["VpcId"] == vpc_id] == ["application"]
    alb = next(r for r in state["resources"] if r["type"] == "aws_lb")["instances"][0]["attributes"]
    assert alb["internal"] is False and alb["drop_invalid_header_fields"] is True


def test_a_fleet_plan_says_what_its_terraform_is_reading_and_keeps_the_diff_in_the_log(infra, slow_answers):
    """With STS answering 1.5 s late (the data sources read through it), the CI lines of a fan-out
    plan name the step each cell's Terraform is on; the log keeps the attribute-level diff."""
    slow_answers(lambda environ: "/sts/aws4_request" in environ.get("HTTP_AUTHORIZATION", ""), 1.5)
    run = tfdeploy(infra, "plan", "--tag", REGIONAL, "--tag", GLOBAL, "--json",
                   env={"TFDEPLOY_HEARTBEAT_S": "0.5"})
    beats = [line for line in run.stderr.splitlines() if line.startswith("[fleet] still running: ")]
    # e.g. "dev-us-east-1-research 7s (module.context.data.aws_caller_identity.current: Read complete
    # after 2s [id=111111111111])": module.regional., which every resource of the cell shares, is left out.
    steps = re.compile(r"\[fleet\] still running: dev-(us-east-1|global)-research \d+s \((module\.\w+\.)*"
                       r"data\.aws_\w+\.\w+: (Reading\.\.\.|Read complete after \d+s)")
    assert any(steps.match(line) for line in beats), run.stderr
    assert not any("module.regional." in line or "module.global." in line for line in beats), beats
    cells = {c["cell"]: c for c in json.loads(run.stdout)["cells"]}
    assert {c["result"] for c in cells.values()} == {"planned"}
    log = Path(cells["dev-us-east-1-research"]["log"]).read_text()
    # Terraform's human diff, attribute by attribute, as a reviewer reads it (not -json's one-liners).
    assert '# module.regional.module.network.aws_eip.nat[0] will be created' in log
    assert '+ destination_cidr_block = "0.0.0.0/0"' in log
