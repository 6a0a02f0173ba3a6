"""The deployment ledger: every apply (single cell and fan-out, succeeded or failed) leaves one
record beside the state, with what a person asks afterwards: who, which commit, what changed.
Real Terraform (embedded), moto server, real annotated tags; the pure merge rules without them."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import boto3
import pytest
from tfdeploy.fleet.ledger import (
    Place,
    Record,
    merge_summary,
    parse_cell,
    record_key,
    record_run,
    summary_key,
)
from tfdeploy.model.tags import parse_tag

from tests.conftest import git
from tests.e2e.conftest import one_wave, tag, tfdeploy
from tests.statecheck import all_keys, s3, state_keys

BUCKET = "demo-tfstate-dev"
PREFIX = "_tfdeploy-ledger/"
TEAM_VARS = "envs/dev/research/variables.tfvars"


def record(n: int, action: str = "apply", result: str = "succeeded", cell_tag: str = "dev_us-east-1/research/1.0",
           **extra) -> Record:
    t = parse_tag(cell_tag)
    return Record(tag=t.name, commit=f"{n:040x}", cell=t.cell, env=t.env, team=t.team, scope=t.scope_name,
                  version=t.version, action=action, result=result, add=1, change=0, destroy=0, caller="",
                  started_at=f"2026-11-01T00:{n // 60:02d}:{n % 60:02d}.000Z",
                  finished_at=f"2026-11-01T00:{n // 60:02d}:{n % 60:02d}.500Z", plan_sha256="", tfdeploy_version="0",
                  build_id="", id=f"id{n:04d}", **extra)


def test_summary_keeps_the_newest_records_and_never_loses_the_last_success_or_drift():
    history = [record(0), record(1, action="drift", result="drifted")]
    history += [record(n, result="failed") for n in range(2, 40)]
    summary: list[Record] = []
    for r in history:
        summary = merge_summary(summary, r, keep=5)
    ids = [r.id for r in summary]
    assert ids[:5] == ["id0039", "id0038", "id0037", "id0036", "id0035"]  # newest first
    assert set(ids[5:]) == {"id0000", "id0001"}  # pinned: the deployed one and the drift check
    assert merge_summary(summary, record(39, result="failed"), keep=5) == summary  # the same record twice: no change
    # Record names sort in time order, whatever the id.
    assert record_key(record(3)) < record_key(record(12)) < record_key(record(61))
    assert record_key(record(3)).startswith(PREFIX + "dev-us-east-1-research/")


def test_summary_keys_and_what_counts_as_a_summary_or_a_cache_entry():
    from tfdeploy.fleet.ledger import parse_summary, summary_body, summary_cell
    from tfdeploy.fleet.ledgercache import file_text, make_entry, valid_entries

    cell = "dev-us-east-1-research"
    assert summary_cell(summary_key(cell)) == cell
    assert [summary_cell(k) for k in (PREFIX + "_latest/a/b.json", PREFIX + "_latest/x.txt", record_key(record(1)),
                                      PREFIX + "_latest/.json")] == [None] * 4
    body = summary_body(cell, [record(2), record(1)], "2026-11-01T00:00:00.000Z")
    assert [r.id for r in parse_summary(body, cell)] == ["id0002", "id0001"]
    for bad in (b"", b"[]", b'{"cell": "x"}', summary_body("dev-global-research", [], "t"),
                summary_body(cell, [record(1, cell_tag="dev_global/research/1.0")], "t")):
        with pytest.raises(ValueError):
            parse_summary(bad, cell)
    records = parse_summary(body, cell)
    entry = make_entry(body.decode(), '"abc"', records)
    assert (entry["head"], entry["more"], entry["kinds"]) == ([records[0].to_dict()], 1, ["change"])
    # Each head record's signed digest is the one its copy read back from the cache would give.
    from dataclasses import replace

    from tfdeploy.fleet.ledger import Record
    from tfdeploy.fleet.signing import canonical_bytes, canonical_sha256, carrying_digest
    reread = Record.from_dict(json.loads(json.dumps(entry["head"][0])))
    assert entry["signed"] == [hashlib.sha256(canonical_bytes(reread)).hexdigest()]
    # A record carries a digest only as made; any change (replace) makes one that computes its own.
    carried = carrying_digest(reread, "0" * 64)
    assert canonical_sha256(carried) == "0" * 64
    assert canonical_sha256(replace(carried, commit="f" * 40)) == hashlib.sha256(
        canonical_bytes(replace(reread, commit="f" * 40))).hexdigest()
    assert valid_entries(json.loads(file_text(BUCKET, {cell: {**entry, "signed": []}})), BUCKET) == {}
    good = json.loads(file_text(BUCKET, {cell: entry, "x": {**entry, "more": "1"}, "y": "not an entry"}))
    assert valid_entries(good, BUCKET) == {cell: entry}
    assert valid_entries(good, "another-bucket") == {} == valid_entries({**good, "format": "v0"}, BUCKET)
    # Altered anywhere, the file is dropped whole.
    assert valid_entries({**good, "summaries": good["summaries"].replace("id0002", "id6666")}, BUCKET) == {}


def test_cell_names_with_dashes_in_env_and_team_parse_back():
    assert parse_cell("dev-us-east-1-research", ["dev", "qa"]) == ("dev", "us-east-1", "research")
    assert parse_cell("pre-prod-global-data-eng", ["pre", "pre-prod"]) == ("pre-prod", "global", "data-eng")
    assert parse_cell("qa-eu-central-1-x", ["dev", "qa"]) == ("qa", "eu-central-1", "x")
    with pytest.raises(Exception, match="not a cell"):
        parse_cell("prod-us-east-1-research", ["dev", "qa"])


def ledger_records(cell: str, started: bool = False) -> list[dict]:
    """The cell's records; without `started`, the final ones (each run also writes a `started`
    record before Terraform, checked to be there)."""
    keys = [k for k in all_keys(BUCKET) if k.startswith(f"{PREFIX}{cell}/") and not k.endswith("/_latest.json")]
    found = [json.loads(s3().get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys]
    if started:
        return found
    finals = [r for r in found if r["result"] != "started"]
    starts = {r["id"] for r in found if r["result"] == "started"}
    assert all(r["details"]["started_id"] in starts for r in finals if "state" in r["details"] or starts), found
    return finals


def test_single_and_fanout_applies_succeeded_or_failed_are_recorded_with_who_what_and_which_commit(repo):
    # eu-central-1's provisioner runs `sleep -1`, which fails: its apply fails after the plan.
    (repo / "envs/dev/research/eu-central-1.tfvars").write_text("apply_delay_seconds = -1\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "eu-central-1 breaks on apply")
    one_wave(repo)  # both Regions at once: the failing one must not stop the other (no canary)
    for scope in ("us-east-1", "eu-central-1", "global"):
        tag(repo, f"dev_{scope}/research/1.0")
    commit = git(repo, "rev-parse", "dev_us-east-1/research/1.0^{commit}").strip()
    caller = boto3.client("sts", region_name="us-east-1").get_caller_identity()["Arn"]
    tfdeploy(repo, "bootstrap", "--env", "dev")

    # One cell, saved plan, inside a CodeBuild build.
    tfdeploy(repo, "plan", "--tag", "dev_us-east-1/research/1.0")
    tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.0", env={"CODEBUILD_BUILD_ID": "tfdeploy-dev-apply:42"})
    [first] = ledger_records("dev-us-east-1-research")
    spent = repo / ".tfdeploy/work/dev-us-east-1-research/tfdeploy.tfplan.spent"
    assert {k: first[k] for k in ("tag", "commit", "cell", "env", "team", "scope", "version", "action", "result",
                                  "add", "change", "destroy", "caller", "build_id", "override")} == {
        "tag": "dev_us-east-1/research/1.0", "commit": commit, "cell": "dev-us-east-1-research", "env": "dev",
        "team": "research", "scope": "us-east-1", "version": "1.0", "action": "apply", "result": "succeeded",
        "add": 1, "change": 0, "destroy": 0, "caller": caller, "build_id": "tfdeploy-dev-apply:42", "override": ""}
    assert first["plan_sha256"] == hashlib.sha256(spent.read_bytes()).hexdigest()
    assert first["tfdeploy_version"] and first["started_at"] < first["finished_at"]
    assert first["finished_at"].endswith("Z")
    # Same encryption as the state.
    head = s3().head_object(Bucket=BUCKET, Key=[k for k in all_keys(BUCKET) if k.startswith(PREFIX)][0])
    assert head["ServerSideEncryption"] == "AES256"

    # A fan-out: global and us-east-1 succeed, eu-central-1 fails; each leaves its own record.
    run = tfdeploy(repo, "apply", "--tag", "dev_*/research/1.0", "--auto-approve", "--json", check=False)
    assert run.returncode == 1, run.stderr
    [glob] = ledger_records("dev-global-research")
    assert (glob["result"], glob["add"], glob["commit"], glob["caller"]) == ("succeeded", 1, commit, caller)
    # --auto-approve applies a saved plan too (checked as a reviewed one); the record says it was
    # auto-approved and names the plan it applied.
    assert glob["build_id"] == "" and len(glob["plan_sha256"]) == 64 and "auto-approved" in glob["details"]["plan"]
    [failed] = ledger_records("dev-eu-central-1-research")
    assert (failed["result"], failed["action"], failed["add"]) == ("failed", "apply", 1)
    assert "sleep" in failed["details"]["error"] or "exit" in failed["details"]["error"]
    again = sorted(ledger_records("dev-us-east-1-research"), key=lambda r: r["finished_at"])
    assert [(r["result"], r["add"]) for r in again] == [("succeeded", 1), ("succeeded", 0)]
    # The summary status reads holds them too, newest first; state objects are untouched.
    summary = json.loads(s3().get_object(Bucket=BUCKET, Key=summary_key("dev-us-east-1-research"))["Body"].read())
    assert [r["id"] for r in summary["records"] if r["result"] != "started"] == [again[1]["id"], again[0]["id"]]
    assert state_keys(BUCKET) == ["research/dev-eu-central-1/terraform.tfstate",
                                  "research/dev-global/terraform.tfstate",
                                  "research/dev-us-east-1/terraform.tfstate"]

    # A refusal before Terraform runs (the saved plan is spent) is not a deployment: no record,
    # not even a started one (that is written once every check passed, just before Terraform).
    refused = tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.0", check=False)
    assert refused.returncode == 2 and len(ledger_records("dev-us-east-1-research", started=True)) == 4


def test_a_record_that_cannot_be_written_is_reported_kept_and_written_by_the_next_command(repo):
    tag(repo, "dev_us-east-1/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.0", "--auto-approve")
    cell = "dev-us-east-1-research"
    # A lifecycle rule archived the cell's summary: it cannot be read, so it must not be replaced.
    s3().put_object(Bucket=BUCKET, Key=summary_key(cell), Body=b"{}", StorageClass="GLACIER")
    warnings: list[str] = []
    kept_record = record_run(parse_tag("dev_us-east-1/research/1.0"), None, dict(os.environ),
                             cache_dir=repo / ".tfdeploy", action="apply", result="succeeded", commit="c" * 40,
                             counts=(0, 1, 0), started_at="2026-11-22T00:00:00.000Z", warn=warnings.append,
                             place=Place(BUCKET, "us-east-1"))
    [warning] = warnings
    assert warning.startswith("ledger record not written: ") and "InvalidObjectState" in warning
    outbox = list((repo / ".tfdeploy/ledger-outbox").glob("*.json"))
    assert [p.name for p in outbox] == [f"{cell}-{kept_record.id}.json"]
    assert str(outbox[0]) in warning

    # Through the CLI: an apply whose records cannot be written still succeeds (exit 0), says so
    # in one warning line per record (started, final), and keeps them too.
    tfdeploy(repo, "plan", "--tag", "dev_us-east-1/research/1.0")
    applied = tfdeploy(repo, "apply", "--tag", "dev_us-east-1/research/1.0")
    lines = [line for line in applied.stderr.splitlines() if "ledger record not written" in line]
    assert len(lines) == 2 and all(line.startswith("tfdeploy: warning: ledger record not written: ") for line in lines)
    assert "Traceback" not in applied.stderr
    assert len(list((repo / ".tfdeploy/ledger-outbox").glob("*.json"))) == 3

    # The operator restores the summary (here: removes the archived copy); the next command
    # writes the kept records and the summary holds every record, the first apply's too.
    s3().delete_object(Bucket=BUCKET, Key=summary_key(cell))
    status = tfdeploy(repo, "status", "--json")
    assert status.stderr.count("kept ledger record written") == 3
    assert not list((repo / ".tfdeploy/ledger-outbox").glob("*.json"))
    summary = json.loads(s3().get_object(Bucket=BUCKET, Key=summary_key(cell))["Body"].read())
    assert len(summary["records"]) == 5 and kept_record.id in {r["id"] for r in summary["records"]}
    [row] = [c for c in json.loads(status.stdout)["cells"] if c["cell"] == cell]
    assert row["result"] == "succeeded"


def test_the_ci_apply_stage_prints_a_record_it_could_not_write(tmp_path):
    from tfdeploy.delivery.ci import report_kept_records
    from tfdeploy.fleet.ledger import keep_in_outbox

    kept = record(7)
    keep_in_outbox(tmp_path, kept, Place(BUCKET, "us-east-1"))
    said: list[str] = []
    report_kept_records(tmp_path, said.append)
    [line] = said
    assert line.startswith("ci: warning: ledger record not written; kept in this build's log: ")
    assert json.loads(line.split("log: ", 1)[1])["record"]["id"] == kept.id
    assert Path(tmp_path / "ledger-outbox").is_dir()


def test_parallel_appends_to_one_cell_all_reach_its_summary(sandbox_env):
    from concurrent.futures import ThreadPoolExecutor

    from tfdeploy.fleet.ledger import append
    from tfdeploy.model.settings import Settings

    s3().create_bucket(Bucket=BUCKET)
    settings = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"))
    records = [record(n) for n in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda r: append(r, settings, dict(os.environ)), records))
    summary = json.loads(s3().get_object(Bucket=BUCKET, Key=summary_key("dev-us-east-1-research"))["Body"].read())
    assert sorted(r["id"] for r in summary["records"]) == sorted(r.id for r in records)
    assert len(ledger_records("dev-us-east-1-research")) == 16


def test_reads_started_with_the_run_leave_only_the_writes_and_lose_no_record_written_meanwhile(sandbox_env, tmp_path):
    """A run starts its record's reads (caller, summary) when Terraform starts; after Terraform only
    the two writes are left. A summary rewritten in between (another run of the cell, a record
    flushed from the outbox) is caught by the conditional write: no record is dropped from it."""
    from tfdeploy.fleet.ledger import append, prepare
    from tfdeploy.model.settings import Settings

    s3().create_bucket(Bucket=BUCKET)
    settings = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"))
    cell, environ = "dev-us-east-1-research", dict(os.environ)
    place = Place(BUCKET, "us-east-1")
    tag = parse_tag("dev_us-east-1/research/1.0")

    def run(prepared, n):
        return record_run(tag, None, environ, cache_dir=tmp_path, action="apply", result="succeeded",
                          commit=f"{n:040x}", counts=(1, 0, 0), started_at="2026-11-01T00:00:00.000Z",
                          warn=pytest.fail, place=place, prepared=prepared)

    def summary_ids():
        body = s3().get_object(Bucket=BUCKET, Key=summary_key(cell))["Body"].read()
        return sorted(r["id"] for r in json.loads(body)["records"])

    # No summary yet when the reads are made; another run writes the first one meanwhile.
    early = prepare(place, cell, environ)
    assert early.summary()[1] is None
    append(record(1), settings, environ)
    first = run(early, 1)
    assert summary_ids() == sorted(["id0001", first.id])
    assert first.caller.startswith("arn:aws:")  # from the caller read made with the run

    # A summary that changed between the read and the write (a newer version) is read again.
    stale = prepare(place, cell, environ)
    stale.summary()
    append(record(2), settings, environ)
    second = run(stale, 2)
    assert summary_ids() == sorted(["id0001", "id0002", first.id, second.id])

    # Nothing changed meanwhile: once the run is over, the record and the summary are written, no read.
    quiet = prepare(place, cell, environ)
    quiet.summary(), quiet.caller()
    with Counted(readers=False) as counted:
        third = run(quiet, 3)
    assert counted.ops == ["PutObject", "PutObject"]
    assert summary_ids() == sorted(["id0001", "id0002", first.id, second.id, third.id])
    assert len(ledger_records(cell)) == 5


# --- reading the fleet fast: summaries under one prefix, a local cache by ETag --------------------

class Counted:
    """Counts the S3 requests the ledger's (process-wide, cached) client sends, by operation."""

    def __init__(self, readers: bool = True):
        from tfdeploy.fleet.ledger import _s3, read_threads

        # The readers of the fleet's summaries share a client sized for them; a writer uses the default.
        # Their listings go through a keys-only client of the same size.
        threads = read_threads(os.environ) if readers else None
        self.clients = [_s3("us-east-1", dict(os.environ), threads)]
        if readers:
            self.clients.append(_s3("us-east-1", dict(os.environ), threads, keys_only=True))
        self.client = self.clients[0]
        self.ops: list[str] = []

    def _count(self, model, **_kwargs):
        self.ops.append(model.name)

    def __enter__(self):
        for made in self.clients:
            made.meta.events.register("before-call.s3", self._count)
        return self

    def __exit__(self, *exc):
        for made in self.clients:
            made.meta.events.unregister("before-call.s3", self._count)


