"""fleet/signing.py: what is signed, how a record is verified, and when it does not count.

The pure parts with a local ECDSA key (cryptography); signing and verifying against moto's KMS
(a real ECC_NIST_P256 SIGN_VERIFY key); record_run writing a signed record, and an unsigned one
(said) when the key cannot be used.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import fields, replace
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from tfdeploy.errors import ConfigError
from tfdeploy.fleet import signing
from tfdeploy.fleet.ledger import Place, Record, history, record_for, record_run
from tfdeploy.fleet.status import cell_status
from tfdeploy.model.settings import Settings, merge_settings, signed_evidence_envs
from tfdeploy.model.tags import parse_tag

ARN = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def rec(minute: int = 1, version: str = "1.0", action: str = "apply", result: str = "succeeded") -> Record:
    return record_for(parse_tag(f"dev_us-east-1/research/{version}"), commit="a" * 40, action=action, result=result,
                      add=1, change=0, destroy=0, caller="", started_at=f"2026-11-20T09:{minute:02d}:00.000Z",
                      finished_at=f"2026-11-20T09:{minute:02d}:30.000Z", plan_sha256="", tfdeploy_version="0",
                      build_id="", details={"error": "x" * 5000})  # longer than KMS's 4 KiB RAW limit


def signed_locally(record: Record, private: ec.EllipticCurvePrivateKey, arn: str = ARN) -> Record:
    unsigned = replace(record, signing_key=arn, signature_alg=signing.ALGORITHM, signature="")
    signature = private.sign(signing.message(unsigned), ec.ECDSA(hashes.SHA256()))
    return replace(unsigned, signature=base64.b64encode(signature).decode())


@pytest.fixture
def local_trust():
    private = ec.generate_private_key(ec.SECP256R1())
    return private, signing.Trust(key="alias/tfdeploy-ledger", key_arn=ARN, public_key=private.public_key(), now=NOW)


def test_every_record_field_is_signed_except_the_signature():
    assert set(signing.SIGNED_FIELDS) | set(signing.UNSIGNED_FIELDS) == {f.name for f in fields(Record)}
    record = rec()
    assert signing.canonical_bytes(record) == signing.canonical_bytes(replace(record, signature="anything"))
    for name, value in (("commit", "b" * 40), ("result", "failed"), ("finished_at", "2030-01-01T00:00:00.000Z"),
                        ("signing_key", "arn:other"), ("details", {"error": "y"})):
        assert signing.canonical_bytes(replace(record, **{name: value})) != signing.canonical_bytes(record), name
    # Stable: the same record read back from its JSON gives the same bytes, and the message is short.
    assert signing.canonical_bytes(Record.from_dict(json.loads(json.dumps(record.to_dict())))) == \
        signing.canonical_bytes(record)
    assert len(signing.message(record)) < 4096 < len(signing.canonical_bytes(record))


def test_a_record_counts_only_when_signed_by_the_configured_key_and_not_in_the_future(local_trust):
    private, trust = local_trust
    good = signed_locally(rec(), private)
    assert trust.why(good) == "" and trust.verified(good) is True
    assert trust.why(rec()) == "unsigned"
    assert trust.why(replace(good, commit="b" * 40)).startswith("bad signature")
    assert trust.why(replace(good, signature="not base64!")).startswith("bad signature")
    other = ec.generate_private_key(ec.SECP256R1())
    assert trust.why(signed_locally(rec(), other)).startswith("bad signature")  # names our key, signed by another
    assert trust.why(signed_locally(rec(), other, arn="arn:aws:kms:us-east-1:999999999999:key/x")).startswith(
        "signed by another key (arn:aws:kms:us-east-1:999999999999:key/x)")
    future = signed_locally(replace(rec(), finished_at="2026-11-20T12:06:00.000Z"), private)
    assert trust.why(future) == "finished_at 2026-11-20T12:06:00.000Z is in the future"
    assert trust.why(signed_locally(replace(rec(), finished_at="2026-11-20T12:04:00.000Z"), private)) == ""  # skew
    good_ones, bad = trust.split([good, rec(), future])
    assert good_ones == [good] and [why for _r, why in bad] == ["unsigned", trust.why(future)]
    annotated = trust.annotate(rec())
    assert (annotated["verified"], annotated["unverified"]) == (False, "unsigned")

    # Without a key nothing is checked but the date: unsigned records count, unmarked.
    none = signing.Trust(now=NOW)
    assert none.why(rec()) == "" and none.verified(rec()) is None and "unverified" not in none.annotate(rec())
    assert none.why(future).endswith("is in the future") and none.verified(future) is False


def test_status_checks_a_signature_or_three_per_cell_not_one_per_record(local_trust):
    private, trust = local_trust
    records = [signed_locally(rec(minute=m, version=f"1.{m}"), private) for m in range(1, 21)]
    checked = []

    def counting(record):
        checked.append(record.id)
        return trust.why(record)

    row = cell_status(("dev", "us-east-1", "research"), records, None, counting)
    assert row.deployed == records[-1] and row.unverified == () and len(checked) == 1
    # A forged newest record is left out and listed; the genuine one before it decides.
    forged = replace(rec(minute=30, version="9.9"), signature="")
    checked.clear()
    row = cell_status(("dev", "us-east-1", "research"), [*records, forged], None, counting)
    assert row.deployed == records[-1] and row.unverified == ((forged, "unsigned"),) and "unverified" in row.marks
    assert len(checked) == 2


def test_what_verified_once_is_not_verified_again_by_the_next_command(local_trust, tmp_path):
    private, trust = local_trust
    records = [signed_locally(rec(minute=m), private) for m in range(1, 4)]
    first = replace(trust, verified_file=tmp_path / "k.verified")
    assert [first.why(r) for r in records] == ["", "", ""]
    first.save()
    assert len((tmp_path / "k.verified").read_text().split()) == 3

    class NoVerify:
        def verify(self, *args):
            raise AssertionError("verified again")

    warm = replace(trust, public_key=NoVerify(), verified_file=tmp_path / "k.verified", _seen={})
    assert [warm.why(r) for r in records] == ["", "", ""]
    # A changed record is a new message: verified (and refused), never taken from the file.
    assert replace(trust, verified_file=tmp_path / "k.verified", _seen={}).why(
        replace(records[0], commit="b" * 40)).startswith("bad signature")


def test_require_signed_evidence_takes_envs_or_true_or_false():
    envs = {"environments": ["dev", "qa", "prod"]}
    assert signed_evidence_envs(merge_settings(envs, {}, {})) == ("prod",)  # the protected envs
    assert signed_evidence_envs(merge_settings({**envs, "require_signed_evidence": True}, {}, {})) == (
        "dev", "qa", "prod")
    assert signed_evidence_envs(merge_settings({**envs, "require_signed_evidence": False}, {}, {})) == ()
    assert signed_evidence_envs(merge_settings({**envs, "require_signed_evidence": ["qa"]}, {}, {})) == ("qa",)
    with pytest.raises(ConfigError, match="names 'staging', which is not in environments"):
        merge_settings({**envs, "require_signed_evidence": ["staging"]}, {}, {})
    with pytest.raises(ConfigError, match="must name a KMS key"):
        merge_settings({"ledger_signing_key": "my key"}, {}, {})
    for key in ("alias/tfdeploy-ledger", ARN, "arn:aws:kms:eu-west-1:123456789012:alias/x",
                "11111111-2222-3333-4444-555555555555"):
        assert merge_settings({"ledger_signing_key": key}, {}, {}).ledger_signing_key == key
    assert signing.key_region(ARN, "eu-west-1") == "us-east-1"
    assert signing.key_region("alias/tfdeploy-ledger", "eu-west-1") == "eu-west-1"
    # The working tree's key wins over the tagged commit's; either one's requirement holds.
    here, tagged = Settings(ledger_signing_key="alias/a"), Settings(ledger_signing_key="alias/b",
                                                                    require_signed_evidence=("dev",))
    assert signing.signing_key_of([here, tagged]) == "alias/a"
    assert signing.requires_signed([here, tagged], "dev") and not signing.requires_signed([here], "dev")


# --- against moto's KMS --------------------------------------------------------------------------

SETTINGS = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"), lock="dynamodb",
                    ledger_signing_key="alias/tfdeploy-ledger")


def _bucket():
    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="demo-tfstate-dev")
    return Place("demo-tfstate-dev", "us-east-1")


def test_records_signed_by_kms_verify_locally_and_through_kms(ledger_key, tmp_path):
    warned = []
    record = record_run(parse_tag("dev_us-east-1/research/1.0"), None, dict(os.environ), cache_dir=tmp_path,
                        action="apply", result="succeeded", commit="c" * 40, counts=(1, 0, 0),
                        started_at="2026-11-20T09:00:00.000Z", warn=warned.append, place=_bucket(),
                        signing=("alias/tfdeploy-ledger", "us-east-1"))
    assert warned == [] and (record.signing_key, record.signature_alg) == (ledger_key, "ECDSA_SHA_256")
    [stored] = history("dev-us-east-1-research", "dev", SETTINGS, dict(os.environ))
    assert stored == record
    trust = signing.trust_for([SETTINGS], dict(os.environ), tmp_path)
    assert trust.key_arn == ledger_key and trust.public_key is not None and trust.why(stored) == ""
    assert trust.why(replace(stored, result="failed")).startswith("bad signature")
    # The public key is kept under the repo cache: the next command asks KMS nothing.
    assert len(list((tmp_path / signing.KEYS_DIR).glob("*.json"))) == 1
    # Without cryptography, KMS Verify decides the same.
    by_kms = replace(trust, public_key=None, _seen={})
    assert by_kms.why(stored) == "" and by_kms.why(replace(stored, result="failed")).startswith("bad signature")


def test_a_record_that_cannot_be_signed_is_written_unsigned_and_said(aws_sandbox, tmp_path):
    warned = []
    record = record_run(parse_tag("dev_us-east-1/research/1.0"), None, dict(os.environ), cache_dir=tmp_path,
                        action="apply", result="succeeded", commit="c" * 40, counts=(1, 0, 0),
                        started_at="2026-11-20T09:00:00.000Z", warn=warned.append, place=_bucket(),
                        signing=("alias/no-such-key", "us-east-1"))
    assert record.signature == "" and history("dev-us-east-1-research", "dev", SETTINGS, dict(os.environ)) == [record]
    [line] = warned
    assert line.startswith("cannot sign with ledger_signing_key alias/no-such-key in us-east-1: ")
    assert line.endswith("the ledger record of dev-us-east-1-research is written unsigned (it does not count as "
                         "promotion evidence); grant kms:Sign on the key to this role")
    with pytest.raises(signing.SigningError, match="cannot read the public key of ledger_signing_key alias/no-such"):
        signing.trust_for([replace(SETTINGS, ledger_signing_key="alias/no-such-key")], dict(os.environ), tmp_path)
