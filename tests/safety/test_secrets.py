"""Secrets stay secret: credentials and values Terraform marks sensitive never appear in what
tfdeploy prints or writes (real Terraform, moto, git tags, checkov)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tfdeploy.engine.redact import SENSITIVE, redact_outputs, redact_show

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy

pytestmark = pytest.mark.safety

TAG = "dev_us-east-1/research/1.0"
SECRETS = {
    "AWS_ACCESS_KEY_ID": "AKIAFAKEXYZ7SECRETID",
    "AWS_SECRET_ACCESS_KEY": "SECRETxyzFakeSecretAccessKey0123456789",
    "AWS_SESSION_TOKEN": "TOKENxyzFakeSessionToken0123456789",
    "TF_VAR_api_token": "APITOKENxyzFakeSensitiveValue42",
}


def _add_sensitive_value(repo: Path) -> None:
    """A sensitive root variable that flows into a resource and out through a sensitive output."""
    main = repo / "main.tf"
    text = main.read_text().replace(
        "  apply_delay_seconds = var.apply_delay_seconds\n}",
        "  apply_delay_seconds = var.apply_delay_seconds\n  api_token           = var.api_token\n}")
    main.write_text(text + """
variable "api_token" {
  type        = string
  description = "A credential the stack stores."
  sensitive   = true
  default     = ""
}

output "api_token" {
  description = "The stored credential."
  value       = module.regional.api_token
  sensitive   = true
}
""")
    regional = repo / "modules" / "regional" / "main.tf"
    regional.write_text(regional.read_text() + """
variable "api_token" {
  type      = string
  sensitive = true
}

resource "terraform_data" "vault" {
  input = {
    token = var.api_token
    label = "vault-of-${var.team}"
  }
}

output "api_token" {
  value     = terraform_data.vault.output.token
  sensitive = true
}
""")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "a sensitive value")


def _raw_plan_json(repo: Path, terraform_bin: str) -> dict:
    work = repo / ".tfdeploy" / "work" / "dev-us-east-1-research"
    plan = "tfdeploy.tfplan" if (work / "tfdeploy.tfplan").exists() else "tfdeploy.tfplan.spent"
    shown = subprocess.run([terraform_bin, "show", "-json", plan], cwd=work, capture_output=True,
                           text=True, check=True, env={**os.environ, **SECRETS})
    return json.loads(shown.stdout)


# Terraform's saved plan (`tfdeploy.tfplan`, `.spent` once applied) is the only file left out: it is
# Terraform's own binary plan, which by Terraform's design carries sensitive values in clear (`terraform
# show -json` of it prints them; see test_redaction_of_a_real_plan_document). tfdeploy never prints it
# or copies it anywhere; only Terraform reads it back, and it lives in the git-ignored work dir.
# Every other file is read, states included: tfdeploy keeps no local state in this flow, and
# `.terraform/terraform.tfstate` is the backend configuration tfdeploy passed to init.
SAVED_PLAN_NAMES = {"tfdeploy.tfplan", "tfdeploy.tfplan.spent"}
# Provider executables copied by Terraform (binaries; no run data), not written by tfdeploy.
PROVIDER_DIRS = {"providers", "plugin-cache"}


def _written_files(*roots: Path) -> list[Path]:
    """Every file tfdeploy (or Terraform under it) wrote, but the saved plan and provider binaries."""
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.name in SAVED_PLAN_NAMES or PROVIDER_DIRS & set(path.parts):
                continue
            found.append(path)
    return found


def _readable(data: bytes) -> bytes:
    """The bytes plus what a zip or gzip wrapper holds (a secret must not hide in a compressed body)."""
    import gzip
    import io
    import zipfile

    if data[:2] == b"\x1f\x8b":
        return data + gzip.decompress(data)
    if data[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return data + b"".join(archive.read(name) for name in archive.namelist())
    return data


def _state_key(key: str) -> bool:
    """A cell's state object itself (`<team>/<cell>/terraform.tfstate`): Terraform's, and by
    Terraform's design it holds sensitive values in clear. Everything beside it is read."""
    return key.endswith("/terraform.tfstate") or key == "terraform.tfstate"