def fleet_latest(cache_dir, **kwargs):
    from tfdeploy.fleet.ledger import latest
    from tfdeploy.model.settings import Settings

    settings = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"))
    with Counted() as counted:
        found = latest(settings, dict(os.environ), ["dev"], cache_dir=cache_dir, **kwargs)
    return {cell: [r.id for r in records] for cell, records in found.items()}, counted.ops


def test_status_lists_the_summaries_and_a_warm_cache_gets_only_what_changed(sandbox_env, tmp_path):
    from tfdeploy.fleet.ledger import append
    from tfdeploy.model.settings import Settings

    s3().create_bucket(Bucket=BUCKET)
    settings = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"))
    scopes = ("us-east-1", "eu-west-1", "global")
    for n, scope in enumerate(scopes):
        append(record(n, cell_tag=f"dev_{scope}/research/1.0"), settings, dict(os.environ))
    # Every summary under one prefix of its own, so one listing page returns 1,000 of them.
    assert summary_key("dev-us-east-1-research") == PREFIX + "_latest/dev-us-east-1-research.json"
    assert sorted(k for k in all_keys(BUCKET) if k.startswith(PREFIX + "_latest/")) == [
        PREFIX + "_latest/dev-eu-west-1-research.json", PREFIX + "_latest/dev-global-research.json",
        PREFIX + "_latest/dev-us-east-1-research.json"]
    want = {"dev-us-east-1-research": ["id0000"], "dev-eu-west-1-research": ["id0001"],
            "dev-global-research": ["id0002"]}
    cache = tmp_path / "cache"

    cold, ops = fleet_latest(cache)
    assert cold == want
    lists = ops.count("ListObjectsV2")
    assert lists == 2 and sorted(ops) == ["GetObject"] * 3 + ["ListObjectsV2"] * 2  # summaries + cell folders
    assert (cache / "ledger-cache" / f"{BUCKET}.json").is_file()

    warm, ops = fleet_latest(cache)
    assert (warm, ops) == (want, ["ListObjectsV2"] * lists)  # nothing changed: no GET at all

    # Another machine appends a record: the very next read sees it, with one GET.
    append(record(9, cell_tag="dev_eu-west-1/research/1.1"), settings, dict(os.environ))
    seen, ops = fleet_latest(cache)
    assert seen["dev-eu-west-1-research"] == ["id0009", "id0001"]
    assert sorted(ops) == ["GetObject"] + ["ListObjectsV2"] * lists
    want["dev-eu-west-1-research"] = ["id0009", "id0001"]

    # A team filter reads only that team's cells, and leaves the others' cache entries be.
    append(record(10, cell_tag="dev_us-east-1/risk/1.0"), settings, dict(os.environ))
    risk, ops = fleet_latest(cache, teams=["risk"])
    assert risk == {"dev-us-east-1-risk": ["id0010"]} and ops.count("GetObject") == 1
    every, ops = fleet_latest(cache)
    assert every == {**want, "dev-us-east-1-risk": ["id0010"]} and ops.count("GetObject") == 0


