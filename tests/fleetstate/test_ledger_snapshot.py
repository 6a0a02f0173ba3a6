"""The bucket's shared snapshot of ledger summaries (fleet/ledgersnapshot.py): a reader without a
local cache reads a fleet in one GET, and never sees anything S3 does not list right now.

moto on 127.0.0.1; summaries written with boto3 byte for byte as the ledger writes them (and, as a
forger would, by hand); the CLI as a subprocess for the signed case."""

from __future__ import annotations

import gzip
import json
import os

import pytest
from botocore.exceptions import ClientError
from tfdeploy.fleet.ledger import Record, now_iso, record_for, summary_body, summary_key
from tfdeploy.fleet.ledgersnapshot import (
    FORMAT,
    SNAPSHOT_KEY,
    WRITE_AFTER_GETS,
    etag_of,
    parse_snapshot,
    snapshot_body,
    usable,
)
from tfdeploy.model.tags import parse_tag

from tests.fleetstate.test_ledger import BUCKET, fleet_latest
from tests.statecheck import s3

SCOPES = ("global", "us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-central-1", "eu-west-1", "eu-west-2")
CELLS = 40  # more than WRITE_AFTER_GETS: a cold read writes the snapshot


def cell_tags(n: int = CELLS) -> list:
    return [parse_tag(f"dev_{SCOPES[i % len(SCOPES)]}/team-{i // len(SCOPES):02d}/1.0") for i in range(n)]


def a_record(tag, n: int = 0, **extra) -> Record:
    return record_for(tag, commit=f"{n:040x}", action="apply", result="succeeded", add=n, change=0, destroy=0,
                      caller="arn:aws:sts::123456789012:user/moto", started_at=f"2026-11-20T10:{n:02d}:00.000Z",
                      finished_at=f"2026-11-20T10:{n:02d}:30.000Z", plan_sha256="0" * 64, tfdeploy_version="0",
                      build_id="", id=f"{tag.cell[:6]}{n:06d}", **extra)


def seed(tags, sign=None) -> dict[str, list[str]]:
    """A summary per cell, as the ledger writes it; cell -> the ids status must show."""
    s3().create_bucket(Bucket=BUCKET)
    want = {}
    for t in tags:
        records = [a_record(t, n) for n in (1, 0)]
        if sign is not None:
            records = [sign(r) for r in records]
        s3().put_object(Bucket=BUCKET, Key=summary_key(t.cell), Body=summary_body(t.cell, records, now_iso()),
                        ServerSideEncryption="AES256")
        want[t.cell] = [r.id for r in records]
    return want


def gets(ops) -> int:
    return ops.count("GetObject")


def put_snapshot(entries: dict[str, str], bucket: str = BUCKET) -> None:
    s3().put_object(Bucket=BUCKET, Key=SNAPSHOT_KEY, Body=snapshot_body(bucket, entries, now_iso()))


def snapshot_now() -> dict[str, str]:
    return parse_snapshot(s3().get_object(Bucket=BUCKET, Key=SNAPSHOT_KEY)["Body"].read(), BUCKET)


def test_the_snapshot_holds_contents_whose_md5_s3_lists_and_nothing_else():
    body = summary_body("dev-global-a", [], "t").decode()
    assert parse_snapshot(snapshot_body(BUCKET, {"k": body}, "t"), BUCKET) == {"k": body}
    for bad in (b"", b"not gzip", gzip.compress(b"{not json"), gzip.compress(b"[]"),
                gzip.compress(json.dumps({"format": "other/2", "bucket": BUCKET, "summaries": {}}).encode()),
                snapshot_body("another-bucket", {"k": body}, "t")):
        assert parse_snapshot(bad, BUCKET) == {}
    assert json.loads(gzip.decompress(snapshot_body(BUCKET, {}, "t")))["format"] == FORMAT
    listed = {"k": etag_of(body), "gone": etag_of("x"), "edited": etag_of(body + " ")}
    assert usable({"k": body, "edited": body, "unlisted": body}, listed) == {"k": body}
    # Read back through the fast path, a record is the record it was, and as immutable.
    r = a_record(parse_tag("dev_global/a/1.0"), 3, details={"error": "x"})
    again = Record.from_dict(json.loads(json.dumps(r.to_dict())))
    assert again == r and again.details == {"error": "x"} and hash(again.order) == hash(r.order)
    with pytest.raises(AttributeError):
        again.result = "failed"  # type: ignore[misc]
    assert Record.from_dict({**r.to_dict(), "newer_field": 1}) == r  # tolerant, through __init__


