"""Where a fan-out's wall time goes, on the real-provider stack: Terraform processes, or the work
tfdeploy does between them.

Runs, round-robin for `--trials`, each apply row from an empty moto and its drift row after it:
  plain xargs -P4               init + `apply -auto-approve` per Region, four at a time (the floor
                                of benchmarks/fanout.py: no saved plan, nothing checked between)
  plain plan+apply -P4          init, plan -out, apply of the saved plan per Region, four at a
                                time (the same Terraform work as tfdeploy's)
  plain init+refresh-only -P4   then, in fresh plain dirs, init + `plan -refresh-only`
  tfdeploy fan-out -P4          `apply --tag GLOB --auto-approve --parallel 4` (plugin cache warm
                                after the first trial, as a fleet's runner has it)
  tfdeploy drift first          then `drift --env dev --parallel 4`, no drift work dirs yet
behind a wrapper that logs when each Terraform process starts and ends, in which work dir. Prints
per row (medians): wall; Terraform busy time (the union of the intervals with at least one
Terraform running); the mean number of Terraforms running while any runs (the parallelism
reached, at most 4); per cell, the time from the row's start to its first Terraform, the gaps
between its Terraforms (tfdeploy's checks, records and scheduling), and the time after its last;
the Terraform seconds and CPU seconds per command (init, plan, apply, ...), and the CPU of the
rest (tfdeploy's Python, git, the moto server); then each trial's figures.

    python benchmarks/cell_timeline.py --provider-mirror /opt/tf-plugins [--trials 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "toolkit"))
import fanout  # noqa: E402
import realstack  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def timing_wrapper(root: Path, terraform: str) -> tuple[str, Path]:
    """A `terraform` that logs `start <epoch s> <pid> <work dir> <command>` before the real one and
