"""The local cache of ledger summaries (fleet/ledgercache.py): a warm `status` parses only each
cell's head, and never shows anything other than what every record, read from S3, would.

moto on 127.0.0.1; summaries written as the ledger writes them (and, as a forger would, by hand);
the CLI as a subprocess for the signed case."""

from __future__ import annotations

import json
import os

import pytest
from tfdeploy.fleet.ledger import now_iso, summary_body, summary_key

from tests.fleetstate.test_ledger import BUCKET
from tests.fleetstate.test_ledger_snapshot import a_record, cell_tags
from tests.statecheck import s3


def test_a_warm_read_serves_heads_and_reads_the_rest_from_the_cache_or_s3(sandbox_env, tmp_path):
    """`latest(heads=True)` from a warm cache: one record per cell, `whole()` gives every record
    (from the cached contents; from S3 when those were altered); a summary whose ETag changed is
    read again, never served from its old head."""
    from tfdeploy.fleet import ledger
    from tfdeploy.fleet.ledgercache import bodies_path
    from tfdeploy.model.settings import Settings

    from tests.fleetstate.test_ledger import Counted

    s3().create_bucket(Bucket=BUCKET)
    tags = cell_tags(3)
    for t in tags:
        records = [a_record(t, n) for n in (3, 2, 1)]
        s3().put_object(Bucket=BUCKET, Key=summary_key(t.cell), Body=summary_body(t.cell, records, now_iso()),
                        ServerSideEncryption="AES256")
    settings = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"))
    cache = tmp_path / "cache"

    def read(heads: bool):
        with Counted() as counted:
            found = ledger.latest(settings, dict(os.environ), ["dev"], cache_dir=cache, heads=heads)
        return found, counted.ops

    cold, ops = read(True)
    assert ops.count("GetObject") == 3 and all(len(r) == 3 for r in cold.values())  # read whole
    warm, ops = read(True)
    assert ops.count("GetObject") == 0
    cell = tags[0].cell
    assert all(isinstance(r, ledger.Head) and len(r) == 1 for r in warm.values())
    assert [r.id for r in warm[cell].whole()] == [r.id for r in cold[cell]]
    # Every other reader (drift, destroy, releases) gets every record from the cache.
    every, ops = read(False)
    assert {c: [r.id for r in rs] for c, rs in every.items()} == {c: [r.id for r in rs] for c, rs in cold.items()}
    assert ops.count("GetObject") == 0

    # The cached contents altered: the rest is read from S3, never from them.
    path = bodies_path(cache, BUCKET)
    path.write_text(path.read_text().replace(f"{cell[:6]}000002", f"{cell[:6]}666666"))
    warm, _ops = read(True)
    with Counted() as counted:
        assert [r.id for r in warm[cell].whole()] == [r.id for r in cold[cell]]
    assert counted.ops == ["GetObject"]

    # Another run appends to a summary: its ETag changes, it is read again (one GET), head and all.
    newer = [a_record(tags[1], n) for n in (4, 3, 2, 1)]
    s3().put_object(Bucket=BUCKET, Key=summary_key(tags[1].cell), Body=summary_body(tags[1].cell, newer, now_iso()),
                    ServerSideEncryption="AES256")
    found, ops = read(True)
    assert ops.count("GetObject") == 1 and [r.id for r in found[tags[1].cell]] == [r.id for r in newer]


@pytest.mark.safety
def test_a_forged_newest_record_in_a_cached_head_sends_status_to_every_record(tmp_path, sandbox_env, ledger_key,
                                                                              monkeypatch):
    """A bucket writer adds an unsigned newest success to a summary. The warm cache keeps it as the
    cell's whole head; warm `status` finds it unverified, reads the cell's other records and
    shows the same row as a cold read: the signed record decides, the forged one is listed."""
    import shutil

    from tfdeploy.aws.signingkey import SANDBOX_ALIAS
    from tfdeploy.fleet import signing
    from tfdeploy.fleet.ledgercache import cache_path
    from tfdeploy.fleet.signing import sign

    from tests.e2e.conftest import make_repo, tfdeploy

    monkeypatch.setattr(signing, "_ARNS", {})
    monkeypatch.setattr(signing, "_PUBLIC", {})
    repo = make_repo(tmp_path / "infra", lock="dynamodb", ledger_signing_key="alias/tfdeploy-ledger")
    s3().create_bucket(Bucket=BUCKET)
    victim = cell_tags(1)[0]
    signed = [sign(a_record(victim, n), SANDBOX_ALIAS, "us-east-1", dict(os.environ)) for n in (2, 1)]
    forged = {**signed[0].to_dict(), "commit": "f" * 40, "id": "f0f0f0f0f0f0",
              "finished_at": "2026-11-20T11:00:00.000Z", "signature": ""}
    body = json.dumps({"cell": victim.cell, "updated_at": now_iso(),
                       "records": [forged, *(r.to_dict() for r in signed)]})
    s3().put_object(Bucket=BUCKET, Key=summary_key(victim.cell), Body=body.encode(), ServerSideEncryption="AES256")

    def row() -> dict:
        out = tfdeploy(repo, "status", "--json", "--env", "dev").stdout
        return next(r for r in json.loads(out)["cells"] if r["cell"] == victim.cell)

    cache = repo / ".tfdeploy"
    shutil.rmtree(cache, ignore_errors=True)
    cold = row()
    assert cold["commit"] == signed[0].commit and "unverified" in cold["marks"]
    assert cold["unverified"] == [{"id": "f0f0f0f0f0f0", "tag": victim.name, "why": "unsigned"}]
    entry = json.loads(json.loads(cache_path(cache, BUCKET).read_text())["summaries"])[victim.cell]
    assert [r["id"] for r in entry["head"]] == ["f0f0f0f0f0f0"] and entry["more"] == 2  # the head alone would mislead
    assert row() == cold
    # Without the cached contents, the rest comes from S3: the same row again.
    (cache / "ledger-cache" / f"{BUCKET}.bodies.json").unlink()
    assert row() == cold
