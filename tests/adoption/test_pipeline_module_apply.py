"""modules/pipeline applied for real: the AWS provider from the image's mirror against moto.

What a user would check after `terraform apply`, read back with boto3: the pipeline (V2, QUEUED,
the TFDEPLOY_TAG variable, every build told the tag it must deploy), each CodeBuild project's inline
buildspec equal to the generated file, the EventBridge rule equal to `tfdeploy events pattern`, and
nothing but publish able to start the pipeline; buckets versioned and KMS-encrypted.

Two gaps in moto (5.x) are bridged here, in the test only, on the in-process moto server:
- CodeBuild CreateProject demands a source and artifacts `location` even for type CODEPIPELINE,
  where AWS documents that none is given (and ignores one): that one check is relaxed.
- CodePipeline GetPipeline returns `metadata.created/updated` as ISO strings where the AWS JSON
  protocol sends epoch numbers, so the AWS provider cannot decode its own read-back ("expected
  Timestamp to be a JSON Number"): moto is made to send numbers.
Nothing else is patched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import tfdeploy

MIRROR = Path(os.environ.get("TFDEPLOY_TEST_PROVIDER_MIRROR", "/opt/tf-plugins"))
HAS_AWS = (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir()
pytestmark = pytest.mark.skipif(not HAS_AWS, reason=(
    f"no local mirror of hashicorp/aws at {MIRROR} (the registry is unreachable here); "
    "set TFDEPLOY_TEST_PROVIDER_MIRROR to one"))

STAGES = ("source", "tflint", "checkov", "plan", "apply")
SERVICES = ("s3", "iam", "kms", "sts", "codebuild", "codepipeline", "events", "logs")


def _root(endpoint: str) -> str:
    endpoints = "".join(f'    {s} = "{endpoint}"\n' for s in SERVICES)
    return f"""\
provider "aws" {{
  region                      = "us-east-1"
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  s3_use_path_style           = true
  endpoints {{
{endpoints}  }}
}}

module "pipeline" {{
  source                   = "./modules/pipeline"
  env                      = "dev"
  repository_name          = "infra"
  tf_backend_config_prefix = "acme-tfstate"
  target_account_ids       = ["111111111111"]
  promotion_source_env     = "lab" # an env before dev: its ledger is read by the promotion check
  buildspecs = {{ for stage in {json.dumps(list(STAGES))} :
    stage => file("${{path.root}}/buildspecs/${{stage}}.yml")
  }}
}}

