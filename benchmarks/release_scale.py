"""A release's batch at scale, on this machine, with a Terraform stand-in that sleeps (no AWS).

The local batch runner (delivery/batch_runner.py, what `tfdeploy buildspec run` and `pipeline run`
use) runs a build graph of N cells in the default waves (global, one canary Region, the rest),
each wave split by the cap (max_parallel_builds), each build a real bash shell in its own copy of
the source whose build phase runs `terraform plan` from a stand-in that sleeps CELL_S seconds.

Printed per (cells, cap): wall time, the ideal `sum over waves of ceil(wave/cap) x CELL_S`, their
ratio (target <= 1.1), scheduling overhead per cell ((wall - ideal) / cells; target < 20 ms) and
the peak of builds in flight (never above the cap).

    python benchmarks/release_scale.py [--cell-s 2] [--cells 10,100,500] [--caps 20,50]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tfdeploy.delivery.batch import ideal_wall_s
from tfdeploy.delivery.batch_runner import Batch, Task, run_batch
from tfdeploy.delivery.buildspec_runner import parse_buildspec
from tfdeploy.model.waves import cap_waves

STANDIN = '#!/bin/sh\n# Terraform stand-in: the time of a cell, no work, no AWS.\nsleep "$CELL_S"\n'


def graph(cells: int, cap: int) -> tuple[Batch, list[int]]:
    """The default waves of a release of `cells` cells (global, 1 canary, the rest), capped."""
    names = [f"cell_{i:04d}" for i in range(cells)]
    waves = cap_waves([names[:1], names[1:2], names[2:]], cap)
    tasks, before = [], ()
    for index, wave in enumerate(waves):
        tasks += [Task(n, {"TFDEPLOY_TAG": f"dev_{n}/research/1.1", "TFDEPLOY_WAVE": str(index)}, before)
                  for n in wave]
        before = tuple(wave)
    return Batch(tuple(tasks)), [len(w) for w in waves]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cell-s", type=float, default=2.0)
    parser.add_argument("--cells", default="10,100,500")
    parser.add_argument("--caps", default="20,50")
    args = parser.parse_args(argv)
    ok = True
    print(f"{'cells':>5} {'cap':>4} {'waves':>5} {'wall s':>8} {'ideal s':>8} {'ratio':>6} "
          f"{'overhead/cell ms':>17} {'peak':>5}  result")
    with tempfile.TemporaryDirectory(prefix="tfdeploy-release-scale-") as tmp:
        root = Path(tmp)
        src = root / "src"
        src.mkdir()
        (src / "main.tf").write_text('terraform {}\n')
        standin = root / "terraform"
        standin.write_text(STANDIN)
        standin.chmod(0o755)
        spec = parse_buildspec({"version": 0.2, "phases": {"build": {"commands": ['"$TERRAFORM" plan']}}})
        for cells in (int(c) for c in args.cells.split(",")):
            for cap in (int(c) for c in args.caps.split(",")):
                batch, sizes = graph(cells, cap)
                outcome = run_batch(spec, batch, src, root / f"work-{cells}-{cap}", parallel=cap,
                                    overrides={"TERRAFORM": str(standin), "CELL_S": str(args.cell_s)},
                                    base_env={"PATH": "/usr/bin:/bin"})
                ideal = ideal_wall_s(sizes, cap, args.cell_s)
                ratio = outcome.wall_s / ideal
                per_cell_ms = (outcome.wall_s - ideal) / cells * 1000
                good = outcome.ok and outcome.peak <= cap and ratio <= 1.1 and per_cell_ms < 20
                ok = ok and good
                print(f"{cells:>5} {cap:>4} {len(sizes):>5} {outcome.wall_s:>8.2f} {ideal:>8.2f} {ratio:>6.3f} "
                      f"{per_cell_ms:>17.1f} {outcome.peak:>5}  {'ok' if good else 'MISSED'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
