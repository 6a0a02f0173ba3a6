"""Wall time of `tfdeploy demo` (example repo, sandbox, release to global + 4 Regions as a fan-out,
status, promote, the qa fan-out, the HTML report), the median of N runs, beside its CPU time and
the 20 s target for a 2-core machine.

CPU time (the demo's processes: tfdeploy, Terraform, moto) is printed too: on a shared machine
the wall time moves with the load, the CPU time much less; the load average is printed with it.

    python benchmarks/demo.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sidebyside import as_installed

TARGET_S = 20.0


def run_once(workspace: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of one `tfdeploy demo`, its output discarded (not a terminal: lines)."""
    exe = str(Path(sys.executable).parent / "tfdeploy")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([exe, "demo", "--dir", str(workspace)], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    as_installed()
    print(f"tfdeploy demo, {args.runs} runs on {os.cpu_count()} CPUs "
          f"(load average {os.getloadavg()[0]:.1f} at the start)")
    print(f"{'run':<6}{'wall s':>8}{'cpu s':>8}")
    walls, cpus = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(1, args.runs + 1):
            wall, cpu = run_once(Path(tmp) / f"run{n}")
            walls.append(wall)
            cpus.append(cpu)
            print(f"{n:<6}{wall:>8.1f}{cpu:>8.1f}")
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(f"median wall {wall:.1f} s = {wall / TARGET_S:.2f} x the {TARGET_S:.0f} s target; "
          f"median cpu {cpu:.1f} s ({cpu / (os.cpu_count() or 1):.1f} s per CPU); "
          f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