def test_a_corrupt_or_foreign_cache_is_never_trusted_over_s3(sandbox_env, tmp_path):
    from tfdeploy.fleet.ledger import append
    from tfdeploy.model.settings import Settings

    s3().create_bucket(Bucket=BUCKET)
    settings = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"))
    append(record(1), settings, dict(os.environ))
    append(record(2, cell_tag="dev_global/research/1.0"), settings, dict(os.environ))
    want = {"dev-us-east-1-research": ["id0001"], "dev-global-research": ["id0002"]}
    cache = tmp_path / "cache"
    cache_file = cache / "ledger-cache" / f"{BUCKET}.json"
    assert fleet_latest(cache)[0] == want
    good = json.loads(cache_file.read_text())

    # Garbage, an empty file, a foreign JSON document, another bucket's cache: ignored, all GETs.
    other = {**good, "bucket": "someone-elses-bucket"}
    for text in ("{not json", "", '["a list"]', json.dumps({"format": "other/9"}), json.dumps(other)):
        cache_file.write_text(text)
        found, ops = fleet_latest(cache)
        assert found == want and ops.count("GetObject") == 2, text
        assert json.loads(cache_file.read_text())["bucket"] == BUCKET  # rewritten whole, valid

    # A cache altered under the same ETags is dropped, never shown.
    tampered = json.loads(cache_file.read_text())
    tampered["summaries"] = tampered["summaries"].replace("id0001", "id6666")
    cache_file.write_text(json.dumps(tampered))
    found, ops = fleet_latest(cache)
    assert found == want and ops.count("GetObject") == 2

    # An unwritable cache never fails the read.
    shutil.rmtree(cache / "ledger-cache")
    (cache / "ledger-cache").write_text("a file where the folder goes")
    found, ops = fleet_latest(cache)
    assert found == want and ops.count("GetObject") == 2


