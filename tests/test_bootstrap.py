"""`tfdeploy bootstrap`: names and policy logic (pure), then the real thing against moto, checked
with boto3 describes of every setting. Every address is 127.0.0.1; nothing talks to AWS.

Two ways of reaching moto are used on purpose:
- sandbox mode (the `aws_sandbox` fixture sets TFDEPLOY_SANDBOX_ENDPOINT): what a developer gets;
  the TLS-only bucket policy is skipped there (moto ignores its condition and would deny all
  object access);
- AWS mode (`aws_mode`: no sandbox, only the standard AWS_ENDPOINT_URL* variables point at moto):
  the code path used against real AWS, policy included.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import boto3
import click
import pytest
from botocore.stub import Stubber
from click.testing import CliRunner
from tfdeploy.aws.bootstrap import (
    CREATED,
    SKIPPED,
    UNCHANGED,
    UPDATED,
    BackendTarget,
    _bucket_region,
    _create_bucket,
    backend_target,
    bootstrap_backend,
    client_error_message,
    denies_insecure_transport,
    encryption_satisfied,
    merged_policy,
    permission_for,
    tls_only_statement,
)
from tfdeploy.cli.aws import bootstrap, sandbox
from tfdeploy.cli.common import TfdeployGroup
from tfdeploy.errors import TfdeployError, ValidationError
from tfdeploy.model.backend import backend_for
from tfdeploy.model.settings import merge_settings
from tfdeploy.model.tags import parse_tag


@click.group(cls=TfdeployGroup)
def cli() -> None:
    """Stand-in for the real `tfdeploy` group until cli.py registers these commands."""


cli.add_command(sandbox)
cli.add_command(bootstrap)


def settings(**values):
    return merge_settings({"backend_prefix": "acme", **values}, {}, {})


def actions(report) -> dict[tuple[str, str], str]:
    return {(c.resource, c.setting): c.action for c in report.changes}


def aws(service: str, endpoint: str, region: str = "us-east-1", **credentials):
    credentials = credentials or {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client(service, endpoint_url=endpoint, region_name=region, **credentials)


@pytest.fixture
def aws_mode(aws_sandbox, monkeypatch, tmp_path):
    """moto reached the way real AWS is: no sandbox configured, standard endpoint variables only."""
    monkeypatch.delenv("TFDEPLOY_SANDBOX_ENDPOINT")
    monkeypatch.setenv("TFDEPLOY_HOME", str(tmp_path / "no-sandbox"))
    return aws_sandbox


@pytest.fixture
def sandbox_mode(aws_sandbox, monkeypatch, tmp_path):
    monkeypatch.setenv("TFDEPLOY_HOME", str(tmp_path / "home"))
    return aws_sandbox


# ---- pure: names, policy, encryption, messages ------------------------------------------------


def test_names_match_what_deployments_use() -> None:
    central = settings(lock="dynamodb")
    target = backend_target(central, "dev", None)
    assert target == BackendTarget(env="dev", bucket="acme-dev", table="acme-lock-dev", region="us-east-1",
                                   kms_key_id=None)
    deployed = backend_for(parse_tag("dev_eu-west-1/research/1.0"), central, "eu-west-1")
    assert (deployed.bucket, deployed.dynamodb_table, deployed.region) == (target.bucket, target.table, target.region)

    regional = settings(lock="dynamodb", state_layout="regional")
    target = backend_target(regional, "qa", "eu-central-1", kms_key_id="alias/state")
    assert (target.bucket, target.table, target.region, target.kms_key_id) == (
        "acme-euc1-qa", "acme-euc1-lock-qa", "eu-central-1", "alias/state")
    deployed = backend_for(parse_tag("qa_eu-central-1/risk/2.1"), regional, "eu-central-1")
    assert (deployed.bucket, deployed.dynamodb_table) == (target.bucket, target.table)

    assert backend_target(settings(lock="s3"), "dev", None).table is None
    assert backend_target(settings(kms_key_id="k-1"), "dev", None).kms_key_id == "k-1"
    assert backend_target(settings(kms_key_id="k-1"), "dev", None, kms_key_id="k-2").kms_key_id == "k-2"


@pytest.mark.parametrize("env, region, values, message", [
    ("sandbox", None, {}, "env 'sandbox' is not one of the configured environments (dev, qa, staging, prod)"),
    ("dev", None, {"state_layout": "regional"}, "--region is required: state_layout is regional"),
    ("dev", "eu-west-1", {}, "--region eu-west-1 does not apply: state_layout is central"),
    ("dev", "mars-north-1", {"state_layout": "regional"}, "--region 'mars-north-1' is not a known AWS Region"),
])
def test_target_errors_are_one_clear_line(env, region, values, message) -> None:
    with pytest.raises(ValidationError) as error:
        backend_target(settings(**values), env, region)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_tls_policy_detection_and_merge() -> None:
    ours = tls_only_statement("b", "aws-us-gov")
    assert ours["Resource"] == ["arn:aws-us-gov:s3:::b", "arn:aws-us-gov:s3:::b/*"]
    assert ours["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert denies_insecure_transport({"Statement": [ours]}, "b", "aws-us-gov")
    assert not denies_insecure_transport(None, "b")
    # The same rule under another Sid, as many accounts already have it, counts.
    theirs = {"Sid": "AllowSSLRequestsOnly", "Effect": "Deny", "Principal": {"AWS": "*"}, "Action": ["s3:*"],
              "Resource": ["arn:aws:s3:::b/*", "arn:aws:s3:::b"], "Condition": {"Bool": {"aws:SecureTransport": False}}}
    assert denies_insecure_transport({"Statement": theirs}, "b")
    # Objects only, or an extra condition, or Allow: not the rule.
    assert not denies_insecure_transport({"Statement": [{**theirs, "Resource": "arn:aws:s3:::b/*"}]}, "b")
    assert not denies_insecure_transport({"Statement": [{**theirs, "Condition": {
        **theirs["Condition"], "IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}, "b")
    assert not denies_insecure_transport({"Statement": [{**theirs, "Effect": "Allow"}]}, "b")

    other = {"Sid": "ReadOnly", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"},
             "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    stale = {**tls_only_statement("b"), "Action": "s3:GetObject"}
    merged = merged_policy({"Version": "2012-10-17", "Id": "p1", "Statement": [other, stale]}, "b")
    assert merged == {"Version": "2012-10-17", "Id": "p1", "Statement": [other, tls_only_statement("b")]}
    assert merged_policy(None, "b") == {"Version": "2012-10-17", "Statement": [tls_only_statement("b")]}


def test_encryption_rules() -> None:
    def rule(algorithm, key=None):
        default = {"SSEAlgorithm": algorithm, **({"KMSMasterKeyID": key} if key else {})}
        return {"ApplyServerSideEncryptionByDefault": default}

    assert not encryption_satisfied([], None)
    assert encryption_satisfied([rule("AES256")], None)
    assert encryption_satisfied([rule("aws:kms", "k")], None)  # stronger than asked: kept
    assert not encryption_satisfied([rule("AES256")], "k")
    assert not encryption_satisfied([rule("aws:kms", "other")], "k")
    assert encryption_satisfied([rule("aws:kms", "k")], "k")


def test_error_messages_name_the_call_and_the_permission() -> None:
    target = BackendTarget("dev", "acme-dev", "acme-lock-dev", "us-east-1", None)
    assert permission_for("PutPublicAccessBlock") == "s3:PutBucketPublicAccessBlock"
    assert permission_for("HeadBucket") == "s3:ListBucket"
    assert permission_for("UpdateContinuousBackups") == "dynamodb:UpdateContinuousBackups"
    assert client_error_message("PutBucketEncryption", "AccessDenied", "Access Denied", 403, target) == (
        "access denied calling PutBucketEncryption on bucket acme-dev: the credentials need "
        "s3:PutEncryptionConfiguration (region us-east-1)")
    assert client_error_message("CreateTable", "AccessDeniedException", "no", 400, target).startswith(
        "access denied calling CreateTable on table acme-lock-dev: the credentials need dynamodb:CreateTable")
    assert "AWS rejected the credentials (ExpiredToken) calling GetCallerIdentity" in client_error_message(
        "GetCallerIdentity", "ExpiredToken", "expired", 400, target)
    assert client_error_message("PutBucketPolicy", "MalformedPolicy", "bad\n policy", 400, target) == (
        "PutBucketPolicy on bucket acme-dev failed: MalformedPolicy: bad policy")


def test_bucket_owned_by_another_account_is_refused() -> None:
    """moto lets any account use any bucket, so AWS's answers are replayed with botocore's Stubber
    (a real client; only the HTTP responses are canned)."""
    target = BackendTarget("dev", "acme-dev", None, "us-east-1", None)
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(s3) as stub:
        stub.add_client_error("head_bucket", "403", "Forbidden", 403,
                              expected_params={"Bucket": "acme-dev", "ExpectedBucketOwner": "123456789012"})
        with pytest.raises(TfdeployError, match="state bucket acme-dev exists but account 123456789012 cannot "
                                                "use it: it is owned by another account"):
            _bucket_region(s3, target, "123456789012")
        stub.add_client_error("create_bucket", "BucketAlreadyExists", "taken", 409)
        with pytest.raises(TfdeployError, match="state bucket name acme-dev is taken by another AWS account"):
            _create_bucket(s3, target)


# ---- against moto -----------------------------------------------------------------------------


def assert_bucket_secure(endpoint: str, bucket: str, region: str, kms_key: str | None = None) -> None:
    s3 = aws("s3", endpoint, region)
    assert (s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] or "us-east-1") == region
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    default = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0][
        "ApplyServerSideEncryptionByDefault"]
    assert default == ({"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key} if kms_key
                       else {"SSEAlgorithm": "AES256"})
    assert s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


def assert_policy_denies_plain_http(endpoint: str, bucket: str, region: str) -> None:
    policy = json.loads(aws("s3", endpoint, region).get_bucket_policy(Bucket=bucket)["Policy"])
    [statement] = [s for s in policy["Statement"] if s.get("Sid") == "DenyInsecureTransport"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*" and statement["Action"] == "s3:*"
    assert statement["Resource"] == [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def assert_lock_table(endpoint: str, table: str, region: str) -> None:
    dynamodb = aws("dynamodb", endpoint, region)
    description = dynamodb.describe_table(TableName=table)["Table"]
    assert description["KeySchema"] == [{"AttributeName": "LockID", "KeyType": "HASH"}]
    assert description["AttributeDefinitions"] == [{"AttributeName": "LockID", "AttributeType": "S"}]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert description["SSEDescription"]["Status"] == "ENABLED"
    assert description["SSEDescription"]["SSEType"] == "KMS"
    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_central_dynamodb_in_the_sandbox_then_nothing_to_change(sandbox_mode, monkeypatch) -> None:
    import os

    first = bootstrap_backend(settings(lock="dynamodb"), "dev", None, environ=os.environ)
    assert (first.bucket, first.table, first.region, first.endpoint) == (
        "acme-dev", "acme-lock-dev", "us-east-1", sandbox_mode)
    assert actions(first) == {
        ("bucket", "bucket"): CREATED, ("bucket", "versioning"): CREATED, ("bucket", "encryption"): CREATED,
        ("bucket", "public_access_block"): CREATED, ("bucket", "tls_only_policy"): SKIPPED,
        ("table", "table"): CREATED, ("table", "billing_mode"): CREATED, ("table", "sse"): CREATED,
        ("table", "point_in_time_recovery"): CREATED,
    }
    assert first.changed
    assert_bucket_secure(sandbox_mode, "acme-dev", "us-east-1")
    assert_lock_table(sandbox_mode, "acme-lock-dev", "us-east-1")

    second = bootstrap_backend(settings(lock="dynamodb"), "dev", None, environ=os.environ)
    assert not second.changed
    assert set(actions(second).values()) == {UNCHANGED, SKIPPED}
    assert second.to_dict()["changed"] is False


def test_aws_mode_adds_the_tls_policy_and_kms_encryption(aws_mode) -> None:
    import os

    report = bootstrap_backend(settings(lock="s3"), "prod", None, environ=os.environ, kms_key_id="alias/tfstate")
    assert report.endpoint is None and report.account == "123456789012" and report.table is None
    assert actions(report)[("bucket", "tls_only_policy")] == CREATED
    assert not [c for c in report.changes if c.resource == "table"]
    assert_bucket_secure(aws_mode, "acme-prod", "us-east-1", kms_key="alias/tfstate")
    assert_policy_denies_plain_http(aws_mode, "acme-prod", "us-east-1")
    assert aws("dynamodb", aws_mode).list_tables()["TableNames"] == []

    again = bootstrap_backend(settings(lock="s3"), "prod", None, environ=os.environ, kms_key_id="alias/tfstate")
    assert set(actions(again).values()) == {UNCHANGED}
    # Switching to a KMS key later updates only the encryption.
    rekeyed = bootstrap_backend(settings(lock="s3"), "prod", None, environ=os.environ, kms_key_id="alias/other")
    assert {k: v for k, v in actions(rekeyed).items() if v != UNCHANGED} == {("bucket", "encryption"): UPDATED}
    assert_bucket_secure(aws_mode, "acme-prod", "us-east-1", kms_key="alias/other")


@pytest.mark.parametrize("lock", ["dynamodb", "s3"])
def test_regional_layout_creates_in_the_given_region(sandbox_mode, lock) -> None:
    import os

    report = bootstrap_backend(settings(lock=lock, state_layout="regional"), "qa", "eu-west-1", environ=os.environ)
    assert (report.bucket, report.region) == ("acme-euw1-qa", "eu-west-1")
    assert_bucket_secure(sandbox_mode, "acme-euw1-qa", "eu-west-1")
    tables = aws("dynamodb", sandbox_mode, "eu-west-1").list_tables()["TableNames"]
    if lock == "dynamodb":
        assert tables == ["acme-euw1-lock-qa"] and report.table == "acme-euw1-lock-qa"
        assert_lock_table(sandbox_mode, "acme-euw1-lock-qa", "eu-west-1")
    else:
        assert tables == [] and report.table is None
    assert not bootstrap_backend(settings(lock=lock, state_layout="regional"), "qa", "eu-west-1",
                                 environ=os.environ).changed


def test_partly_configured_backend_is_fixed_and_reported_as_updated(aws_mode) -> None:
    import os

    s3, dynamodb = aws("s3", aws_mode), aws("dynamodb", aws_mode)
    s3.create_bucket(Bucket="acme-dev")
    s3.put_bucket_versioning(Bucket="acme-dev", VersioningConfiguration={"Status": "Suspended"})
    s3.put_public_access_block(Bucket="acme-dev", PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False})
    keep = {"Sid": "AuditRead", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
            "Action": "s3:GetBucketLocation", "Resource": "arn:aws:s3:::acme-dev"}
    s3.put_bucket_policy(Bucket="acme-dev", Policy=json.dumps({"Version": "2012-10-17", "Statement": [keep]}))
    dynamodb.create_table(TableName="acme-lock-dev", KeySchema=[{"AttributeName": "LockID", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "LockID", "AttributeType": "S"}],
                          ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
                          SSESpecification={"Enabled": True})

    report = bootstrap_backend(settings(lock="dynamodb"), "dev", None, environ=os.environ)
    assert actions(report) == {
        ("bucket", "bucket"): UNCHANGED, ("bucket", "versioning"): UPDATED, ("bucket", "encryption"): UPDATED,
        ("bucket", "public_access_block"): UPDATED, ("bucket", "tls_only_policy"): UPDATED,
        ("table", "table"): UNCHANGED, ("table", "billing_mode"): UPDATED, ("table", "sse"): UNCHANGED,
        ("table", "point_in_time_recovery"): UPDATED,
    }
    details = {c.setting: c.detail for c in report.changes}
    assert details["versioning"] == "Enabled (was Suspended)"
    assert details["public_access_block"] == "all four flags on (was off: BlockPublicPolicy, RestrictPublicBuckets)"
    assert details["billing_mode"] == "PAY_PER_REQUEST (was PROVISIONED)"
    assert_bucket_secure(aws_mode, "acme-dev", "us-east-1")
    assert_policy_denies_plain_http(aws_mode, "acme-dev", "us-east-1")
    assert keep in json.loads(s3.get_bucket_policy(Bucket="acme-dev")["Policy"])["Statement"]
    assert_lock_table(aws_mode, "acme-lock-dev", "us-east-1")
    assert not bootstrap_backend(settings(lock="dynamodb"), "dev", None, environ=os.environ).changed


def test_bucket_in_another_region_is_an_error(sandbox_mode) -> None:
    import os

    aws("s3", sandbox_mode, "eu-west-1").create_bucket(
        Bucket="acme-dev", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    with pytest.raises(TfdeployError) as error:
        bootstrap_backend(settings(), "dev", None, environ=os.environ)
    assert str(error.value).startswith("state bucket acme-dev already exists in eu-west-1, not in us-east-1")


def test_table_with_the_wrong_key_is_an_error(sandbox_mode) -> None:
    import os

    aws("dynamodb", sandbox_mode).create_table(
        TableName="acme-lock-dev", KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    with pytest.raises(TfdeployError, match=r"lock table acme-lock-dev exists with key schema id HASH \(S\), "
                                            "but Terraform needs a single string hash key LockID"):
        bootstrap_backend(settings(lock="dynamodb"), "dev", None, environ=os.environ)


@pytest.fixture
def limited_user(aws_sandbox, monkeypatch):
    """An IAM user denied two calls bootstrap makes, with moto enforcing IAM for the test's duration."""
    iam = aws("iam", aws_sandbox)
    iam.create_user(UserName="limited")
    iam.put_user_policy(UserName="limited", PolicyName="most", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "*"},
            {"Effect": "Deny", "Action": ["s3:PutBucketPolicy", "dynamodb:UpdateContinuousBackups"],
             "Resource": "*"}]}))
    key = iam.create_access_key(UserName="limited")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])

    def enforce(count: str) -> None:
        request = urllib.request.Request(f"{aws_sandbox}/moto-api/reset-auth", data=count.encode(), method="POST",
                                         headers={"Content-Type": "text/plain"})
        urllib.request.urlopen(request, timeout=10).read()

    enforce("0")
    try:
        yield aws_sandbox
    finally:
        enforce("inf")


