"""Start-up cost of `tfdeploy resolve` next to a bare interpreter, measured side by side.

Prints median wall times over N interleaved runs and their ratio (machines here are noisy, so the
ratio is the figure to compare across runs).

    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "toolkit"))
from tfdeploy.example import write_example_repo  # noqa: E402


def timed(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = str(Path(sys.executable).parent / "tfdeploy")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / ".git").mkdir()
        write_example_repo(root)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "tfdeploy --help": [exe, "--help"],
            "tfdeploy resolve": [exe, "resolve", "--tag", "dev_us-east-1/research/1.0"],
            "tfdeploy resolve --json": [exe, "resolve", "--tag", "dev_global/research/1.0", "--json"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):  # interleaved so drift hits every command alike
            for name, argv in commands.items():
                samples[name].append(timed(argv, root))
    base = statistics.median(samples["python -c pass"])
    print(f"{'command':<26}{'median ms':>10}{'x python':>10}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<26}{median * 1000:>10.1f}{median / base:>10.1f}")


if __name__ == "__main__":
    main()
