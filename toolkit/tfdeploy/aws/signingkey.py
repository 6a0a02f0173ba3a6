"""The sandbox's ledger signing key: an asymmetric KMS key (ECC_NIST_P256, SIGN_VERIFY) under a
stable alias, so a repo can commit `ledger_signing_key = "alias/tfdeploy-ledger"` and sign and
verify its ledger records offline (moto's KMS signs and verifies ECC keys).

On AWS the key comes from modules/pipeline (its `ledger_signing_key_arn` output); this module only
ever talks to the local sandbox.
"""

from __future__ import annotations

from typing import Mapping

SANDBOX_ALIAS = "alias/tfdeploy-ledger"
KEY_SPEC = "ECC_NIST_P256"
SANDBOX_REGION = "us-east-1"  # the example repo's state_region: an alias is looked up there


def ensure_signing_key(endpoint: str, environ: Mapping[str, str] | None = None,
                       region: str = SANDBOX_REGION, alias: str = SANDBOX_ALIAS) -> str:
    """The ARN of the sandbox key behind `alias`, created (key and alias) when missing. Idempotent."""
    from botocore.exceptions import ClientError

    from .clients import client

    kms = client("kms", region, dict(environ or {}), endpoint)
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NotFoundException":
            raise
    made = kms.create_key(KeySpec=KEY_SPEC, KeyUsage="SIGN_VERIFY",
                          Description="tfdeploy sandbox: signs ledger records (ledger_signing_key)")["KeyMetadata"]
    kms.create_alias(AliasName=alias, TargetKeyId=made["KeyId"])
    return str(made["Arn"])