def test_summaries_at_the_old_location_are_read_and_carried_to_the_new_one(sandbox_env, tmp_path):
    from tfdeploy.fleet.ledger import (
        append,
        legacy_summary_key,
        now_iso,
        record_body,
        summary_body,
    )
    from tfdeploy.model.settings import Settings

    s3().create_bucket(Bucket=BUCKET)
    settings = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"))
    cell = "dev-us-east-1-research"
    # What an earlier tfdeploy wrote: record objects and `_tfdeploy-ledger/<cell>/_latest.json`.
    old = [record(n) for n in range(3)]
    for r in old:
        s3().put_object(Bucket=BUCKET, Key=record_key(r), Body=record_body(r))
    assert legacy_summary_key(cell) == f"{PREFIX}{cell}/_latest.json"
    s3().put_object(Bucket=BUCKET, Key=legacy_summary_key(cell),
                    Body=summary_body(cell, merge_summary(old[:2], old[2]), now_iso()))
    found, _ops = fleet_latest(tmp_path / "cache")
    assert found == {cell: ["id0002", "id0001", "id0000"]}
    # The history reads every record object, never a summary, old or new.
    from tfdeploy.fleet.ledger import history
    assert [r.id for r in history(cell, "dev", settings, dict(os.environ))] == ["id0002", "id0001", "id0000"]

    # The next write starts the new summary from the old one (not from an empty list).
    append(record(5), settings, dict(os.environ))
    moved = json.loads(s3().get_object(Bucket=BUCKET, Key=summary_key(cell))["Body"].read())
    assert [r["id"] for r in moved["records"]] == ["id0005", "id0002", "id0001", "id0000"]
    # A record an earlier tfdeploy adds to the old summary afterwards is folded in by the next write.
    s3().put_object(Bucket=BUCKET, Key=legacy_summary_key(cell),
                    Body=summary_body(cell, merge_summary(old, record(6)), now_iso()))
    append(record(7), settings, dict(os.environ))
    found, _ops = fleet_latest(tmp_path / "cache")
    assert found == {cell: ["id0007", "id0006", "id0005", "id0002", "id0001", "id0000"]}
    # The old summary itself is left as it was (only ever read).
    assert s3().head_object(Bucket=BUCKET, Key=legacy_summary_key(cell))["ContentLength"] > 0


