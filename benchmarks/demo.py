"""Wall and CPU time of `tfdeploy demo` (example repo, sandbox, release to global + 4 Regions as a
fan-out, status, promote, the qa fan-out, the HTML report), step by step, the median of N runs,
against the 20 s target for a 2-core machine.

Each step's wall and CPU seconds come from the demo itself (`demo --json`: CPU is the demo's
process and every process it waited for in the step: the tfdeploy command and its Terraform
processes); the sandbox server's CPU is its own line. The totals leave out the step that only
`--json` runs (reading the fleet back for the document). On a shared machine the wall time moves
with the load, the CPU time much less: the load average is printed with them, and the CPU time
over the cores is the least wall time any machine with that many idle cores could take.

    python benchmarks/demo.py [--runs 3] [--priority] [--terraform PATH]

`--priority` (Linux, as root) runs the demo in its own scheduling group at the highest priority:
on a machine shared with other work, the nearest to an idle one this script can get.
`--terraform` picks the Terraform the commands run (TFDEPLOY_TERRAFORM; default: as a user's,
`terraform` on PATH, else the embedded `tfdeploy-terraform`).
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
from pathlib import Path

from sidebyside import as_installed

TARGET_S = 20.0
TARGET_CPUS = 2
JSON_ONLY = "read back (--json)"  # the step only `demo --json` runs


def load() -> float:
    return os.getloadavg()[0]


def _raise_children(parent: int, stop: threading.Event) -> None:
    """Put the children of `parent` at the highest priority too: the sandbox server starts in a
    session (so a scheduling group) of its own."""
    while not stop.wait(0.02):
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == parent:
                    (stat.parent / "autogroup").write_text("-19")
            except (OSError, ValueError, IndexError):
                continue


def run_once(workspace: Path, priority: bool) -> dict:
    """One `tfdeploy demo --json` (not a terminal: lines); its document plus the wall and CPU
    seconds measured from outside."""
    exe = str(Path(sys.executable).parent / "tfdeploy")
    argv = [exe, "demo", "--dir", str(workspace), "--json"]
    if priority:  # a new session is a new autogroup; its nice value weighs it against the others
        argv = ["setsid", "sh", "-c", 'echo -19 > /proc/$$/autogroup && exec "$@"', "demo", *argv]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            text=True)
    stop = threading.Event()
    if priority:
        threading.Thread(target=_raise_children, args=(proc.pid, stop), daemon=True).start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - started
    stop.set()
    if proc.returncode != 0:
        raise SystemExit(f"tfdeploy demo exited {proc.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report = json.loads(out)
    report.setdefault("steps", [])  # a tfdeploy from before the demo timed its steps: totals only
    report.setdefault("sandbox_cpu_seconds", None)
    extra = [s for s in report["steps"] if s["step"] == JSON_ONLY]
    report["wall"] = wall - sum(s["seconds"] for s in extra)
    report["cpu"] = ((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
                     - sum(s["cpu_seconds"] for s in extra))
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--priority", action="store_true",
                        help="run the demo at the highest scheduling priority (Linux, root)")
    parser.add_argument("--terraform", metavar="PATH", help="the Terraform the commands run")
    args = parser.parse_args()
    as_installed()
    if args.terraform:
        os.environ["TFDEPLOY_TERRAFORM"] = args.terraform
    terraform = os.environ.get("TFDEPLOY_TERRAFORM") or shutil.which("terraform") or "tfdeploy-terraform (embedded)"
    cpus = os.cpu_count() or 1
    loads = [load()]
    print(f"tfdeploy demo, {args.runs} runs on {cpus} CPUs"
          + (", at the highest scheduling priority" if args.priority else "")
          + f"; Terraform: {terraform}; load average {loads[0]:.1f} at the start")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(1, args.runs + 1):
            runs.append(run_once(Path(tmp) / f"run{n}", args.priority))
            loads.append(load())
            print(f"run {n}: wall {runs[-1]['wall']:.1f} s, cpu {runs[-1]['cpu']:.1f} s "
                  f"(load average {loads[-1]:.1f})")

    names = [s["step"] for s in runs[0]["steps"] if s["step"] != JSON_ONLY]
    def median_of(step: str, key: str) -> float:
        return statistics.median(next(s[key] for s in r["steps"] if s["step"] == step) for r in runs)

    print(f"\n{'step (median of ' + str(len(runs)) + ')':<24}{'wall s':>8}{'cpu s':>8}")
    for name in names:
        print(f"{name:<24}{median_of(name, 'seconds'):>8.2f}{median_of(name, 'cpu_seconds'):>8.2f}")
    sandbox = [r["sandbox_cpu_seconds"] for r in runs if r["sandbox_cpu_seconds"] is not None]
    if sandbox:
        print(f"{'sandbox server (moto)':<24}{'':>8}{statistics.median(sandbox):>8.2f}")
    wall = statistics.median(r["wall"] for r in runs)
    cpu = statistics.median(r["cpu"] for r in runs)
    print(f"{'total':<24}{wall:>8.2f}{cpu:>8.2f}")

    during = f"load average {min(loads):.1f}-{max(loads):.1f} over the runs, {cpus} CPUs"
    verdict = "met" if wall < TARGET_S else "not met"
    print(f"\n< {TARGET_S:.0f} s target: {verdict} at this load (median wall {wall:.1f} s = "
          f"{wall / TARGET_S:.2f} x the target; {during}"
          + (", the demo at the highest priority" if args.priority else "") + ")")
    floor = cpu / TARGET_CPUS
    print(f"CPU bound: {cpu:.1f} CPU seconds over {TARGET_CPUS} idle cores is at least {floor:.1f} s of wall "
          f"({floor / TARGET_S:.2f} x the target); the rest of an idle machine's wall is waiting: the steps "
          f"one after another, global before its Regions, the sandbox's answers")


if __name__ == "__main__":
    main()
