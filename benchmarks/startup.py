"""Start-up cost of `tfdeploy resolve` next to a bare interpreter, measured side by side.

Prints median wall times over N interleaved runs and their ratio (machines here are noisy, so the
ratio is the figure to compare across runs).

    python benchmarks/startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from sidebyside import as_installed, measure, report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "toolkit"))
from tfdeploy.adopt.example import write_example_repo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    as_installed()
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
        samples = measure(commands, args.runs, root)
    print(report(samples, "python -c pass", "x python"))


if __name__ == "__main__":
    main()
