"""Fan-out benchmark: 8 Regions of a two-resource `terraform_data` stack against one moto server.

Rows, run round-robin so drift hits them alike, every trial from an empty moto (POST
/moto-api/reset, then the state bucket and lock table bootstrapped) and no work dirs:
  plain loop      `terraform init -backend-config=... && terraform apply` per Region, one after another
  plain xargs -P4 the same commands, four at a time (the floor)
  python+botocore loop  the plain loop, each Region preceded by a Python that imports botocore and
                   builds one S3 client: the least any per-command Python tool that talks to S3
                   adds to a cell (a reference, not a target)
  tfdeploy 1-by-1 `tfdeploy apply --tag T --auto-approve` per tag
  tfdeploy fan-out `tfdeploy apply --tag 'dev_*/research/1.0' --auto-approve --parallel 4`
                   (skipped, with a note, while the CLI refuses a glob or --parallel)
  engine-only ...  the two tfdeploy rows again with tfdeploy's AWS side patched out
                   (benchmarks/engine_only.py: no botocore, no lock-mode check or state probe,
                   no ledger record): the decomposition of what tfdeploy adds into its engine
                   and its S3 safety and record work. A measurement only: no tfdeploy option
                   skips those checks.

All rows use the same Terraform (the embedded one unless TFDEPLOY_TERRAFORM is set) behind a
wrapper that logs each command, so the Terraform processes per cell are counted, not assumed.
After every trial the 8 state objects must be at their keys, or the benchmark stops.
Figures are printed, not asserted: targets are fan-out <= 1.3x the floor and one tag at a time
<= 1.3x the plain loop. Each row's CPU time is printed too (every process it started, plus the moto
server, which runs in this process): divided by the CPUs, it is the least wall time the row could
take on this machine, which tells whether a row is bound by CPU or by waiting.

`--latency-ms N` makes the moto server answer every request N ms late, the way a real AWS
endpoint does (same-Region S3 is tens of ms away; local moto is CPU-bound instead): it shows the
rows when waiting, not CPU, is what bounds them. `--create-s S` makes each cell's second resource
take S seconds to create (a local-exec `sleep`), as real resources take seconds to minutes: it
shows what tfdeploy's fixed cost per cell weighs next to a cell that does real work.

    python benchmarks/fanout.py [--trials 3] [--latency-ms 0] [--create-s 0]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "toolkit"))
from sidebyside import as_installed  # noqa: E402
from tfdeploy.adopt.example import write_example_repo  # noqa: E402

REGIONS = ("us-east-1", "us-east-2", "us-west-1", "us-west-2",
           "eu-west-1", "eu-west-2", "eu-central-1", "ap-southeast-1")
TEAM, ENV, VERSION = "research", "dev", "1.0"
TAGS = [f"{ENV}_{region}/{TEAM}/{VERSION}" for region in REGIONS]
GLOB = f"{ENV}_*/{TEAM}/{VERSION}"
BUCKET = f"demo-tfstate-{ENV}"
TFDEPLOY = str(Path(sys.executable).parent / "tfdeploy")
ENGINE_ONLY = [sys.executable, str(Path(__file__).resolve().parent / "engine_only.py")]
# What the "python+botocore loop" row runs before each cell.
BOTOCORE_CLIENT = ("import botocore.session; botocore.session.Session().create_client("
                   "'s3', region_name='us-east-1', endpoint_url='http://127.0.0.1:9')")
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


def sh(argv: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return proc


def make_repo(root: Path, env: dict[str, str], create_s: float = 0.0, extra=None) -> Path:
    """The example repo, a second terraform_data per cell (taking `create_s` to create), tfvars and
    a tag for 8 Regions."""
    repo = root / "infra"
    write_example_repo(repo, lock="s3")
    regional = repo / "modules" / "regional" / "main.tf"
    slow = (f'  provisioner "local-exec" {{\n    command = "sleep {create_s:g}"\n  }}\n' if create_s > 0 else "")
    regional.write_text(regional.read_text() + '\nresource "terraform_data" "marker" {\n'
                        f'  input = terraform_data.cell.output\n{slow}}}\n')
    folder = repo / "envs" / ENV / TEAM
    variables = folder / "variables.tfvars"
    variables.write_text("".join(line + "\n" for line in variables.read_text().splitlines()
                                 if not line.startswith("allowed_regions")))
    for region in REGIONS:
        (folder / f"{region}.tfvars").write_text(f'greeting = "hello from {region}"\n')
    if extra is not None:
        extra(repo)  # e.g. realstack.add_aws_stack
    git_env = {**env, **GIT_ENV}
    for argv in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-qm", "bench"]):
        sh(["git", *argv], repo, git_env)
    for name in TAGS:
        sh(["git", "tag", "-a", name, "-m", name], repo, git_env)
    return repo


def plain_dirs(repo: Path, root: Path, endpoint: str, env: dict[str, str],
               refresh: list[str] | None = None, saved: list[str] | None = None) -> list[tuple[Path, str]]:
    """Per Region: the tagged tree and the `init && apply` a person would type (same keys/backend;
    with the AWS provider, the provider block tfdeploy generates). `refresh`, when given, gets
    each Region's `plan -refresh-only -detailed-exitcode` (exit 2 is an answer, not a failure)."""
    from tfdeploy.aws.sandbox import backend_overrides
    from tfdeploy.engine.provider import PROVIDER_FILE, deployment_tfvars, render_provider, uses_aws_provider
    from tfdeploy.model.deployment import resolve
    from tfdeploy.model.settings import load_settings

    settings = load_settings(repo, env, {})
    out = []
    for name, region in zip(TAGS, REGIONS):
        d = resolve(name, settings, repo)
        work = root / "plain" / region
        work.mkdir(parents=True)
        archive = subprocess.run(["git", "archive", "HEAD"], cwd=repo, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
        (work / "generated.auto.tfvars.json").write_text(json.dumps(deployment_tfvars(d)))
        if uses_aws_provider(work):
            (work / PROVIDER_FILE).write_text(render_provider(d, sandbox=True))
        backend = {**d.backend.backend_config_args(), **backend_overrides()}
        init = " ".join(["$TF", "init", "-input=false", "-no-color"]
                        + [shlex.quote(f"-backend-config={k}={v}") for k, v in backend.items()])
        var_files = " ".join(shlex.quote(f"-var-file={f}") for f in d.var_files)
        apply = (f"$TF apply -input=false -no-color -auto-approve -target={d.target_module} {var_files}")
        out.append((work, f"cd {shlex.quote(str(work))} && {init} >/dev/null && {apply} >/dev/null"))
        if saved is not None:  # what tfdeploy runs: a saved plan, then its apply (3 processes)
            saved.append(f"cd {shlex.quote(str(work))} && {init} >/dev/null && $TF plan -input=false -no-color "
                         f"-out=tfplan -target={d.target_module} {var_files} >/dev/null && "
                         f"$TF apply -input=false -no-color tfplan >/dev/null")
        if refresh is not None:
            refresh.append(f"cd {shlex.quote(str(work))} && {{ {{ [ -d .terraform ] || {init} >/dev/null; }} && $TF plan -refresh-only -detailed-exitcode "
                           f"-input=false -no-color -target={d.target_module} {var_files} >/dev/null; "
                           f"c=$?; echo \"exit $c\" >> ../refresh-exits.log; [ $c -ne 1 ]; }}")
    return out


def counting_wrapper(root: Path, terraform: str) -> tuple[str, Path]:
    log = root / "terraform-commands.log"
    wrapper = root / "terraform"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> "{log}"\nexec "{terraform}" "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), log


def reset(endpoint: str, repo: Path, plain: list[tuple[Path, str]], env: dict[str, str]) -> None:
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
    urllib.request.urlopen(request, timeout=10).read()
    sh([TFDEPLOY, "bootstrap", "--env", ENV], repo, env)
    shutil.rmtree(repo / ".tfdeploy" / "work", ignore_errors=True)
    for work, _ in plain:
        shutil.rmtree(work / ".terraform", ignore_errors=True)
        (work / ".terraform.lock.hcl").unlink(missing_ok=True)


def check_states(endpoint: str, env: dict[str, str], row: str, per_cell: int = 2) -> None:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint,
                      aws_access_key_id="bench", aws_secret_access_key="bench")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
                  if o["Key"].endswith(".tfstate"))
    want = sorted(f"{TEAM}/{ENV}-{region}/terraform.tfstate" for region in REGIONS)
    if keys != want:
        sys.exit(f"{row}: states at {keys}, expected {want}")
    for key in keys:
        state = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        if len(state["resources"]) != per_cell:
            sys.exit(f"{row}: {key} holds {len(state['resources'])} resources, expected {per_cell}")