def test_etag_of_is_what_s3_lists(sandbox_env):
    s3().create_bucket(Bucket=BUCKET)
    body = summary_body("dev-global-a", [a_record(parse_tag("dev_global/a/1.0"))], "t")
    s3().put_object(Bucket=BUCKET, Key="k", Body=body, ServerSideEncryption="AES256")
    [listed] = s3().list_objects_v2(Bucket=BUCKET)["Contents"]
    assert listed["ETag"] == etag_of(body.decode())


def test_a_cold_reader_reads_the_fleet_from_the_snapshot_in_one_get(sandbox_env, tmp_path):
    want = seed(cell_tags())
    first, ops = fleet_latest(tmp_path / "first")
    assert first == want and gets(ops) == CELLS + 1  # every summary, and the snapshot (none yet)
    assert ops.count("PutObject") == 1 and set(snapshot_now()) == {summary_key(c) for c in want}

    # Another machine, no local cache: the listings and the snapshot, nothing else.
    second, ops = fleet_latest(tmp_path / "second")
    assert second == want
    assert sorted(ops) == ["GetObject", "ListObjectsV2", "ListObjectsV2"]
    # Its local cache now holds the fleet: the next read is the listings alone.
    third, ops = fleet_latest(tmp_path / "second")
    assert (third, ops) == (want, ["ListObjectsV2"] * 2)


def test_a_summary_changed_since_the_snapshot_is_read_from_s3_never_from_the_snapshot(sandbox_env, tmp_path):
    from tfdeploy.fleet.ledger import append
    from tfdeploy.model.settings import Settings

    tags = cell_tags()
    want = seed(tags)
    fleet_latest(tmp_path / "writer")  # writes the snapshot
    before = snapshot_now()

    # A new record appended on another machine; a summary edited by hand (as a forger would).
    settings = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"))
    appended = a_record(tags[0], 7)
    append(appended, settings, dict(os.environ))
    edited = tags[1].cell
    forged = json.loads(s3().get_object(Bucket=BUCKET, Key=summary_key(edited))["Body"].read())
    forged["records"][0]["commit"] = "f" * 40
    s3().put_object(Bucket=BUCKET, Key=summary_key(edited), Body=json.dumps(forged).encode())
    assert snapshot_now() == before  # the snapshot still holds the old content of both

    found, ops = fleet_latest(tmp_path / "cold")
    assert found == {**want, tags[0].cell: [appended.id, *want[tags[0].cell]]}
    assert gets(ops) == 1 + 2  # the snapshot, then the two summaries it no longer matches
    from tfdeploy.fleet.ledger import latest
    records = latest(settings, dict(os.environ), ["dev"], cache_dir=tmp_path / "again")
    assert records[edited][0].commit == "f" * 40  # what S3 holds now, edited or not, then judged

    # An entry edited inside the snapshot (its key's listed ETag is not its MD5): not served.
    tampered = dict(before)
    victim = summary_key(tags[2].cell)
    tampered[victim] = tampered[victim].replace(want[tags[2].cell][0], "deadbeef0000")
    put_snapshot(tampered)
    found, ops = fleet_latest(tmp_path / "cold-again")
    assert found[tags[2].cell] == want[tags[2].cell] and "deadbeef0000" not in json.dumps(found)
    assert gets(ops) == 1 + 3


# mtime=0: the same bytes (and test id) in every collection, as pytest-xdist's workers require.
@pytest.mark.parametrize("blob", [b"garbage", gzip.compress(b"{\"format\": 1", mtime=0), b"\x1f\x8b\x08\x00truncated",
                                  "foreign", "other-format"])
def test_a_corrupt_foreign_or_unreadable_snapshot_is_ignored_and_replaced(sandbox_env, tmp_path, blob):
    want = seed(cell_tags())
    if blob == "foreign":
        blob = snapshot_body("someone-elses-bucket", {summary_key(c): "{}" for c in want}, "t")
    elif blob == "other-format":
        blob = gzip.compress(json.dumps({"format": "tfdeploy-ledger-snapshot/9", "bucket": BUCKET,
                                         "summaries": {}}).encode())
    s3().put_object(Bucket=BUCKET, Key=SNAPSHOT_KEY, Body=blob)
    found, ops = fleet_latest(tmp_path / "cold")
    assert found == want and gets(ops) == CELLS + 1
    assert set(snapshot_now()) == {summary_key(c) for c in want}  # rewritten, whole and valid


