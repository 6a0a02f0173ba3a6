"""In what order a fleet's cells run, and how many at once (pure).

The global cell of an env and team holds what its Regions build on (account-level roles,
baselines), so it runs first and its regional cells wait for it; they are skipped if it fails.
Plan and apply go in the waves of model/waves.py (default: global, one canary Region, the rest),
the same order a release's CodeBuild batch runs: each cell waits for every cell of its group's
wave before, and is skipped if one of them did not succeed.
Destroy runs the other way round: the Regions go before the global cell they depend on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..model.tags import Tag
from ..model.waves import DEFAULT_MAX_PARALLEL_BUILDS, DEFAULT_WAVES, release_waves


# What one cell in flight holds: Terraform with the AWS provider's schema (~300 MB) plus the
# provider process itself (about as much); measured by benchmarks/fanout.py (peak RSS of the
# process tree / parallel cells). The reserve is tfdeploy, the OS and the build's own tools.
MB_PER_CELL = 600
RESERVED_MB = 1024


def available_memory_mb() -> int | None:
    """Memory this process may use, in MB: the smaller of what the machine has available now and
    the container's cgroup limit (CodeBuild runs builds in one); None when neither is readable."""
    found: list[int] = []
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) // 1024)
    except (OSError, ValueError, IndexError):
        pass
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = open(limit, encoding="ascii").read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" or a huge number: no limit
            found.append(int(text) // (1024 * 1024))
    return min(found) if found else None


def default_parallel(cpus: int | None = None, memory_mb: int | None = -1) -> int:
    """Twice the CPUs, between 2 and 8, and no more cells than fit in memory.

    CPUs: a cell's Terraform mostly waits on AWS APIs, so two per core keeps the machine busy;
    past 8, AWS API throttling per account costs more than the overlap gains. Memory: each cell
    in flight holds MB_PER_CELL (Terraform and the AWS provider), after RESERVED_MB for the
    rest, so a default fan-out never swaps: a 4 GB CodeBuild small (2 vCPUs) runs 4, a 2 GB
    machine 1. `memory_mb`: -1 reads it (available_memory_mb()); None: unknown, CPUs alone decide."""
    by_cpu = max(2, min(8, 2 * (cpus or os.cpu_count() or 1)))
    available = available_memory_mb() if memory_mb == -1 else memory_mb
    if available is None:
        return by_cpu
    return max(1, min(by_cpu, (available - RESERVED_MB) // MB_PER_CELL))


@dataclass(frozen=True)
class Step:
    tag: Tag
    after: tuple[str, ...]  # cells that must succeed before this one starts
    wave: int = 0  # position of the cell's wave in its env+team group (0: the first)


def _group(tag: Tag) -> tuple[str, str]:
    return (tag.env, tag.team)


def schedule(tags: tuple[Tag, ...] | list[Tag], action: str, waves: tuple[str, ...] = DEFAULT_WAVES,
             cap: int = DEFAULT_MAX_PARALLEL_BUILDS) -> list[Step]:
    """Steps in start order with their prerequisites; `destroy` reverses global-first, every
    other action goes in waves."""
    if action != "destroy":
        steps = []
        for _group_key, group in release_waves(tags, waves, cap):
            before: tuple[str, ...] = ()
            for index, wave in enumerate(group):
                steps.extend(Step(tag, before, index) for tag in wave)
                before = tuple(tag.cell for tag in wave)
        return steps
    # Destroy, stable: env, team, the Regions (by code) before their global cell, which waits for them.
    ordered = sorted(tags, key=lambda t: (t.env, t.team, t.region is None, t.region or ""))
    steps = []
    for tag in ordered:
        same = [o for o in ordered if o is not tag and _group(o) == _group(tag)]
        after = tuple(o.cell for o in same if o.region is not None) if tag.region is None else ()
        steps.append(Step(tag, after))
    return steps