def test_timestamps_parse_as_botocore_parses_them_without_dateutil_for_the_common_form(sandbox_env):
    """Every client's timestamp parser (aws/clients.py): the same datetimes as botocore's own, for
    the form S3 answers in and for every other form (which it hands to botocore's)."""
    from botocore.utils import parse_timestamp as botocore_parse
    from tfdeploy.aws.clients import parse_timestamp
    from tfdeploy.fleet.ledger import _s3

    for text in ("2026-12-06T20:33:55.000Z", "2026-12-06T20:33:55Z", "2026-12-06T20:33:55.5Z",
                 "2026-12-06T20:33:55.123456Z", "2026-12-06T20:33:55.000+02:00", "Sun, 06 Dec 2026 20:33:55 GMT",
                 "1765053235", 1765053235.5, "2026-12-06T20:33:55.1234567Z"):
        mine, theirs = parse_timestamp(text), botocore_parse(text)
        # The same instant and offset (botocore's zone object for `Z` is tzlocal() on a UTC machine).
        assert (mine, mine.utcoffset()) == (theirs, theirs.utcoffset()) and mine.tzinfo is not None
    for bad in ("2026-13-06T20:33:55.000Z", "2026-12-06T25:33:55Z", "not a time"):
        with pytest.raises(ValueError):
            botocore_parse(bad)
        with pytest.raises(ValueError):
            parse_timestamp(bad)
    s3 = _s3("us-east-1", dict(os.environ))
    s3.create_bucket(Bucket="stamps")
    s3.put_object(Bucket="stamps", Key="k", Body=b"x")
    listed = s3.list_objects_v2(Bucket="stamps")["Contents"][0]["LastModified"]
    assert listed.tzinfo is not None and abs((listed - s3.head_object(Bucket="stamps", Key="k")["LastModified"]).total_seconds()) < 1



