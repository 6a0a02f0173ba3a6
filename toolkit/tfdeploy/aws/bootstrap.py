"""Create the Terraform state backend of an env, idempotently: the state bucket and (in dynamodb
lock mode) the lock table that `backend.backend_for` names.

Every setting is read first and written only when it differs, so a second run changes nothing.
The desired state (names, policy document, encryption rule) is computed by pure functions; only
`bootstrap_backend` and the `_ensure_*` steps call AWS.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import TfdeployError, ValidationError
from ..model.backend import bucket_name, lock_table_name, state_region
from ..model.regions import is_allowed, partition_of
from ..model.settings import Settings

CREATED, UPDATED, UNCHANGED, SKIPPED = "created", "updated", "unchanged", "skipped"
POLICY_SID = "DenyInsecureTransport"
PUBLIC_ACCESS_BLOCK = {
    "BlockPublicAcls": True,
    "IgnorePublicAcls": True,
    "BlockPublicPolicy": True,
    "RestrictPublicBuckets": True,
}
LOCK_KEY = "LockID"  # the hash key Terraform's S3 backend writes lock items under
SANDBOX_POLICY_NOTE = ("not applied in the local sandbox: moto ignores the aws:SecureTransport "
                       "condition and would deny every state read and write")
CREDENTIALS_HINT = ('run eval "$(tfdeploy sandbox env)" for the local sandbox, or configure AWS '
                    "credentials (AWS_PROFILE, aws sso login, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")

# IAM permission behind each API call, where it is not simply `<service>:<Operation>`.
_PERMISSIONS = {
    "HeadBucket": "s3:ListBucket",
    "GetBucketEncryption": "s3:GetEncryptionConfiguration",
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "GetPublicAccessBlock": "s3:GetBucketPublicAccessBlock",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
}
_S3_OPERATIONS = {"HeadBucket", "CreateBucket", "GetBucketLocation", "GetBucketVersioning",
                  "PutBucketVersioning", "GetBucketEncryption", "PutBucketEncryption",
                  "GetPublicAccessBlock", "PutPublicAccessBlock", "GetBucketPolicy", "PutBucketPolicy"}
_BAD_CREDENTIALS = {"InvalidAccessKeyId", "InvalidClientTokenId", "SignatureDoesNotMatch",
                    "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException",
                    "InvalidToken", "AuthFailure"}
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AllAccessDisabled", "403"}


@dataclass(frozen=True)
class BackendTarget:
    """What bootstrap must create for one env (pure: from settings and options)."""

    env: str
    bucket: str
    table: str | None  # None in S3-lockfile mode
    region: str
    kms_key_id: str | None

    @property
    def partition(self) -> str:
        return partition_of(self.region)


@dataclass(frozen=True)
class Change:
    resource: str  # bucket | table
    name: str
    setting: str
    action: str  # created | updated | unchanged | skipped
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"resource": self.resource, "name": self.name, "setting": self.setting,
                "action": self.action, "detail": self.detail}


@dataclass(frozen=True)
class BootstrapReport:
    env: str
    bucket: str
    table: str | None
    region: str
    account: str
    endpoint: str | None  # the sandbox endpoint, None for AWS
    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return any(c.action in (CREATED, UPDATED) for c in self.changes)

    def to_dict(self) -> dict[str, object]:
        return {
            "env": self.env,
            "bucket": self.bucket,
            "table": self.table,
            "region": self.region,
            "account": self.account,
            "endpoint": self.endpoint,
            "changed": self.changed,
            "changes": [c.to_dict() for c in self.changes],
        }


# ---- pure: names and desired state ------------------------------------------------------------


def backend_target(settings: Settings, env: str, region: str | None,
                   kms_key_id: str | None = None) -> BackendTarget:
    """Bucket, table and Region for an env, named exactly as deployments will look them up."""
    if env not in settings.environments:
        raise ValidationError(f"env {env!r} is not one of the configured environments "
                              f"({', '.join(settings.environments)}); add it to environments in "
                              "[tool.tfdeploy] or pick one of those")
    if settings.state_layout == "regional":
        if not region:
            raise ValidationError("--region is required: state_layout is regional, so each Region "
                                  "has its own state bucket (e.g. --region us-east-1)")
    elif region and region != settings.state_region:
        raise ValidationError(f"--region {region} does not apply: state_layout is central, so the "
                              f"state bucket lives in state_region {settings.state_region}; drop "
                              "--region or change state_region")
    region = region or settings.state_region
    if not is_allowed(region, settings.extra_regions):
        raise ValidationError(f"--region {region!r} is not a known AWS Region; use a code like "
                              "us-east-1, or add it to extra_regions in [tool.tfdeploy]")
    # The same functions deployments use, so names cannot drift.
    return BackendTarget(env=env, bucket=bucket_name(settings, env, region),
                         table=lock_table_name(settings, env, region),
                         region=state_region(settings, region), kms_key_id=kms_key_id or settings.kms_key_id)


def tls_only_statement(bucket: str, partition: str = "aws") -> dict[str, Any]:
    """The bucket-policy statement that denies any request not made over TLS."""
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Sid": POLICY_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [arn, f"{arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def denies_insecure_transport(policy: Mapping[str, Any] | None, bucket: str, partition: str = "aws") -> bool:
    """True when some statement already denies all non-TLS access to the bucket and its objects
    (whatever its Sid: many accounts add one under their own name)."""
    if not policy:
        return False
    arn = f"arn:{partition}:s3:::{bucket}"
    for statement in _as_list(policy.get("Statement", [])):
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        if statement.get("Principal") not in ("*", {"AWS": "*"}):
            continue
        if not {"s3:*", "*"} & set(_as_list(statement.get("Action", []))):
            continue
        if not {arn, f"{arn}/*"} <= set(_as_list(statement.get("Resource", []))):
            continue
        condition = statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
        if str(condition).lower() == "false" and len(statement.get("Condition", {})) == 1:
            return True
    return False


def merged_policy(current: Mapping[str, Any] | None, bucket: str, partition: str = "aws") -> dict[str, Any]:
    """`current` plus the TLS-only statement; other statements are kept, ours replaced by Sid."""
    statements = [s for s in _as_list((current or {}).get("Statement", []))
                  if not (isinstance(s, dict) and s.get("Sid") == POLICY_SID)]
    policy = {"Version": "2012-10-17", **{k: v for k, v in (current or {}).items() if k != "Statement"}}
    policy["Statement"] = [*statements, tls_only_statement(bucket, partition)]
    return policy


def encryption_rule(kms_key_id: str | None) -> dict[str, Any]:
    """Default encryption: SSE-KMS with the configured key (bucket key on, to cut KMS calls), else SSE-S3."""
    if kms_key_id:
        return {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": kms_key_id},
                "BucketKeyEnabled": True}
    return {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}


def encryption_satisfied(rules: list[Mapping[str, Any]], kms_key_id: str | None) -> bool:
    """Without a configured key any default encryption will do (an existing KMS setup is kept);
    with one, it must be SSE-KMS with that key."""
    defaults = [r.get("ApplyServerSideEncryptionByDefault", {}) for r in rules]
    if not kms_key_id:
        return any(d.get("SSEAlgorithm") for d in defaults)
    return any(d.get("SSEAlgorithm") == "aws:kms" and d.get("KMSMasterKeyID") == kms_key_id for d in defaults)


def describe_encryption(rules: list[Mapping[str, Any]]) -> str:
    if not rules:
        return "none"
    default = rules[0].get("ApplyServerSideEncryptionByDefault", {})
    key = default.get("KMSMasterKeyID")
    return f"{default.get('SSEAlgorithm', '?')}" + (f" ({key})" if key else "")


def permission_for(operation: str) -> str:
    if operation in _PERMISSIONS:
        return _PERMISSIONS[operation]
    service = "s3" if operation in _S3_OPERATIONS else "sts" if operation == "GetCallerIdentity" else "dynamodb"
    return f"{service}:{operation}"


def client_error_message(operation: str, code: str, message: str, status: int | None,
                         target: BackendTarget) -> str:
    """One line for an AWS error that stops bootstrap: what failed and what to do."""
    resource = (f"bucket {target.bucket}" if operation in _S3_OPERATIONS
                else "the caller identity" if operation == "GetCallerIdentity" else f"table {target.table}")
    if code in _BAD_CREDENTIALS:
        return f"AWS rejected the credentials ({code}) calling {operation}: refresh them, or {CREDENTIALS_HINT}"
    if code in _DENIED or status == 403:
        return (f"access denied calling {operation} on {resource}: the credentials need "
                f"{permission_for(operation)} (region {target.region})")
    detail = " ".join(message.split())[:200]
    return f"{operation} on {resource} failed: {code}: {detail}"


# ---- AWS steps --------------------------------------------------------------------------------


def _error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: Any) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _bucket_region(s3: Any, target: BackendTarget, account: str) -> str | None:
    """The Region the bucket is in, or None when it does not exist."""
    from botocore.exceptions import ClientError

    try:
        head = s3.head_bucket(Bucket=target.bucket, ExpectedBucketOwner=account)
    except ClientError as exc:
        if _status(exc) == 404 or _error_code(exc) in ("404", "NoSuchBucket"):
            return None
        if _status(exc) == 403:
            raise TfdeployError(
                f"state bucket {target.bucket} exists but account {account} cannot use it: it is owned by "
                "another account, or these credentials lack s3:ListBucket on it; choose another "
                "backend_prefix, or use credentials of the owning account") from None
        raise
    region = head.get("BucketRegion") or head["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
    if not region:
        location = s3.get_bucket_location(Bucket=target.bucket, ExpectedBucketOwner=account)
        region = location.get("LocationConstraint") or "us-east-1"
    return "eu-west-1" if region == "EU" else region  # legacy alias GetBucketLocation may return


def _create_bucket(s3: Any, target: BackendTarget) -> None:
    from botocore.exceptions import ClientError

    kwargs: dict[str, Any] = {"Bucket": target.bucket}
    if target.region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": target.region}
    try:
        s3.create_bucket(**kwargs)
    except ClientError as exc:
        if _error_code(exc) == "BucketAlreadyExists":
            raise TfdeployError(f"state bucket name {target.bucket} is taken by another AWS account "
                                "(bucket names are global); choose another backend_prefix") from None
        raise
    s3.get_waiter("bucket_exists").wait(Bucket=target.bucket, WaiterConfig={"Delay": 1, "MaxAttempts": 30})


def _get_or_none(call: Any, missing_code: str, **kwargs: Any) -> Any:
    """The result of a Get* call, or None when AWS says the setting was never configured."""
    from botocore.exceptions import ClientError

    try:
        return call(**kwargs)
    except ClientError as exc:
        if _error_code(exc) == missing_code:
            return None
        raise


def _ensure_bucket(s3: Any, target: BackendTarget, account: str, sandbox: bool) -> list[Change]:
    bucket, owner = target.bucket, {"Bucket": target.bucket, "ExpectedBucketOwner": account}
    region = _bucket_region(s3, target, account)
    if region is not None and region != target.region:
        raise TfdeployError(f"state bucket {bucket} already exists in {region}, not in {target.region} "
                            "where the backend config expects it; set state_region (central layout) or "
                            "--region (regional layout) to match, or choose another backend_prefix")
    created = region is None
    if created:
        _create_bucket(s3, target)
    changes = [Change("bucket", bucket, "bucket", CREATED if created else UNCHANGED, f"in {target.region}")]

    def needs_write(setting: str, current_ok: bool, detail: str, was: str) -> bool:
        """Record the setting's action; True when it must be written. A new bucket gets every setting."""
        if created:
            changes.append(Change("bucket", bucket, setting, CREATED, detail))
            return True
        changes.append(Change("bucket", bucket, setting, UNCHANGED if current_ok else UPDATED,
                              detail if current_ok else f"{detail} (was {was})"))
        return not current_ok

    versioning = {} if created else s3.get_bucket_versioning(**owner)
    status = versioning.get("Status", "")
    if needs_write("versioning", status == "Enabled", "Enabled", status or "never enabled"):
        s3.put_bucket_versioning(VersioningConfiguration={"Status": "Enabled"}, **owner)

    found = None if created else _get_or_none(
        s3.get_bucket_encryption, "ServerSideEncryptionConfigurationNotFoundError", **owner)
    rules = found["ServerSideEncryptionConfiguration"]["Rules"] if found else []
    wanted = encryption_rule(target.kms_key_id)
    ok = encryption_satisfied(rules, target.kms_key_id)
    if needs_write("encryption", ok, describe_encryption(rules if ok else [wanted]), describe_encryption(rules)):
        s3.put_bucket_encryption(ServerSideEncryptionConfiguration={"Rules": [wanted]}, **owner)

    found = None if created else _get_or_none(
        s3.get_public_access_block, "NoSuchPublicAccessBlockConfiguration", **owner)
    block = found["PublicAccessBlockConfiguration"] if found else {}
    off = sorted(name for name, value in PUBLIC_ACCESS_BLOCK.items() if block.get(name) is not value)
    if needs_write("public_access_block", not off, "all four flags on", f"off: {', '.join(off)}"):
        s3.put_public_access_block(PublicAccessBlockConfiguration=dict(PUBLIC_ACCESS_BLOCK), **owner)

    if sandbox:
        changes.append(Change("bucket", bucket, "tls_only_policy", SKIPPED, SANDBOX_POLICY_NOTE))
        return changes
    found = None if created else _get_or_none(s3.get_bucket_policy, "NoSuchBucketPolicy", **owner)
    current = json.loads(found["Policy"]) if found else None
    present = denies_insecure_transport(current, bucket, target.partition)
    was = "a policy without it, now added" if current else "no bucket policy"
    if needs_write("tls_only_policy", present, "denies s3:* without TLS (aws:SecureTransport)", was):
        s3.put_bucket_policy(Policy=json.dumps(merged_policy(current, bucket, target.partition)), **owner)
    return changes


