"""Promotion evidence that a bucket writer cannot forge (issue 21, item 2).

End to end: real Terraform, moto (S3 ledger, KMS signing key `alias/tfdeploy-ledger`), real
annotated tags, the CLI as a subprocess; forged records are written with boto3, as anyone with
s3:PutObject on the state bucket could.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy

DEV_US, QA_US = "dev_us-east-1/research/1.0", "qa_us-east-1/research/1.0"
DEV_CELL = "dev-us-east-1-research"
PREFIX = f"_tfdeploy-ledger/{DEV_CELL}/"


def _one_error(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and lines, proc.stderr
    assert lines[-1].startswith("tfdeploy: error: "), proc.stderr
    return lines[-1]


def forged(tag_name: str, commit: str, finished_at: str = "2026-11-20T09:01:30.000Z", **extra) -> dict:
    """A record as a hand-written JSON object: every field tfdeploy writes, none of its signing."""
    env_scope, team, version = tag_name.split("/")
    env, scope = env_scope.split("_", 1)
    return {"tag": tag_name, "commit": commit, "cell": f"{env}-{scope}-{team}", "env": env, "team": team,
            "scope": scope, "version": version, "action": "apply", "result": "succeeded", "add": 1, "change": 0,
            "destroy": 0, "caller": "arn:aws:sts::123456789012:user/mallory", "started_at": finished_at,
            "finished_at": finished_at, "plan_sha256": "", "tfdeploy_version": "0.1.0", "build_id": "",
            "override": "", "details": {}, "id": "f0f0f0f0f0f0", **extra}


def put_forged(bucket: str, record: dict, *, summary: bool = True) -> None:
    """One PutObject of the record (and, as a careful forger would, the cell's summary rewritten
    with it on top, so `status` reads it too)."""
    s3 = boto3.client("s3", region_name="us-east-1")
    stamp = "".join(ch for ch in record["finished_at"] if ch.isalnum() or ch == ".")
    cell = record["cell"]
    s3.put_object(Bucket=bucket, Key=f"_tfdeploy-ledger/{cell}/{stamp}-{record['id']}.json",
                  Body=json.dumps(record).encode())
    if summary:
        key = f"_tfdeploy-ledger/_latest/{cell}.json"
        try:
            old = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["records"]
        except s3.exceptions.NoSuchKey:
            old = []
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(
            {"cell": cell, "updated_at": record["finished_at"], "records": [record, *old]}).encode())


@pytest.fixture
def signed_repo(tmp_path, sandbox_env, ledger_key):
    return make_repo(tmp_path / "infra", lock="dynamodb", ledger_signing_key="alias/tfdeploy-ledger")


@pytest.mark.safety
def test_a_forged_dev_record_does_not_let_an_untested_commit_into_qa(signed_repo):
    repo = signed_repo
    c1 = git(repo, "rev-parse", "HEAD").strip()
    tag(repo, QA_US)
    for env in ("dev", "qa"):
        tfdeploy(repo, "bootstrap", "--env", env)

    # "dev apply succeeded for commit c1", hand-written into the dev bucket: no evidence.
    put_forged("demo-tfstate-dev", forged(DEV_US, c1))
    refused = tfdeploy(repo, "apply", "--tag", QA_US, "--auto-approve", check=False)
    assert refused.returncode == 2, refused.stderr
    line = _one_error(refused)
    assert f"has not been applied in dev for research: no successful apply of commit {c1[:12]}" in line
    assert "1 unverified record ignored (unsigned)" in line
    assert boto3.client("s3").list_objects_v2(Bucket="demo-tfstate-qa").get("KeyCount", 0) == 0

    # history and status say which records are not to be trusted, and why.
    doc = json.loads(tfdeploy(repo, "history", "--cell", DEV_CELL, "--json").stdout)
    [record] = doc["records"]
    assert (record["verified"], record["unverified"]) == (False, "unsigned")
    assert record["id"] == "f0f0f0f0f0f0"
    text = tfdeploy(repo, "history", "--cell", DEV_CELL).stdout
    assert "UNVERIFIED (unsigned)" in text
    [row] = [c for c in json.loads(tfdeploy(repo, "status", "--json").stdout)["cells"] if c["cell"] == DEV_CELL]
    assert row["version"] is None and "unverified" in row["marks"]
    assert row["unverified"] == [{"id": "f0f0f0f0f0f0", "tag": DEV_US, "why": "unsigned"}]
    assert "unverified" in tfdeploy(repo, "status").stdout

    # `promote` does not tag from it either.
    tag(repo, DEV_US)
    tag(repo, "dev_eu-central-1/research/1.0")
    put_forged("demo-tfstate-dev", forged("dev_eu-central-1/research/1.0", c1, id="d0d0d0d0d0d0"))
    promoted = tfdeploy(repo, "promote", "--from", "dev", "--to", "qa", "--team", "research", "--version", "1.0",
                        check=False)
    assert promoted.returncode == 2
    assert "no successful apply of 1.0 in dev for research" in _one_error(promoted)
    assert "qa_eu-central-1/research/1.0" not in git(repo, "tag", "--list")

    # A real dev apply is signed with the key; then qa is allowed, and says the evidence is signed.
    tfdeploy(repo, "apply", "--tag", DEV_US, "--auto-approve")
    genuine = next(r for r in json.loads(tfdeploy(repo, "history", "--cell", DEV_CELL, "--json").stdout)["records"]
                   if r["verified"])
    arn = boto3.client("kms", region_name="us-east-1").describe_key(KeyId="alias/tfdeploy-ledger")["KeyMetadata"]["Arn"]
    assert (genuine["signing_key"], genuine["signature_alg"]) == (arn, "ECDSA_SHA_256") and genuine["signature"]
    applied = tfdeploy(repo, "apply", "--tag", QA_US, "--auto-approve")
    assert f"promotion check: commit {c1[:12]} succeeded in {DEV_CELL}" in applied.stderr
    assert "evidence signed by " + arn in applied.stderr

    # A genuine signed record changed to name another commit: its signature no longer holds.
    (repo / "envs/qa/research/us-east-1.tfvars").write_text('greeting = "untested"\n')
    git(repo, "commit", "-qam", "never applied in dev")
    c2 = git(repo, "rev-parse", "HEAD").strip()
    tag(repo, "qa_us-east-1/research/1.1")
    put_forged("demo-tfstate-dev", {**genuine, "commit": c2, "id": "e0e0e0e0e0e0"})
    tampered = tfdeploy(repo, "apply", "--tag", "qa_us-east-1/research/1.1", "--auto-approve", check=False)
    assert tampered.returncode == 2
    assert "1 unverified record ignored (bad signature" in _one_error(tampered)
    by_id = {r["id"]: r for r in json.loads(tfdeploy(repo, "history", "--cell", DEV_CELL, "--json").stdout)["records"]}
    assert by_id["e0e0e0e0e0e0"]["verified"] is False
    assert by_id["e0e0e0e0e0e0"]["unverified"].startswith("bad signature")
    assert by_id[genuine["id"]]["verified"] is True


@pytest.mark.safety
def test_a_future_dated_record_never_counts_and_rollback_picks_the_real_previous_version(repo):
    tag(repo, "dev_us-east-1/research/1.0")
    v10 = git(repo, "rev-parse", "HEAD").strip()
    (repo / "envs/dev/research/us-east-1.tfvars").write_text('greeting = "hi from 1.1"\n')
    git(repo, "commit", "-qam", "1.1 greets differently")
    tag(repo, "dev_us-east-1/research/1.1")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    for version in ("1.0", "1.1"):
        tfdeploy(repo, "apply", "--tag", f"dev_us-east-1/research/{version}", "--auto-approve")

    # "1.0 applied" dated next year: it would sort newest and make 1.0 look deployed.
    future = (datetime.now(timezone.utc) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    put_forged("demo-tfstate-dev", forged("dev_us-east-1/research/1.0", v10, finished_at=future))

    records = json.loads(tfdeploy(repo, "history", "--cell", DEV_CELL, "--json").stdout)["records"]
    assert records[0]["id"] == "f0f0f0f0f0f0" and records[0]["verified"] is False
    assert records[0]["unverified"].startswith(f"finished_at {future} is in the future")
    assert [r["verified"] for r in records[1:]] == [None, None]  # no key here: not checked, not marked
    [row] = [c for c in json.loads(tfdeploy(repo, "status", "--json").stdout)["cells"] if c["cell"] == DEV_CELL]
    assert row["version"] == "1.1" and "unverified" in row["marks"]

    done = tfdeploy(repo, "rollback", "--env", "dev", "--team", "research", "--scope", "us-east-1",
                    "--auto-approve")
    assert done.stdout.splitlines()[-1] == f"rolled back {DEV_CELL} from 1.1 to 1.0 (dev_us-east-1/research/1.0)"


def test_without_a_key_promotion_says_the_evidence_is_unsigned_and_required_envs_refuse_it(repo):
    c1 = git(repo, "rev-parse", "HEAD").strip()
    tag(repo, DEV_US)
    tag(repo, QA_US)
    for env in ("dev", "qa"):
        tfdeploy(repo, "bootstrap", "--env", env)
    tfdeploy(repo, "apply", "--tag", DEV_US, "--auto-approve")
    applied = tfdeploy(repo, "apply", "--tag", QA_US, "--auto-approve")
    assert (f"promotion check: commit {c1[:12]} succeeded in {DEV_CELL}" in applied.stderr
            and "evidence unsigned (no ledger_signing_key set)" in applied.stderr), applied.stderr

    with (repo / "pyproject.toml").open("a") as f:
        f.write('require_signed_evidence = ["qa"]\n')
    git(repo, "commit", "-qam", "qa needs signed evidence")
    c2 = git(repo, "rev-parse", "HEAD").strip()
    tag(repo, "dev_us-east-1/research/1.1")
    tag(repo, "qa_us-east-1/research/1.1")
    tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.1", "--auto-approve")
    refused = tfdeploy(repo, "apply", "--tag", "qa_us-east-1/research/1.1", "--auto-approve", check=False)
    assert refused.returncode == 2
    assert _one_error(refused) == (
        f"tfdeploy: error: qa_us-east-1/research/1.1 (commit {c2[:12]}): env qa needs signed promotion evidence "
        "(require_signed_evidence) but no ledger_signing_key is set, so no ledger record can be verified; set "
        "ledger_signing_key in pyproject.toml (modules/pipeline's ledger_signing_key_arn, or alias/tfdeploy-ledger "
        "in the sandbox), or pass --skip-promotion-check --reason TEXT")