def _late(app, delay_s: float):
    """The WSGI app, answering each request `delay_s` later (each request has its own thread)."""
    def answer(environ, start_response):
        time.sleep(delay_s)
        return app(environ, start_response)
    return answer


def _cpu_s() -> float:
    """CPU seconds so far of this process (the moto server's threads) and its reaped descendants."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def decomposition(row: str, whole: float, engine: float, base: float, what: str) -> str:
    """What `row` adds over `base`, split into its engine and its AWS side (medians, in s)."""
    added = whole - base
    aws = whole - engine
    share = f" ({aws / added:.0%} of it)" if added > 0 else ""
    return (f"{row}: {added:+.2f} s over the {what}: engine {engine - base:+.2f} s "
            f"({engine / base:.2f}x the {what}), AWS side (botocore, S3 checks, ledger) {aws:+.2f} s{share}")


def fanout_supported(repo: Path, env: dict[str, str]) -> str | None:
    """None when `apply --tag GLOB --parallel 4` is accepted, else why not (from --help)."""
    text = sh([TFDEPLOY, "apply", "--help"], repo, env).stdout
    if "--parallel" not in text:
        return "tfdeploy apply has no --parallel yet (the fleet runner is not on this branch)"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="answer every AWS request this much later (as a real endpoint would)")
    parser.add_argument("--create-s", type=float, default=0.0,
                        help="each cell's second resource takes this long to create (a local-exec "
                             "sleep), as real resources do; the targets are for 0")
    parser.add_argument("--provider-mirror", metavar="DIR", type=Path, default=None,
                        help="a Terraform filesystem mirror holding hashicorp/aws: run the real-provider "
                             "stack (benchmarks/realstack.py) instead of the terraform_data one")
    args = parser.parse_args()
    as_installed()
    if args.provider_mirror is not None:
        if (args.provider_mirror / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return main_real(args)
        print(f"no hashicorp/aws in {args.provider_mirror}: running the terraform_data stack only",
              file=sys.stderr)

    import realstack
    from tfdeploy.aws import motoserver

    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = motoserver.start()  # what `tfdeploy sandbox up` serves
    if args.latency_ms > 0:
        server.server.app = _late(server.server.app, args.latency_ms / 1000)
    endpoint = server.url
    root = Path(tempfile.mkdtemp(prefix="tfdeploy-fanout-"))
    try:
        terraform = realstack.terraform_binary()
        wrapper, log = counting_wrapper(root, terraform)
        env = realstack.bench_env(root, endpoint, None, wrapper)
        repo = make_repo(root, env, args.create_s)
        plain = plain_dirs(repo, root, endpoint, env)
        script = root / "cells.txt"
        script.write_text("".join(cmd + "\n" for _, cmd in plain))
        rows: dict[str, list[str] | None] = {
            "plain loop": ["sh", "-c", f"while IFS= read -r c; do sh -c \"$c\" || exit 1; done < {script}"],
            f"plain xargs -P{args.parallel}": ["sh", "-c", f"tr '\\n' '\\0' < {script} | "
                                                          f"xargs -0 -P{args.parallel} -n1 sh -c"],
            "python+botocore loop": ["sh", "-c", f"while IFS= read -r c; do {shlex.quote(sys.executable)} -c "
                                                 f"{shlex.quote(BOTOCORE_CLIENT)} && sh -c \"$c\" || exit 1; "
                                                 f"done < {script}"],
            "tfdeploy 1-by-1": ["sh", "-c", " && ".join(
                f"{shlex.quote(TFDEPLOY)} apply --tag {shlex.quote(t)} --auto-approve >/dev/null" for t in TAGS)],
            f"tfdeploy fan-out -P{args.parallel}": [TFDEPLOY, "apply", "--tag", GLOB, "--auto-approve",
                                                   "--parallel", str(args.parallel)],
            "engine-only 1-by-1": ["sh", "-c", " && ".join(
                f"{' '.join(map(shlex.quote, ENGINE_ONLY))} apply --tag {shlex.quote(t)} --auto-approve >/dev/null"
                for t in TAGS)],
            f"engine-only fan-out -P{args.parallel}": [*ENGINE_ONLY, "apply", "--tag", GLOB, "--auto-approve",
                                                      "--parallel", str(args.parallel)],
        }
        skipped = fanout_supported(repo, env)
        if skipped:
            rows[f"tfdeploy fan-out -P{args.parallel}"] = None
            rows[f"engine-only fan-out -P{args.parallel}"] = None
        samples: dict[str, list[float]] = {name: [] for name, argv in rows.items() if argv}
        processes: dict[str, list[float]] = {name: [] for name in samples}
        cpu: dict[str, list[float]] = {name: [] for name in samples}
        for trial in range(args.trials):
            for name, argv in rows.items():
                if argv is None:
                    continue
                reset(endpoint, repo, plain, env)
                log.unlink(missing_ok=True)
                cpu_before = _cpu_s()
                started = time.perf_counter()
                sh(argv, repo, env)
                samples[name].append(time.perf_counter() - started)
                cpu[name].append(_cpu_s() - cpu_before)
                processes[name].append(len(log.read_text().split()) / len(REGIONS))
                check_states(endpoint, env, name)
            print(f"trial {trial + 1}/{args.trials} done", file=sys.stderr)
        floor = statistics.median(samples[f"plain xargs -P{args.parallel}"])
        loop = statistics.median(samples["plain loop"])
        late = f" answering {args.latency_ms:g} ms late" if args.latency_ms > 0 else ""
        late += f", each cell's second resource {args.create_s:g} s to create" if args.create_s > 0 else ""
        print(f"{len(REGIONS)} Regions x 2 terraform_data, one moto server{late}, {args.trials} trials, "
              f"Terraform {terraform}")
        cores = len(os.sched_getaffinity(0))
        print(f"{'row':<26}{'median s':>10}{'x floor':>9}{'x loop':>8}{'tf procs/cell':>15}"
              f"{'CPU s':>8}{f'CPU s/{cores} cores':>17}")
        for name, values in samples.items():
            median = statistics.median(values)
            used = statistics.median(cpu[name])
            print(f"{name:<26}{median:>10.2f}{median / floor:>9.2f}{median / loop:>8.2f}"
                  f"{statistics.median(processes[name]):>15.1f}{used:>8.2f}{used / cores:>17.2f}")
        reference = statistics.median(samples["python+botocore loop"])
        print(f"tfdeploy 1-by-1 is {statistics.median(samples['tfdeploy 1-by-1']) / reference:.2f}x the "
              f"python+botocore loop ({reference / loop:.2f}x the plain loop: the least a per-command "
              "Python tool that talks to S3 costs)")
        for whole, engine, base, what in (("tfdeploy 1-by-1", "engine-only 1-by-1", loop, "plain loop"),
                                          (f"tfdeploy fan-out -P{args.parallel}",
                                           f"engine-only fan-out -P{args.parallel}", floor, "floor")):
            if whole in samples and engine in samples:
                print(decomposition(whole, statistics.median(samples[whole]),
                                    statistics.median(samples[engine]), base, what))
        if skipped:
            print(f"tfdeploy fan-out: skipped: {skipped}")
        print("every trial left 8 states with 2 resources each at research/dev-<region>/terraform.tfstate")
        print("targets: fan-out <= 1.30x floor; tfdeploy 1-by-1 <= 1.30x plain loop")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.1f} (5 min {five:.1f})"


def main_real(args: argparse.Namespace) -> None:
    """The real-provider rows (realstack.py): fan-out and drift against their plain floors."""
    import realstack
    from tfdeploy.aws import motoserver

    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = motoserver.start()
    endpoint = server.url
    root = Path(tempfile.mkdtemp(prefix="tfdeploy-fanout-real-"))
    p = args.parallel
    try:
        terraform = realstack.terraform_binary()
        wrapper, log = counting_wrapper(root, terraform)
        cache = root / "plugin-cache"
        env = realstack.bench_env(root, endpoint, args.provider_mirror, wrapper)
        tfdeploy_env = {**env, "TF_PLUGIN_CACHE_DIR": str(cache)}
        repo = make_repo(root, env, 0.0, realstack.add_aws_stack)
        refresh: list[str] = []
        saved: list[str] = []
        plain = plain_dirs(repo, root, endpoint, env, refresh, saved)
        apply_script, refresh_script = root / "cells.txt", root / "refresh.txt"
        saved_script = root / "saved.txt"
        apply_script.write_text("".join(cmd + "\n" for _, cmd in plain))
        saved_script.write_text("".join(cmd + "\n" for cmd in saved))
        refresh_script.write_text("".join(cmd + "\n" for cmd in refresh))
        exits = root / "plain" / "refresh-exits.log"

        def xargs(script: Path) -> list[str]:
            return ["sh", "-c", f"tr '\\n' '\\0' < {script} | xargs -0 -P{p} -n1 sh -c"]

        fanout = [TFDEPLOY, "apply", "--tag", GLOB, "--auto-approve", "--parallel", str(p)]
        drift = [TFDEPLOY, "drift", "--env", ENV, "--parallel", str(p), "--json"]
        first_refresh = f"plain init + refresh-only -P{p}"
        plain_saved = f"plain plan+apply -P{p}"
        one_wave = f"tfdeploy fan-out -P{p} one wave"
        rows = (f"plain xargs -P{p}", plain_saved, f"tfdeploy fan-out -P{p} cold", f"tfdeploy fan-out -P{p} warm",
                one_wave, first_refresh, f"plain refresh-only -P{p}", "tfdeploy drift first", "tfdeploy drift again")
        wall: dict[str, list[float]] = {r: [] for r in rows}
        rss: dict[str, list[float]] = {r: [] for r in rows}
        pss: dict[str, list[float]] = {r: [] for r in rows}
        procs: dict[str, list[float]] = {r: [] for r in rows}
        cpu: dict[str, list[float]] = {r: [] for r in rows}
        loads: list[str] = []
        refresh_exit2: list[int] = []
        disk: dict[str, float] = {}

        waits = {"cold": 0, "warm": 0}

        def count_waits(which: str) -> None:
            runs = repo / ".tfdeploy" / "runs"
            newest = max(runs.iterdir(), key=lambda d: d.stat().st_mtime) if runs.is_dir() else None
            if newest is not None:
                waits[which] += sum("waiting for the plugin cache lock" in f.read_text(errors="replace")
                                    for f in newest.glob("*.log"))

        def measure(row: str, argv: list[str], run_env: dict[str, str], ok: tuple[int, ...] = (0,)) -> str:
            log.unlink(missing_ok=True)
            used = _cpu_s()
            seconds, (peak, peak_pss), out = realstack.run_measured(argv, repo, run_env, ok)
            cpu[row].append(_cpu_s() - used)
            wall[row].append(seconds)
            rss[row].append(peak)
            pss[row].append(peak_pss)
            procs[row].append(len(log.read_text().split()) / len(REGIONS) if log.exists() else 0.0)
            return out

        def in_sync(out: str, row: str) -> None:
            cells = json.loads(out)["cells"]
            results = sorted({c["result"] for c in cells})
            if len(cells) != len(REGIONS) or results != ["in-sync"]:
                sys.exit(f"{row}: {len(cells)} cells, results {results}; expected {len(REGIONS)} in-sync")

        for trial in range(args.trials):
            loads.append(_load())
            reset(endpoint, repo, plain, env)
            measure(f"plain xargs -P{p}", xargs(apply_script), env)
            check_states(endpoint, env, "plain xargs", realstack.RESOURCES_PER_CELL)
            reset(endpoint, repo, plain, env)
            measure(plain_saved, xargs(saved_script), env)
            check_states(endpoint, env, plain_saved, realstack.RESOURCES_PER_CELL)
            exits.unlink(missing_ok=True)
            measure(f"plain refresh-only -P{p}", xargs(refresh_script), env)
            refresh_exit2.append(exits.read_text().split().count("2"))
            for work, _ in plain:  # the same states, fresh dirs: what a first check starts from
                shutil.rmtree(work / ".terraform", ignore_errors=True)
                (work / ".terraform.lock.hcl").unlink(missing_ok=True)
            measure(first_refresh, xargs(refresh_script), env)

            reset(endpoint, repo, plain, env)
            shutil.rmtree(cache, ignore_errors=True)
            shutil.rmtree(repo / ".tfdeploy" / "drift", ignore_errors=True)
            measure(f"tfdeploy fan-out -P{p} cold", fanout, tfdeploy_env)
            count_waits("cold")
            check_states(endpoint, env, "tfdeploy fan-out cold", realstack.RESOURCES_PER_CELL)
            in_sync(measure("tfdeploy drift first", drift, tfdeploy_env), "tfdeploy drift first")
            in_sync(measure("tfdeploy drift again", drift, tfdeploy_env), "tfdeploy drift again")
            disk = {"work dirs": realstack.disk_mb(repo / ".tfdeploy" / "work"),
                    "drift work dirs": realstack.disk_mb(repo / ".tfdeploy" / "drift"),
                    "plugin cache": realstack.disk_mb(cache),
                    "plain dirs": realstack.disk_mb(root / "plain")}

            reset(endpoint, repo, plain, env)
            measure(f"tfdeploy fan-out -P{p} warm", fanout, tfdeploy_env)
            count_waits("warm")
            check_states(endpoint, env, "tfdeploy fan-out warm", realstack.RESOURCES_PER_CELL)
            # The default rollout runs one canary Region alone before the rest (model/waves.py); the
            # floor has no canary. The same fan-out in one wave shows what the canary costs.
            reset(endpoint, repo, plain, env)
            measure(one_wave, [*fanout, "--set", "waves=*"], tfdeploy_env)
            check_states(endpoint, env, one_wave, realstack.RESOURCES_PER_CELL)
            print(f"trial {trial + 1}/{args.trials} done ({loads[-1]}, now {_load()}): "
                  + "; ".join(f"{r} {wall[r][-1]:.1f} s ({cpu[r][-1]:.1f} s CPU)" for r in rows), file=sys.stderr)

        median = {r: statistics.median(v) for r, v in wall.items()}
        floors = {f"plain xargs -P{p}": f"plain xargs -P{p}", plain_saved: f"plain xargs -P{p}",
                  f"tfdeploy fan-out -P{p} cold": f"plain xargs -P{p}",
                  f"tfdeploy fan-out -P{p} warm": f"plain xargs -P{p}", one_wave: f"plain xargs -P{p}",
                  f"plain refresh-only -P{p}": f"plain refresh-only -P{p}", first_refresh: first_refresh,
                  "tfdeploy drift first": first_refresh,
                  "tfdeploy drift again": f"plain refresh-only -P{p}"}
        cores = len(os.sched_getaffinity(0))
        print(f"{len(REGIONS)} Regions x (SSM parameter, S3 bucket, SNS topic, IAM role, 2 terraform_data) "
              f"through hashicorp/aws from {args.provider_mirror}, one moto server, {args.trials} trials, "
              f"{cores} cores, Terraform {terraform}")
        print(f"machine load at each trial's start: {'; '.join(loads)}")
        print(f"{'row':<30}{'median s':>10}{'ratio':>8}  {'of':<30}{'tf procs/cell':>14}{'peak RSS MB':>13}"
              f"{'peak PSS MB':>13}{'CPU s':>8}{'CPU ratio':>10}")
        for row in rows:
            base = floors[row]
            used = statistics.median(cpu[row])
            print(f"{row:<30}{median[row]:>10.2f}{median[row] / median[base]:>8.2f}  {base:<30}"
                  f"{statistics.median(procs[row]):>14.1f}{statistics.median(rss[row]):>13.0f}"
                  f"{statistics.median(pss[row]):>13.0f}{used:>8.1f}{used / statistics.median(cpu[base]):>10.2f}")
        print("per trial, wall s: " + "; ".join(f"{r} {' '.join(f'{v:.1f}' for v in wall[r])}" for r in rows))
        for row in (f"tfdeploy fan-out -P{p} cold", f"tfdeploy fan-out -P{p} warm", one_wave):
            print(f"{row}: {median[row] / median[plain_saved]:.2f}x {plain_saved} (the same 3 Terraform "
                  f"processes per cell: init, plan -out, apply of the saved plan)")
        print(f"cells that waited for the plugin cache lock: {waits} (fan-out rows, all trials)")
        print("peak RSS counts the provider binary's pages once per process; PSS shares them out (the memory "
              "the tree really holds)")
        print("disk after a fan-out and two drift runs: " + ", ".join(f"{k} {v:.1f} MB" for k, v in disk.items())
              + " (du -s: a provider installed from a mirror is a symlink to it)")
        print(f"plain refresh-only plans that exited 2 (changes) on freshly applied cells: {refresh_exit2} "
              f"of {len(REGIONS)} per trial; every tfdeploy drift said {len(REGIONS)} in-sync")
        print(f"every apply trial left {len(REGIONS)} states with {realstack.RESOURCES_PER_CELL} resources each")
        print("targets: fan-out <= 1.10x the plain xargs floor; drift <= 1.15x the plain refresh-only floor")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