def _wait_active(dynamodb: Any, table: str) -> None:
    dynamodb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 2, "MaxAttempts": 60})


def _enable_pitr(dynamodb: Any, table: str) -> None:
    from botocore.exceptions import ClientError

    # AWS refuses PITR for a few seconds after a table becomes ACTIVE.
    for attempt in range(10):
        try:
            dynamodb.update_continuous_backups(
                TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
            return
        except ClientError as exc:
            if _error_code(exc) != "ContinuousBackupsUnavailableException" or attempt == 9:
                raise
            time.sleep(3)


def _ensure_table(dynamodb: Any, target: BackendTarget) -> list[Change]:
    from botocore.exceptions import ClientError

    table = target.table
    assert table is not None
    changes: list[Change] = []
    sse = {"Enabled": True, "SSEType": "KMS"}  # the AWS managed key: lock items hold no secrets
    try:
        description = dynamodb.describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if _error_code(exc) != "ResourceNotFoundException":
            raise
        description = None
    if description is None:
        dynamodb.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": LOCK_KEY, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": LOCK_KEY, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            SSESpecification=sse,
        )
        _wait_active(dynamodb, table)
        _enable_pitr(dynamodb, table)
        return [Change("table", table, setting, CREATED, detail) for setting, detail in (
            ("table", f"hash key {LOCK_KEY} (string) in {target.region}"),
            ("billing_mode", "PAY_PER_REQUEST"),
            ("sse", "enabled (KMS, AWS managed key)"),
            ("point_in_time_recovery", "enabled"),
        )]

    types = {a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", [])}
    keys = [(k["AttributeName"], k["KeyType"]) for k in description.get("KeySchema", [])]
    if keys != [(LOCK_KEY, "HASH")] or types.get(LOCK_KEY) != "S":
        shown = ", ".join(f"{name} {kind} ({types.get(name, '?')})" for name, kind in keys)
        raise TfdeployError(f"lock table {table} exists with key schema {shown}, but Terraform needs a single "
                            f"string hash key {LOCK_KEY}; delete the table or choose another backend_prefix")
    changes.append(Change("table", table, "table", UNCHANGED, f"hash key {LOCK_KEY} (string)"))
    if description["TableStatus"] != "ACTIVE":
        _wait_active(dynamodb, table)

    billing = description.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED")
    if billing != "PAY_PER_REQUEST":
        dynamodb.update_table(TableName=table, BillingMode="PAY_PER_REQUEST")
        _wait_active(dynamodb, table)
        changes.append(Change("table", table, "billing_mode", UPDATED, f"PAY_PER_REQUEST (was {billing})"))
    else:
        changes.append(Change("table", table, "billing_mode", UNCHANGED, billing))

    sse_status = description.get("SSEDescription", {}).get("Status", "DISABLED")
    if sse_status not in ("ENABLED", "UPDATING"):
        dynamodb.update_table(TableName=table, SSESpecification=sse)
        _wait_active(dynamodb, table)
        changes.append(Change("table", table, "sse", UPDATED, "enabled (KMS, AWS managed key) "
                                                              "(was the AWS owned key)"))
    else:
        key = description.get("SSEDescription", {}).get("KMSMasterKeyArn", "")
        changes.append(Change("table", table, "sse", UNCHANGED, "enabled" + (f" ({key})" if key else "")))

    backups = dynamodb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
    pitr = backups.get("PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus", "DISABLED")
    if pitr != "ENABLED":
        _enable_pitr(dynamodb, table)
        changes.append(Change("table", table, "point_in_time_recovery", UPDATED, f"enabled (was {pitr.lower()})"))
    else:
        changes.append(Change("table", table, "point_in_time_recovery", UNCHANGED, "enabled"))
    return changes


def bootstrap_backend(settings: Settings, env: str, region: str | None, *, environ: Mapping[str, str],
                      kms_key_id: str | None = None) -> BootstrapReport:
    """Create or fix the env's state bucket and lock table; report every setting's action.

    Uses the local sandbox when `sandbox.active_endpoint(environ)` names one, else AWS.
    """
    from .clients import client
    from .sandbox import active_endpoint

    target = backend_target(settings, env, region, kms_key_id)
    endpoint = active_endpoint(environ)

    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
        ProfileNotFound,
        WaiterError,
    )

    try:
        account = client("sts", target.region, environ, endpoint).get_caller_identity()["Account"]
        changes = _ensure_bucket(client("s3", target.region, environ, endpoint), target, account,
                                 sandbox=endpoint is not None)
        if target.table:
            changes += _ensure_table(client("dynamodb", target.region, environ, endpoint), target)
    except ClientError as exc:
        raise TfdeployError(client_error_message(exc.operation_name, _error_code(exc),
                                                 str(exc.response.get("Error", {}).get("Message", "")),
                                                 _status(exc), target)) from None
    except (NoCredentialsError, PartialCredentialsError):
        raise TfdeployError(f"no AWS credentials found: {CREDENTIALS_HINT}") from None
    except ProfileNotFound as exc:
        raise TfdeployError(f"{exc}: fix AWS_PROFILE, or {CREDENTIALS_HINT}") from None
    except EndpointConnectionError as exc:
        hint = ("is the sandbox running? see `tfdeploy sandbox status`" if endpoint
                else "check the network, proxy and AWS_ENDPOINT_URL* settings")
        raise TfdeployError(f"cannot reach {exc.kwargs.get('endpoint_url', 'AWS')}: {hint}") from None
    except WaiterError as exc:
        what = f"bucket {target.bucket}" if exc.kwargs.get("name") == "BucketExists" else f"table {target.table}"
        raise TfdeployError(f"gave up waiting for {what} to become ready ({exc.kwargs.get('reason')}); "
                            "run bootstrap again") from None
    except BotoCoreError as exc:
        raise TfdeployError(f"AWS call failed: {exc}") from None
    return BootstrapReport(env=env, bucket=target.bucket, table=target.table, region=target.region,
                           account=account, endpoint=endpoint, changes=tuple(changes))


def render_report(report: BootstrapReport) -> str:
    """Human-readable report: one line per setting, then the verdict."""
    where = f"local sandbox {report.endpoint}" if report.endpoint else f"AWS account {report.account}"
    lock = f"lock table {report.table}" if report.table else "S3 lockfile (no table)"
    lines = [f"state backend for env {report.env}: bucket {report.bucket}, {lock}, "
             f"in {report.region} ({where})"]
    labels = [c.resource if c.setting == c.resource else f"{c.resource} {c.setting}" for c in report.changes]
    width = max(len(label) for label in labels)
    for label, change in zip(labels, report.changes):
        lines.append(f"  {label.ljust(width)}  {change.action:<9}  {change.detail}")
    if report.changed:
        counts = [f"{sum(c.action == a for c in report.changes)} {a}" for a in (CREATED, UPDATED, UNCHANGED, SKIPPED)]
        lines.append("done: " + ", ".join(c for c in counts if not c.startswith("0 ")))
    else:
        lines.append("nothing to change")
    return "\n".join(lines)