def _aws_objects_written() -> dict[str, bytes]:
    """Every version of every S3 object in the sandbox but the state objects (ledger records, the
    lock-mode records, lock files, run reports, ...), and every DynamoDB item, by address."""
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    found: dict[str, bytes] = {}
    for bucket in (b["Name"] for b in s3.list_buckets()["Buckets"]):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            for version in page.get("Versions", []):
                if _state_key(version["Key"]):
                    continue
                body = s3.get_object(Bucket=bucket, Key=version["Key"], VersionId=version["VersionId"])["Body"]
                found[f"s3://{bucket}/{version['Key']}?versionId={version['VersionId']}"] = _readable(body.read())
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    for table in ddb.list_tables()["TableNames"]:
        for item in ddb.scan(TableName=table)["Items"]:
            found[f"dynamodb://{table}/{item.get('LockID', {}).get('S', '?')}"] = json.dumps(item).encode()
    return found


def test_redaction_of_a_real_plan_document(repo, terraform_bin):
    _add_sensitive_value(repo)
    tag(repo, TAG)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "plan", "--tag", TAG, env=SECRETS)
    raw = _raw_plan_json(repo, terraform_bin)
    token = SECRETS["TF_VAR_api_token"]
    assert token in json.dumps(raw)  # Terraform's JSON carries it in clear

    redacted = redact_show(raw)
    text = json.dumps(redacted)
    assert token not in text
    vault = next(rc for rc in redacted["resource_changes"] if rc["address"].endswith("terraform_data.vault"))
    assert vault["change"]["after"]["input"] == {"token": SENSITIVE, "label": "vault-of-research"}
    assert redacted["variables"]["api_token"]["value"] == SENSITIVE
    assert redacted["variables"]["team"]["value"] == "research"  # the rest is left alone
    assert raw["variables"]["api_token"]["value"] == token  # the input is not modified
    assert redact_outputs({"a": {"sensitive": True, "value": {"x": 1}}, "b": {"sensitive": False, "value": 2}}) \
        == {"a": {"sensitive": True, "value": SENSITIVE}, "b": {"sensitive": False, "value": 2}}


def test_the_whole_flow_never_prints_or_writes_a_secret(repo, checkov_bin, tmp_path):
    _add_sensitive_value(repo)
    tag(repo, TAG)
    env = {**SECRETS, "TFDEPLOY_CHECKOV": checkov_bin}
    runs = [
        tfdeploy(repo, "bootstrap", "--env", "dev", env=env),
        tfdeploy(repo, "plan", "--tag", TAG, env=env),
        tfdeploy(repo, "plan", "--tag", TAG, "--json", env=env),
        tfdeploy(repo, "scan", "--tag", TAG, "--saved-plan", "--json", env=env, check=False),
        tfdeploy(repo, "apply", "--tag", TAG, "-v", env=env),
        tfdeploy(repo, "output", "--tag", TAG, env=env),
        tfdeploy(repo, "output", "--tag", TAG, "--json", env=env),
        tfdeploy(repo, "show", "--tag", TAG, env=env),
        tfdeploy(repo, "show", "--tag", TAG, "--json", env=env),
        tfdeploy(repo, "run", "--tag", TAG, "--auto-approve", "--allow-missing", "tflint", env=env),
        tfdeploy(repo, "run", "--tag", TAG, "--json", "--allow-missing", "tflint", env=env),
    ]
    scan = runs[3]
    assert scan.returncode == 0, scan.stderr  # checkov reads the redacted plan.json
    assert json.loads(scan.stdout)["status"] == "passed"
    assert 'api_token = <sensitive>' in runs[5].stdout
    assert json.loads(runs[6].stdout)["api_token"]["value"] == SENSITIVE

    leaks = []
    for proc in runs:
        for secret in SECRETS.values():
            if secret in proc.stdout or secret in proc.stderr:
                leaks.append(f"{' '.join(proc.args[1:4])}: {secret[:12]}...")
    for path in _written_files(repo / ".tfdeploy", tmp_path / "home"):
        data = _readable(path.read_bytes())
        leaks += [f"{path}: {s[:12]}..." for s in SECRETS.values() if s.encode() in data]
    written = _aws_objects_written()
    # What tfdeploy writes to AWS is really read here: the ledger's records and the lock-mode record.
    assert any("_tfdeploy-ledger/" in address for address in written), sorted(written)
    assert any(address.split("?")[0].endswith(".tfdeploy-lock-mode.json") for address in written), sorted(written)
    for address, data in written.items():
        leaks += [f"{address}: {s[:12]}..." for s in SECRETS.values() if s.encode() in data]
    assert leaks == [], "\n".join(leaks)

    # Asked for explicitly, the value is shown.
    shown = tfdeploy(repo, "output", "--tag", TAG, "--show-sensitive", env=env)
    assert f'api_token = "{SECRETS["TF_VAR_api_token"]}"' in shown.stdout