def test_a_keys_only_listing_gives_botocore_s_keys_etags_prefixes_and_pages(sandbox_env):
    """aws/s3keys.py: the keys-only client's ListObjectsV2 pages carry what botocore's parser gives
    for keys, ETags, common prefixes and paging (keys that need URL encoding included), and an
    error is still botocore's error."""
    from botocore.exceptions import ClientError
    from tfdeploy.fleet.ledger import _s3

    full, keys = _s3("us-east-1", dict(os.environ)), _s3("us-east-1", dict(os.environ), keys_only=True)
    full.create_bucket(Bucket="listing")
    names = ["a/b c.json", "a/ü+x.json", "a/&<>.json", "a/d/e.json", "a/f/g.json", "b.json", "a/%41.json"]
    for n, name in enumerate(names):
        full.put_object(Bucket="listing", Key=name, Body=f"body {n}".encode())
    for kwargs in ({"Prefix": "a/"}, {"Prefix": "a/", "Delimiter": "/"}, {}, {"Prefix": "none/"}):
        pages = {"PageSize": 2}
        mine = list(keys.get_paginator("list_objects_v2").paginate(Bucket="listing", PaginationConfig=pages, **kwargs))
        theirs = list(full.get_paginator("list_objects_v2").paginate(Bucket="listing", PaginationConfig=pages, **kwargs))
        assert len(mine) == len(theirs) > 0
        for a, b in zip(mine, theirs):
            assert a.get("Contents", []) == [{"Key": o["Key"], "ETag": o["ETag"]} for o in b.get("Contents", [])]
            for field in ("CommonPrefixes", "IsTruncated", "NextContinuationToken", "KeyCount", "Prefix", "Delimiter"):
                assert a.get(field) == b.get(field), field
    listed = [o["Key"] for page in keys.get_paginator("list_objects_v2").paginate(Bucket="listing")
              for o in page["Contents"]]
    assert sorted(listed) == sorted(names)  # URL-decoded as botocore decodes them
    with pytest.raises(ClientError, match="NoSuchBucket"):
        keys.list_objects_v2(Bucket="no-such-bucket")
    assert "LastModified" in full.list_objects_v2(Bucket="listing")["Contents"][0]  # other clients: whole
    # list_pages follows the continuation token as botocore's paginator does: the same pages.
    from tfdeploy.aws.s3keys import list_pages

    for kwargs in ({"Prefix": "a/"}, {"Prefix": "a/", "Delimiter": "/"}, {}, {"Prefix": "none/"}):
        mine = list(list_pages(keys, Bucket="listing", MaxKeys=2, **kwargs))
        theirs = list(full.get_paginator("list_objects_v2").paginate(Bucket="listing", PaginationConfig={
            "PageSize": 2}, **kwargs))
        assert [[o["Key"] for o in page.get("Contents", [])] for page in mine] == [
            [o["Key"] for o in page.get("Contents", [])] for page in theirs]
        assert [page.get("CommonPrefixes") for page in mine] == [page.get("CommonPrefixes") for page in theirs]