def test_access_denied_names_the_call_and_permission(limited_user, monkeypatch, tmp_path) -> None:
    import os

    monkeypatch.setenv("TFDEPLOY_HOME", str(tmp_path))
    with pytest.raises(TfdeployError) as error:  # sandbox mode: the table's PITR is denied
        bootstrap_backend(settings(lock="dynamodb"), "dev", None, environ=os.environ)
    assert str(error.value) == ("access denied calling UpdateContinuousBackups on table acme-lock-dev: the "
                                "credentials need dynamodb:UpdateContinuousBackups (region us-east-1)")
    monkeypatch.delenv("TFDEPLOY_SANDBOX_ENDPOINT")  # AWS mode: the bucket policy is denied
    with pytest.raises(TfdeployError) as error:
        bootstrap_backend(settings(lock="s3"), "qa", None, environ=os.environ)
    assert str(error.value) == ("access denied calling PutBucketPolicy on bucket acme-qa: the credentials need "
                                "s3:PutBucketPolicy (region us-east-1)")


def test_no_credentials_points_at_the_sandbox(aws_mode, monkeypatch, tmp_path) -> None:
    import os

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask an instance metadata service
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    with pytest.raises(TfdeployError) as error:
        bootstrap_backend(settings(), "dev", None, environ=os.environ)
    assert str(error.value) == ('no AWS credentials found: run eval "$(tfdeploy sandbox env)" for the local '
                                "sandbox, or configure AWS credentials (AWS_PROFILE, aws sso login, or "
                                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")


def test_unreachable_sandbox_says_so(aws_sandbox, monkeypatch) -> None:
    import os
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("TFDEPLOY_SANDBOX_ENDPOINT", dead)
    with pytest.raises(TfdeployError, match=rf"the sandbox at {dead} .* is not running: run `tfdeploy sandbox up`"):
        bootstrap_backend(settings(), "dev", None, environ=os.environ)


# ---- through the command line -----------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "infra"
    (root / ".git").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.tfdeploy]\nbackend_prefix = "acme"\nlock = "dynamodb"\n')
    return root