class SnapshotDenied:
    """Test double: the real (moto) client, except that the snapshot object is AccessDenied for
    `denied` (put_object, get_object), as for a read-only role or a key the reader may not read
    (moto does not enforce IAM or bucket policies)."""

    def __init__(self, real, denied: set[str]):
        self._real, self._denied = real, denied

    def __getattr__(self, name):
        return getattr(self._real, name)

    def _guard(self, operation: str, kwargs: dict):
        if operation in self._denied and kwargs.get("Key") == SNAPSHOT_KEY:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, operation)
        return getattr(self._real, operation)(**kwargs)

    def put_object(self, **kwargs):
        return self._guard("put_object", kwargs)

    def get_object(self, **kwargs):
        return self._guard("get_object", kwargs)


def test_a_snapshot_that_may_not_be_written_or_read_is_skipped(sandbox_env, tmp_path, monkeypatch):
    from tfdeploy.fleet import ledger

    want = seed(cell_tags())
    real = ledger._s3
    monkeypatch.setattr(ledger, "_s3", lambda *a, **k: SnapshotDenied(real(*a, **k), {"put_object"}))
    found, ops = fleet_latest(tmp_path / "cold")
    assert found == want and gets(ops) == CELLS + 1
    assert "Contents" not in s3().list_objects_v2(Bucket=BUCKET, Prefix=SNAPSHOT_KEY)

    monkeypatch.setattr(ledger, "_s3", real)
    fleet_latest(tmp_path / "writer")
    assert snapshot_now()
    monkeypatch.setattr(ledger, "_s3", lambda *a, **k: SnapshotDenied(real(*a, **k), {"get_object"}))
    found, ops = fleet_latest(tmp_path / "denied-read")
    assert found == want and gets(ops) == CELLS  # the denied GET of the snapshot is never sent


@pytest.mark.safety
def test_a_forged_summary_served_from_a_forged_snapshot_is_still_unverified(tmp_path, sandbox_env, ledger_key,
                                                                             monkeypatch):
    """A bucket writer rewrites a summary *and* the snapshot to match: the snapshot serves it (its
    MD5 is what S3 lists), and status still finds its record unsigned, as for a GET."""
    from tests.e2e.conftest import make_repo, tfdeploy
    from tfdeploy.aws.signingkey import SANDBOX_ALIAS
    from tfdeploy.fleet import signing
    from tfdeploy.fleet.signing import sign

    # Signing here memoises this moto's key ARN per process: the next test's moto has another key.
    monkeypatch.setattr(signing, "_ARNS", {})
    monkeypatch.setattr(signing, "_PUBLIC", {})

    repo = make_repo(tmp_path / "infra", lock="dynamodb", ledger_signing_key="alias/tfdeploy-ledger")
    tags = cell_tags()
    want = seed(tags, sign=lambda r: sign(r, SANDBOX_ALIAS, "us-east-1", dict(os.environ)))
    cold = repo / ".tfdeploy"

    def status() -> dict:
        import shutil

        shutil.rmtree(cold, ignore_errors=True)  # no local cache, nor verified signatures: a fresh clone
        out = tfdeploy(repo, "status", "--json", "--env", "dev").stdout
        assert out.count("\n") == 1  # to a pipe: one line
        return {row["cell"]: row for row in json.loads(out)["cells"] if row["cell"] in want}

    rows = status()
    assert all(r["version"] == "1.0" and r["marks"] == [] for r in rows.values()), rows
    assert len(snapshot_now()) >= CELLS

    victim = tags[3]
    signed_doc = json.loads(s3().get_object(Bucket=BUCKET, Key=summary_key(victim.cell))["Body"].read())
    newest = signed_doc["records"][0]
    forged = {**newest, "commit": "f" * 40, "id": "f0f0f0f0f0f0", "finished_at": "2026-11-20T11:00:00.000Z",
              "signature": ""}
    body = json.dumps({"cell": victim.cell, "updated_at": now_iso(), "records": [forged, *signed_doc["records"]]})
    s3().put_object(Bucket=BUCKET, Key=summary_key(victim.cell), Body=body.encode())
    put_snapshot({**snapshot_now(), summary_key(victim.cell): body})

    row = status()[victim.cell]
    assert row["commit"] == newest["commit"] and row["version"] == "1.0"  # the signed record decides
    assert "unverified" in row["marks"]
    assert row["unverified"] == [{"id": "f0f0f0f0f0f0", "tag": victim.name, "why": "unsigned"}]