`end ...` after it, with its CPU ticks (user, system)."""
    log = root / "terraform-timeline.log"
    wrapper = root / "terraform-timed"
    # The wrapper's cutime and cstime (/proc/PID/stat fields 16 and 17, in clock ticks): the CPU of
    # the Terraform it waited for, and of the providers that Terraform reaped.
    wrapper.write_text(
        "#!/bin/bash\n"
        f'echo "start $(date +%s.%N) $$ $PWD $1" >> "{log}"\n'
        f'"{terraform}" "$@"\n'
        "rc=$?\n"
        "read -r -a stat < /proc/$$/stat\n"
        f'echo "end $(date +%s.%N) $$ $PWD $1 ${{stat[15]}} ${{stat[16]}}" >> "{log}"\n'
        "exit $rc\n")
    wrapper.chmod(0o755)
    return str(wrapper), log


def intervals(log: Path) -> list[tuple[float, float, str, str, float]]:
    """(start, end, work dir, command, CPU s) of every Terraform process in the log (pure but for reading)."""
    started: dict[str, tuple[float, str, str]] = {}
    out = []
    for line in log.read_text().splitlines():
        fields = line.split()
        what, stamp, pid = fields[:3]
        if what == "start":
            started[pid] = (float(stamp), fields[3], fields[4] if len(fields) > 4 else "")
        elif what == "end" and pid in started:
            begin, work, command = started.pop(pid)
            cpu = sum(int(t) for t in fields[5:7]) / TICKS if len(fields) >= 7 else 0.0
            out.append((begin, float(stamp), work, command, cpu))
    return out


def region_of(work: str) -> str:
    return next((r for r in fanout.REGIONS if r in work), work)


def analyse(spans: list[tuple[float, float, str, str, float]], t0: float, t1: float, cpu: float) -> dict[str, float]:
    """The figures of one run (pure): busy time, parallelism, per-cell lead/gaps/tail, per command;
    `cpu`: the CPU seconds of the whole row (its processes, and the moto server's)."""
    events = sorted([(s[0], 1) for s in spans] + [(s[1], -1) for s in spans])
    busy = weighted = 0.0
    running, last = 0, t0
    for stamp, step in events:
        if running:
            busy += stamp - last
            weighted += running * (stamp - last)
        running += step
        last = stamp
    cells: dict[str, list[tuple[float, float]]] = defaultdict(list)
    per_command: dict[str, float] = defaultdict(float)
    per_command_cpu: dict[str, float] = defaultdict(float)
    for start, end, work, command, used in spans:
        cells[region_of(work)].append((start, end))
        per_command[command] += end - start
        per_command_cpu[command] += used
    leads, gaps, tails = [], [], []
    for runs in cells.values():
        runs.sort()
        leads.append(runs[0][0] - t0)
        gaps.append(sum(max(0.0, b[0] - a[1]) for a, b in zip(runs, runs[1:])))
        tails.append(t1 - runs[-1][1])
    figures = {"wall": t1 - t0, "terraform busy": busy, "mean running": weighted / busy if busy else 0.0,
               "first start (min)": min(leads), "cell gaps (mean)": statistics.mean(gaps),
               "cell gaps (max)": max(gaps), "after last end (min)": min(tails),
               "tf procs": float(len(spans)), "CPU s (all)": cpu,
               "CPU s (Terraform)": sum(per_command_cpu.values())}
    figures["CPU s (the rest)"] = cpu - figures["CPU s (Terraform)"]
    figures.update({f"tf s: {c}": s for c, s in sorted(per_command.items())})
    figures.update({f"tf CPU s: {c}": s for c, s in sorted(per_command_cpu.items())})
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider-mirror", type=Path, required=True)
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=4)
    args = parser.parse_args()
    if not (args.provider_mirror / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        sys.exit(f"no hashicorp/aws in {args.provider_mirror}")
    from tfdeploy.aws import motoserver
    import logging
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = motoserver.start()
    root = Path(tempfile.mkdtemp(prefix="tfdeploy-timeline-"))
    p = args.parallel
    try:
        wrapper, log = timing_wrapper(root, realstack.terraform_binary())
        endpoint = server.url
        env = realstack.bench_env(root, endpoint, args.provider_mirror, wrapper)
        tfdeploy_env = {**env, "TF_PLUGIN_CACHE_DIR": str(root / "plugin-cache")}
        repo = fanout.make_repo(root, env, 0.0, realstack.add_aws_stack)
        saved: list[str] = []
        refresh: list[str] = []
        plain = fanout.plain_dirs(repo, root, endpoint, env, refresh, saved)
        script, refresh_script = root / "saved.txt", root / "refresh.txt"
        direct_script = root / "direct.txt"
        script.write_text("".join(cmd + "\n" for cmd in saved))
        direct_script.write_text("".join(cmd + "\n" for _, cmd in plain))
        refresh_script.write_text("".join(cmd + "\n" for cmd in refresh))

        def xargs(path: Path) -> list[str]:
            return ["sh", "-c", f"tr '\\n' '\\0' < {path} | xargs -0 -P{p} -n1 sh -c"]

        def fresh_plain_dirs() -> None:  # the states stay: what a first drift check starts from
            for work, _ in plain:
                shutil.rmtree(work / ".terraform", ignore_errors=True)
                (work / ".terraform.lock.hcl").unlink(missing_ok=True)

        # Each apply row from an empty moto, then its drift row (if any) over the states it left.
        pairs = (((f"plain xargs -P{p}", xargs(direct_script), env), None),
                 ((f"plain plan+apply -P{p}", xargs(script), env),
                  (f"plain init+refresh-only -P{p}", xargs(refresh_script), env)),
                 ((f"tfdeploy fan-out -P{p}", [fanout.TFDEPLOY, "apply", "--tag", fanout.GLOB, "--auto-approve",
                                               "--parallel", str(p)], tfdeploy_env),
                  ("tfdeploy drift first", [fanout.TFDEPLOY, "drift", "--env", fanout.ENV, "--parallel", str(p),
                                            "--json"], tfdeploy_env)))
        rows = [row for pair in pairs for row, _, _ in filter(None, pair)]
        results: dict[str, list[dict[str, float]]] = {row: [] for row in rows}

        def timed(row: str, argv: list[str], run_env: dict[str, str]) -> None:
            log.unlink(missing_ok=True)
            used = fanout._cpu_s()
            t0 = time.time()
            realstack.run_measured(argv, repo, run_env, (0, 2) if "drift" in row else (0,))
            t1 = time.time()
            results[row].append(analyse(intervals(log), t0, t1, fanout._cpu_s() - used))

        for trial in range(args.trials):
            for (apply_row, apply_argv, apply_env), drift in pairs:
                fanout.reset(endpoint, repo, plain, env)
                timed(apply_row, apply_argv, apply_env)
                fanout.check_states(endpoint, env, apply_row, realstack.RESOURCES_PER_CELL)
                fresh_plain_dirs()
                if drift is None:
                    continue
                drift_row, drift_argv, drift_env = drift
                shutil.rmtree(repo / ".tfdeploy" / "drift", ignore_errors=True)
                timed(drift_row, drift_argv, drift_env)
            print(f"trial {trial + 1}/{args.trials} done ({fanout._load()})", file=sys.stderr)
        names = list(dict.fromkeys(k for runs in results.values() for r in runs for k in r))
        print(f"{len(fanout.REGIONS)} Regions, real hashicorp/aws against moto, {args.trials} trials, medians, "
              f"{len(os.sched_getaffinity(0))} cores")
        print(f"{'figure (s unless said)':<28}" + "".join(f"{row:>30}" for row in rows))
        for name in names:
            print(f"{name:<28}" + "".join(
                f"{statistics.median([r.get(name, 0.0) for r in results[row]]):>30.2f}" for row in rows))
        print("each trial (the first has a cold plugin cache, the others a warm one):")
        for name in names:
            print(f"{name:<28}" + "".join(
                f"{' '.join(f'{r.get(name, 0.0):.1f}' for r in results[row]):>30}" for row in rows))
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