def test_cli_bootstrap_text_json_and_errors(sandbox_mode, repo: Path) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["bootstrap", "--env", "dev", "--repo", str(repo)])
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0] == (f"state backend for env dev: bucket acme-dev, lock table acme-lock-dev, in us-east-1 "
                        f"(local sandbox {sandbox_mode})")
    assert [line.split() for line in lines[1:3]] == [["bucket", "created", "in", "us-east-1"],
                                                     ["bucket", "versioning", "created", "Enabled"]]
    assert lines[-1] == "done: 8 created, 1 skipped"

    second = runner.invoke(cli, ["bootstrap", "--env", "dev", "--repo", str(repo), "--json"])
    assert second.exit_code == 0
    data = json.loads(second.output)
    assert (data["bucket"], data["table"], data["changed"]) == ("acme-dev", "acme-lock-dev", False)
    assert {c["action"] for c in data["changes"]} == {"unchanged", "skipped"}
    assert runner.invoke(cli, ["bootstrap", "--env", "dev", "--repo", str(repo)]).output.endswith(
        "nothing to change\n")

    for args, code, message in (
        (["--env", "nope"], 2, "tfdeploy: error: env 'nope' is not one of the configured environments"),
        (["--env", "dev", "--set", "state_layout=regional"], 2, "tfdeploy: error: --region is required"),
        (["--env", "qa", "--set", "state_layout=regional", "--region", "eu-west-1"], 0, None),
    ):
        result = runner.invoke(cli, ["bootstrap", "--repo", str(repo), *args])
        assert result.exit_code == code, result.output
        if message:
            assert result.output.startswith(message) and result.output.count("\n") == 1

    aws("s3", sandbox_mode, "eu-west-1").create_bucket(
        Bucket="acme-staging", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    wrong = runner.invoke(cli, ["bootstrap", "--env", "staging", "--repo", str(repo)])
    assert wrong.exit_code == 1
    assert wrong.output.startswith("tfdeploy: error: state bucket acme-staging already exists in eu-west-1")
