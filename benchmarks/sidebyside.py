"""Shared by the benchmarks: run commands interleaved, report medians and ratios to a baseline.

Interleaving (a, b, c, a, b, c, ...) lets drift on a noisy machine hit every command alike, so
the ratios are the figures to compare between runs.
"""

from __future__ import annotations

import compileall
import statistics
import subprocess
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "toolkit" / "tfdeploy"


def as_installed() -> None:
    """Compile tfdeploy's bytecode, as `pip install` does: from a source checkout run with
    PYTHONDONTWRITEBYTECODE (some machines set it), every command would compile its modules
    again, a cost no installed tfdeploy pays."""
    compileall.compile_dir(PACKAGE, quiet=1)


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def measure(commands: dict[str, list[str]], runs: int, cwd: Path) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argv in commands.items():
            samples[name].append(timed(argv, cwd))
    return samples


def report(samples: dict[str, list[float]], baseline: str, label: str) -> str:
    base = statistics.median(samples[baseline])
    width = max(len(name) for name in samples) + 2
    lines = [f"{'command':<{width}}{'median ms':>10}{label:>10}"]
    for name, values in samples.items():
        median = statistics.median(values)
        lines.append(f"{name:<{width}}{median * 1000:>10.1f}{median / base:>10.1f}")
    return "\n".join(lines)
