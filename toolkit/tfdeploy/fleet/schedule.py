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


def default_parallel(cpus: int | None = None) -> int:
    """Twice the CPUs, between 2 and 8: a cell's Terraform mostly waits on AWS APIs, so two per
    core keeps the machine busy; past 8, each Terraform and provider process (hundreds of MB)
    and AWS API throttling per account cost more than the overlap gains."""
    return max(2, min(8, 2 * (cpus or os.cpu_count() or 1)))


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