output "ledger_signing_key_arn" {{
  value = module.pipeline.ledger_signing_key_arn
}}
"""


@pytest.fixture
def moto_bridges(monkeypatch):
    from moto.codebuild import responses
    from moto.codepipeline.models import CodePipeline

    def metadata(self) -> dict:
        return {"pipelineArn": self._arn, "created": self._created.timestamp(),
                "updated": self._updated.timestamp()}

    # moto 5.2.6 and later build GetPipeline's metadata themselves (no `metadata` to bridge).
    if hasattr(CodePipeline, "metadata"):
        monkeypatch.setattr(CodePipeline, "metadata", property(metadata))

    def relax(original):
        def check(value):
            if value.get("type") != "CODEPIPELINE":
                original(value)
        return check

    monkeypatch.setattr(responses, "_validate_required_params_source",
                        relax(responses._validate_required_params_source))
    monkeypatch.setattr(responses, "_validate_required_params_artifacts",
                        relax(responses._validate_required_params_artifacts))


@pytest.fixture
def applied(tmp_path, aws_sandbox, terraform_bin, moto_bridges):
    root = tmp_path / "tooling"
    shutil.copytree(REPO_ROOT / "modules", root / "modules")
    shutil.copytree(REPO_ROOT / "buildspecs", root / "buildspecs")
    (root / "main.tf").write_text(_root(aws_sandbox))
    cli_config = tmp_path / "cli.tfrc"
    cli_config.write_text('provider_installation {\n  filesystem_mirror {\n'
                          f'    path    = "{MIRROR}"\n    include = ["registry.terraform.io/hashicorp/aws"]\n'
                          '  }\n}\n')
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(cli_config), "TF_IN_AUTOMATION": "1"}
    (root / ".terraform-bin").write_text(terraform_bin)  # for `terraform output` in the test
    for args in (["init", "-input=false", "-no-color"], ["apply", "-auto-approve", "-input=false", "-no-color"]):
        proc = subprocess.run([terraform_bin, *args], cwd=root, env=env, capture_output=True, text=True,
                              timeout=240)
        assert proc.returncode == 0, f"terraform {args[0]}:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return root


def terraform_bin_of(root: Path) -> str:
    return (root / ".terraform-bin").read_text()


def client(name: str):
    return boto3.client(name, region_name="us-east-1")


def test_pipeline_module_applies_and_reads_back(applied):
    # --- the pipeline: V2, QUEUED, the tag variable, every build told its tag --------------------
    pipeline = client("codepipeline").get_pipeline(name="tfdeploy-dev")["pipeline"]
    assert [s["name"] for s in pipeline["stages"]] == ["Source", "Lint", "SecurityScan", "Plan", "Apply"]
    assert pipeline["pipelineType"] == "V2" and pipeline["executionMode"] == "QUEUED"
    variables = {v["name"]: v for v in pipeline["variables"]}
    assert set(variables) == {"TF_BACKEND_CONFIG_PREFIX", "ENV", "TFDEPLOY_TAG"}
    assert "defaultValue" not in variables["TFDEPLOY_TAG"]
    (source,) = pipeline["stages"][0]["actions"]
    assert source["configuration"]["PollForSourceChanges"] == "false"
    assert source["configuration"]["S3ObjectKey"] == "source/dev/source.zip"
    builds = [a for s in pipeline["stages"] for a in s["actions"] if a["actionTypeId"]["provider"] == "CodeBuild"]
    assert [a["name"] for a in builds] == ["tflint", "checkov", "terraform-plan", "terraform-apply"]
    for action in builds:
        env = {v["name"]: v["value"] for v in json.loads(action["configuration"]["EnvironmentVariables"])}
        assert env["TFDEPLOY_EXPECTED_TAG"] == "#{variables.TFDEPLOY_TAG}", action["name"]
        if action["name"] in ("terraform-plan", "terraform-apply"):  # a release's stage build starts its batch
            assert env["TFDEPLOY_EXECUTION_ID"] == "#{codepipeline.PipelineExecutionId}"
            assert env["TFDEPLOY_SOURCE_VERSION"] == "#{SourceVariables.VersionId}"
    assert source.get("namespace") == "SourceVariables"

    # --- CodeBuild: each project's inline buildspec is the generated file ----------------------
    names = [f"tfdeploy-dev-{s}" for s in STAGES]
    projects = {p["name"]: p for p in client("codebuild").batch_get_projects(names=names)["projects"]}
    assert sorted(projects) == sorted(names)
    for stage in STAGES:
        expected = (REPO_ROOT / "buildspecs" / f"{stage}.yml").read_text()
        assert projects[f"tfdeploy-dev-{stage}"]["source"]["buildspec"] == expected, stage
    capture = projects["tfdeploy-dev-source"]
    assert capture["source"]["location"] == "https://git-codecommit.us-east-1.amazonaws.com/v1/repos/infra"
    capture_env = {v["name"]: v["value"] for v in capture["environment"]["environmentVariables"]}
    assert capture_env["TFDEPLOY_PIPELINE_NAME_PREFIX"] == "tfdeploy"  # publish starts tfdeploy-dev
    # A release's cell builds keep each cell's plan in the pipeline's artifact bucket.
    for stage in ("plan", "apply"):
        project_env = {v["name"]: v["value"] for v in projects[f"tfdeploy-dev-{stage}"]["environment"]["environmentVariables"]}
        assert project_env["TFDEPLOY_ARTIFACT_BUCKET"] == pipeline["artifactStore"]["location"]

    # --- EventBridge: the tag rule is tfdeploy's pattern; nothing targets the pipeline ----------
    events = client("events")
    rule = events.describe_rule(Name="tfdeploy-dev-tag-created")
    printed = json.loads(tfdeploy(REPO_ROOT, "events", "pattern", "--env", "dev").stdout)
    assert json.loads(rule["EventPattern"]) == printed
    (target,) = events.list_targets_by_rule(Rule="tfdeploy-dev-tag-created")["Targets"]
    assert target["Arn"] == capture["arn"]
    rules = [r["Name"] for r in events.list_rules()["Rules"]]
    assert rules == ["tfdeploy-dev-tag-created"]  # no S3 "Object Created" rule starts executions

    # --- buckets and key -----------------------------------------------------------------------
    s3 = client("s3")
    key_arn = client("kms").describe_key(KeyId="alias/tfdeploy-dev-pipeline")["KeyMetadata"]["Arn"]
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "acme-tfstate-source-dev" in buckets
    artifact = next(b for b in buckets if b.startswith("tfdeploy-dev-artifacts-"))
    for bucket in ("acme-tfstate-source-dev", artifact):
        assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
        (rule,) = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        default = rule["ApplyServerSideEncryptionByDefault"]
        assert default["SSEAlgorithm"] == "aws:kms" and default["KMSMasterKeyID"] == key_arn
        assert all(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"].values())
    assert client("kms").get_key_rotation_status(KeyId=key_arn)["KeyRotationEnabled"] is True

    # --- roles and logs --------------------------------------------------------------------------
    roles = {r["RoleName"] for r in client("iam").list_roles()["Roles"]}
    for kind in ("codebuild-source", "codebuild-scan", "codebuild-deploy", "codepipeline", "events"):
        assert f"tfdeploy-dev-{kind}-us-east-1" in roles, kind
    policy = client("iam").get_role_policy(RoleName="tfdeploy-dev-codebuild-source-us-east-1",
                                           PolicyName="codebuild-source")["PolicyDocument"]
    policy = json.loads(policy) if isinstance(policy, str) else policy
    starts = [s for s in policy["Statement"] if "codepipeline:StartPipelineExecution" in str(s["Action"])]
    assert [s["Resource"] for s in starts] == ["arn:aws:codepipeline:us-east-1:123456789012:tfdeploy-dev"]
    # The deploy role may read the previous env's ledger records, and nothing else of that bucket.
    from tfdeploy.fleet.ledger import LEDGER_PREFIX

    deploy = client("iam").get_role_policy(RoleName="tfdeploy-dev-codebuild-deploy-us-east-1",
                                           PolicyName="codebuild-deploy")["PolicyDocument"]
    deploy = json.loads(deploy) if isinstance(deploy, str) else deploy
    lab = [s for s in deploy["Statement"] if "acme-tfstate-lab" in json.dumps(s)]
    assert sorted((s["Sid"], str(s["Action"]), str(s["Resource"])) for s in lab) == [
        ("ListPreviousEnvLedger", "s3:ListBucket", "arn:aws:s3:::acme-tfstate-lab"),
        ("ReadPreviousEnvLedger", "s3:GetObject", f"arn:aws:s3:::acme-tfstate-lab/{LEDGER_PREFIX}*")]
    (listing,) = [s for s in lab if s["Sid"] == "ListPreviousEnvLedger"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": f"{LEDGER_PREFIX}*"}}
    assert "acme-tfstate-lab" not in json.dumps(policy)  # the source build does not get it
    # --- the ledger signing key: ECC SIGN_VERIFY, only the pipelines' deploy builds sign ----------
    kms = client("kms")
    ledger = kms.describe_key(KeyId="alias/tfdeploy-ledger")["KeyMetadata"]  # the sandbox's alias, too
    assert (ledger["KeySpec"], ledger["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    outputs = json.loads(subprocess.run([terraform_bin_of(applied), "output", "-json"], cwd=applied,
                                        capture_output=True, text=True, check=True).stdout)
    assert outputs["ledger_signing_key_arn"]["value"] == ledger["Arn"]
    key_policy = json.loads(kms.get_key_policy(KeyId=ledger["Arn"], PolicyName="default")["Policy"])
    (deny,) = [s for s in key_policy["Statement"] if s["Effect"] == "Deny"]
    assert (deny["Action"], deny["Principal"]) == ("kms:Sign", {"AWS": "*"})
    assert deny["Condition"] == {"ArnNotLike": {
        "aws:PrincipalArn": "arn:aws:iam::123456789012:role/tfdeploy-*-codebuild-deploy-*"}}
    (signs,) = [s for s in deploy["Statement"] if "kms:Sign" in str(s["Action"])]
    assert (signs["Sid"], signs["Resource"]) == ("SignLedgerRecords", ledger["Arn"])
    for kind in ("source", "scan"):
        other = client("iam").get_role_policy(RoleName=f"tfdeploy-dev-codebuild-{kind}-us-east-1",
                                              PolicyName=f"codebuild-{kind}")["PolicyDocument"]
        assert "kms:Sign" not in json.dumps(other) and ledger["Arn"] not in json.dumps(other), kind
    # What tfdeploy writes with it verifies with its public key.
    from dataclasses import replace

    from tfdeploy.fleet import signing
    from tfdeploy.fleet.ledger import record_for
    from tfdeploy.model.settings import Settings
    from tfdeploy.model.tags import parse_tag

    record = record_for(parse_tag("dev_us-east-1/research/1.0"), commit="c" * 40, action="apply",
                        result="succeeded", add=1, change=0, destroy=0, caller="", started_at="2026-11-20T09:00:00Z",
                        finished_at="2026-11-20T09:00:01Z", plan_sha256="", tfdeploy_version="0", build_id="")
    signed = signing.sign(record, outputs["ledger_signing_key_arn"]["value"], "us-east-1", dict(os.environ))
    trust = signing.trust_for([Settings(ledger_signing_key=ledger["Arn"])], dict(os.environ))
    assert trust.why(signed) == "" and trust.why(replace(signed, commit="d" * 40)).startswith("bad signature")

    # Batch builds of a release's cells: the batch role only runs the plan and apply projects'
    # builds; only the deploy role may start and watch those batches.
    projects_arn = "arn:aws:codebuild:us-east-1:123456789012:project/tfdeploy-dev-"
    assert "tfdeploy-dev-codebuild-batch-us-east-1" in roles
    trust = client("iam").get_role(RoleName="tfdeploy-dev-codebuild-batch-us-east-1")["Role"]["AssumeRolePolicyDocument"]
    assert "codebuild.amazonaws.com" in json.dumps(trust)
    batch = client("iam").get_role_policy(RoleName="tfdeploy-dev-codebuild-batch-us-east-1",
                                          PolicyName="codebuild-batch")["PolicyDocument"]
    batch = json.loads(batch) if isinstance(batch, str) else batch
    (run,) = batch["Statement"]
    assert sorted(run["Action"]) == ["codebuild:RetryBuild", "codebuild:StartBuild", "codebuild:StopBuild"]
    assert sorted(run["Resource"]) == [projects_arn + "apply", projects_arn + "plan"]
    (release,) = [s for s in deploy["Statement"] if s.get("Sid") == "RunReleaseBatches"]
    # The least the stage build needs (delivery/release_stage.py): start and watch its batch (and
    # its builds' phases), stop it when the stage build is stopped.
    assert sorted(release["Action"]) == ["codebuild:BatchGetBuildBatches", "codebuild:BatchGetBuilds",
                                         "codebuild:StartBuildBatch", "codebuild:StopBuildBatch"]
    assert sorted(release["Resource"]) == [projects_arn + "apply", projects_arn + "plan"]
    # Each cell build's source is the release's bundle, read with the project's (deploy) role.
    (bundle,) = [s for s in deploy["Statement"] if s.get("Sid") == "ReadReleaseSourceBundle"]
    assert sorted(bundle["Action"]) == ["s3:GetObject", "s3:GetObjectVersion"]
    assert bundle["Resource"].endswith("-source-dev/source/dev/source.zip")
    scan = client("iam").get_role_policy(RoleName="tfdeploy-dev-codebuild-scan-us-east-1",
                                         PolicyName="codebuild-scan")["PolicyDocument"]
    assert "StartBuildBatch" not in json.dumps(scan) + json.dumps(policy)
    groups = {g["logGroupName"]: g for g in client("logs").describe_log_groups(
        logGroupNamePrefix="/aws/codebuild/tfdeploy-dev")["logGroups"]}
    assert sorted(groups) == sorted(f"/aws/codebuild/tfdeploy-dev-{s}" for s in STAGES)
    assert {g.get("retentionInDays") for g in groups.values()} == {365}