def test_a_keys_only_client_still_retries_a_200_that_is_an_error_or_cut_short():
    """botocore's own check parses each 200 answer whole to find an embedded <Error>; the keys-only
    client's looks at the first element and the end, and still turns both cases into a 500."""
    from types import SimpleNamespace

    from tfdeploy.aws.s3keys import _listing_200_error, listing_looks_wrong

    good = (b'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="http://s3.amazonaws.com/doc/'
            b'2006-03-01/"><Name>b</Name><IsTruncated>false</IsTruncated></ListBucketResult>\n')
    error = b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code></Error>'
    assert not listing_looks_wrong(good) and not listing_looks_wrong(good.split(b"\n", 1)[1])
    assert listing_looks_wrong(error) and listing_looks_wrong(good[:-30]) and listing_looks_wrong(b"")
    listing = SimpleNamespace(name="ListObjectsV2")
    for body, status in ((good, 200), (error, 500), (good[:-30], 500)):
        response = {"status_code": 200, "body": body}
        _listing_200_error(listing, response)
        assert response["status_code"] == status


def test_a_keys_only_listing_is_not_parsed_twice(sandbox_env, monkeypatch):
    from botocore import handlers
    from tfdeploy.fleet.ledger import _s3

    second_parses = []
    usual = handlers._looks_like_special_case_error
    monkeypatch.setattr(handlers, "_looks_like_special_case_error",
                        lambda *args: second_parses.append(1) or usual(*args))
    full, keys = _s3("us-east-1", dict(os.environ)), _s3("us-east-1", dict(os.environ), keys_only=True)
    full.create_bucket(Bucket="twice")
    full.put_object(Bucket="twice", Key="k.json", Body=b"{}")
    second_parses.clear()
    assert [o["Key"] for o in keys.list_objects_v2(Bucket="twice")["Contents"]] == ["k.json"]
    assert second_parses == []
    full.list_objects_v2(Bucket="twice")
    assert second_parses == [1]  # every other client keeps botocore's check
