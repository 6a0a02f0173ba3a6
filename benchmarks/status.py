"""`tfdeploy status` on a fleet of 1,000 cells x 10 ledger records, then on 10,000 cells, in the
local sandbox (moto).

    python benchmarks/status.py [--cells 1000] [--records 10] [--runs 3] [--signed] [--warm-cells 10000]
                                [--warm-runs N] [--before OTHER/toolkit]

`--signed`: the repo sets ledger_signing_key (the sandbox's alias/tfdeploy-ledger) and seeded
records are signed with it (KMS Sign), so status verifies what decides each cell
(fleet/signing.py): every record of the 1,000-cell fleet; the newest record of each of the 10,000
(the one status checks: it is a success, so nothing older is looked at).

Seeds moto with the ledger's own objects (record objects and per-cell summaries, built by the
ledger's pure functions, so they are byte-for-byte what `append` writes), then times, for each
fleet, three ways `status --json` finds the ledger:
- first: no snapshot in the bucket and no `.tfdeploy/` (a GET per summary; it writes the snapshot);
- cold: the bucket's snapshot (fleet/ledgersnapshot.py), but no `.tfdeploy/` (a fresh clone, a CI
  build: no local cache, no public key, no verified signatures);
- warm: `.tfdeploy/` from the run before (the listings alone).
Each in-process (counting the AWS requests with a botocore event hook, `before-send`: they grow
with the cells, not with the records) and as a subprocess (what a person waits for, Python
start-up included; with its CPU seconds, which a loaded machine inflates
less than the wall time, and the CPU seconds moto spent answering it). `--before`: another
version's toolkit timed alternately in the same run (same fleet, same load), each version with a
`.tfdeploy` of its own. Target: cold 1,000 x 10 and warm 10,000 under 2 s each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TARGET_S = 2.0
TOOLKIT = Path(__file__).resolve().parents[1] / "toolkit"
ENVS = ("dev", "qa")
SCOPES = ("global", "us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-central-1", "eu-west-1",
          "eu-west-2", "ap-southeast-1", "ap-northeast-1")


def make_repo(root: Path, signed: bool = False) -> None:
    env = {"GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@e", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@e", "PATH": "/usr/bin:/bin"}
    (root / "pyproject.toml").write_text('[tool.tfdeploy]\nbackend_prefix = "bench-tfstate"\n'
                                         'environments = ["dev", "qa"]\n'
                                         + ('ledger_signing_key = "alias/tfdeploy-ledger"\n' if signed else ""))
    for cmd in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "bench"]):
        subprocess.run(["git", *cmd], cwd=root, check=True, env=env, capture_output=True)


def seed(endpoint: str, cells: int, records: int, signed: bool = False, record_objects: int | None = None) -> float:
    """Write `cells` x `records` into the ledger (signed with the sandbox's key when `signed`): each
    cell's summary holds all `records`; of the record objects themselves only the newest
    `record_objects` are written (None: all). `status` reads the summaries and lists the cells'
    folders; it GETs a record object only for a cell without a summary, so fewer record objects
    only make seeding a big fleet faster."""
    from tfdeploy.aws.clients import client
    from tfdeploy.fleet.ledger import (
        merge_summary,
        now_iso,
        record_body,
        record_for,
        record_key,
        summary_body,
        summary_key,
    )
    from tfdeploy.model.tags import parse_tag

    started = time.perf_counter()
    s3 = client("s3", "us-east-1", os.environ, endpoint, max_pool_connections=32)
    if signed:
        from tfdeploy.aws.signingkey import SANDBOX_ALIAS, ensure_signing_key
        from tfdeploy.fleet.signing import sign

        ensure_signing_key(endpoint, os.environ)
    for env in ENVS:
        s3.create_bucket(Bucket=f"bench-tfstate-{env}")
    teams = -(-cells // (len(ENVS) * len(SCOPES)))
    tags = [parse_tag(f"{env}_{scope}/team-{t:03d}/1.0") for env in ENVS for t in range(teams)
            for scope in SCOPES][:cells]

    def one_cell(first) -> None:
        summary = []
        for r in range(records):
            tag = parse_tag(f"{first.env}_{first.scope_name}/{first.team}/1.{r}")
            record = record_for(tag, commit=f"{r:040x}", action="apply",
                                result="failed" if r == records - 1 and r % 7 == 0 else "succeeded",
                                add=r, change=0, destroy=0, caller="arn:aws:sts::123456789012:user/moto",
                                started_at=f"2026-11-20T10:{r:02d}:00.000Z",
                                finished_at=f"2026-11-20T10:{r:02d}:30.000Z", plan_sha256="0" * 64,
                                tfdeploy_version="0.1.0", build_id="")
            if signed and (record_objects is None or r == records - 1):
                record = sign(record, SANDBOX_ALIAS, "us-east-1", os.environ)
            if record_objects is None or r >= records - record_objects:
                s3.put_object(Bucket=f"bench-tfstate-{tag.env}", Key=record_key(record), Body=record_body(record),
                              ServerSideEncryption="AES256", ContentType="application/json")
            summary = merge_summary(summary, record)
        s3.put_object(Bucket=f"bench-tfstate-{first.env}", Key=summary_key(first.cell),
                      Body=summary_body(first.cell, summary, now_iso()), ServerSideEncryption="AES256",
                      ContentType="application/json")

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one_cell, tags))
    return time.perf_counter() - started


def in_process(repo: Path) -> tuple[float, int, int]:
    """Wall time, AWS requests and cells of one `status --json`, run inside this process."""
    import io
    from contextlib import redirect_stdout

    from tfdeploy.aws import clients
    from tfdeploy.cli import cli

    requests = 0
    lock = threading.Lock()

    def count(**_kwargs) -> None:
        nonlocal requests
        with lock:
            requests += 1

    original = clients.client

    def counted(*args, **kwargs):
        made = original(*args, **kwargs)
        made.meta.events.register("before-send", count)
        return made

    clients.client = counted
    out = io.StringIO()
    try:
        started = time.perf_counter()
        with redirect_stdout(out):
            cli.main(args=["status", "--json", "--repo", str(repo)], prog_name="tfdeploy", standalone_mode=False)
        elapsed = time.perf_counter() - started
    finally:
        clients.client = original
    return elapsed, requests, len(json.loads(out.getvalue())["cells"])


def reset_bucket_snapshot(endpoint: str) -> None:
    from tfdeploy.aws.clients import client
    from tfdeploy.fleet.ledgersnapshot import SNAPSHOT_KEY

    s3 = client("s3", "us-east-1", os.environ, endpoint)
    for env in ENVS:
        s3.delete_object(Bucket=f"bench-tfstate-{env}", Key=SNAPSHOT_KEY)


def command(exe: str, repo: Path, toolkit: Path, cache: Path) -> tuple[float, float, float]:
    """One `status --json` as a subprocess, with `toolkit`'s code and `cache` as its .tfdeploy:
    its wall time, its CPU seconds and the CPU seconds this process (the moto server) spent
    answering it. On a loaded machine the wall time says more about the neighbours than about
    tfdeploy, and against moto a listing page of a big bucket costs the server more than S3."""
    env = {**os.environ, "PYTHONPATH": str(toolkit), "TFDEPLOY_CACHE_DIR": str(cache)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = time.process_time()
    started = time.perf_counter()
    subprocess.run([exe, "status", "--json"], cwd=repo, check=True, stdout=subprocess.DEVNULL, env=env)
    wall = time.perf_counter() - started
    server = time.process_time() - server
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, server


def measure(endpoint: str, exe: str, repo: Path, label: str, records: int, runs: int,
            before: Path | None = None) -> None:
    """Time first / cold / warm, in-process and as a command (and, with `before`, that version's
    command alternately in the same run, with a cache of its own); print a row each."""
    versions = {"now": TOOLKIT} | ({"before": before} if before is not None else {})
    caches = {name: repo / f".tfdeploy-{name}" for name in versions}

    def prepare(temperature: str, cache: Path) -> None:
        if temperature == "first":
            reset_bucket_snapshot(endpoint)
        if temperature in ("first", "cold"):
            shutil.rmtree(cache, ignore_errors=True)

    timings: dict[str, list[float]] = {}
    counted: dict[str, int] = {}
    cells = 0
    for _ in range(runs):
        for temperature in ("first", "cold", "warm"):
            prepare(temperature, repo / ".tfdeploy")
            wall, requests, cells = in_process(repo)
            timings.setdefault(f"{temperature} in-process", []).append(wall)
            counted[temperature] = requests
            for name, toolkit in versions.items():
                prepare(temperature, caches[name])  # warm: the cache this version's cold read left
                wall, cpu, server = command(exe, repo, toolkit, caches[name])
                for what, value in (("command", wall), ("cpu", cpu), ("server", server)):
                    timings.setdefault(f"{temperature} {name} {what}", []).append(value)
    print(f"status --json, {label}: {cells} cells x {records} records, target {TARGET_S:.1f}s, "
          f"median of {runs}, load average {os.getloadavg()[0]:.1f}")
    print(f"  {'':38} {'requests':>8} {'in-process':>10} {'command':>8} {'command CPU':>11} {'CPU/target':>10} "
          f"{'moto CPU':>8}" + (f" {'before: command':>15} {'CPU':>6} {'moto CPU':>8} {'CPU now/before':>14}"
                                if before is not None else ""))
    for temperature, what in (("first", "first (no snapshot, no .tfdeploy)"), ("cold", "cold (snapshot, no .tfdeploy)"),
                              ("warm", "warm (.tfdeploy from the run before)")):
        def med(name: str, kind: str) -> float:
            return statistics.median(timings[f"{temperature} {name} {kind}"])

        inside = statistics.median(timings[f"{temperature} in-process"])
        line = (f"  {what:38} {counted[temperature]:>8} {inside:>9.2f}s {med('now', 'command'):>7.2f}s "
                f"{med('now', 'cpu'):>10.2f}s {med('now', 'cpu') / TARGET_S:>9.2f}x {med('now', 'server'):>7.2f}s")
        if before is not None:
            line += (f" {med('before', 'command'):>14.2f}s {med('before', 'cpu'):>5.2f}s {med('before', 'server'):>7.2f}s"
                     f" {med('now', 'cpu') / med('before', 'cpu'):>13.2f}x")
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--records", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--signed", action="store_true", help="sign the records; status verifies them")
    parser.add_argument("--warm-cells", type=int, default=10000,
                        help="then a fleet this big (0: skip)")
    parser.add_argument("--warm-runs", type=int, help="runs for that fleet (default: --runs)")
    parser.add_argument("--before", type=Path, metavar="TOOLKIT",
                        help="also time this version's code (its toolkit/ folder, e.g. of a git worktree of main), "
                             "alternately in the same run")
    args = parser.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    os.environ.update({"TFDEPLOY_SANDBOX_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"})
    exe = str(Path(sys.executable).parent / "tfdeploy")
    signed = "signed " if args.signed else ""
    try:
        with tempfile.TemporaryDirectory() as tmp:
            repo = Path(tmp) / "infra"
            repo.mkdir()
            make_repo(repo, args.signed)
            seeded = seed(endpoint, args.cells, args.records, args.signed)
            print(f"seeded {args.cells} cells x {args.records} {signed}records in {seeded:.1f}s ({endpoint})")
            measure(endpoint, exe, repo, f"{args.cells:,} cells", args.records, args.runs, args.before)
            if args.warm_cells:
                import urllib.request

                urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"),
                                       timeout=30).read()
                from tfdeploy.fleet import signing

                signing._PUBLIC.clear()  # the reset made a new key under the same alias
                signing._ARNS.clear()
                big = Path(tmp) / "big"
                big.mkdir()
                make_repo(big, args.signed)
                seeded = seed(endpoint, args.warm_cells, args.records, args.signed, record_objects=1)
                print(f"seeded {args.warm_cells} cells x {args.records} records (summaries; one record object "
                      f"per cell{', the newest signed' if args.signed else ''}) in {seeded:.1f}s")
                measure(endpoint, exe, big, f"{args.warm_cells:,} cells", args.records, args.warm_runs or args.runs,
                        args.before)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
