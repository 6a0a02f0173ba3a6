"""Waves: the order a release's cells roll out in, shared by the local fan-out (fleet/schedule.py)
and the CodeBuild batch build graph (delivery/batch.py). Pure.

A release of one env and team rolls out wave by wave: by default the global cell, then one canary
Region, then the rest. A wave starts only when every cell of the wave before it succeeded, so a
failing canary stops the other Regions (the cells of its own wave still finish).

The `waves` setting lists the waves in order; each entry is one of:
- `global`: the global cell;
- a number N: the next N Regions (in Region-code order) not placed yet;
- Region codes separated by spaces (`"us-east-1 eu-west-1"`): those Regions, when selected;
- `*`: every Region not placed yet (only as the last entry).
Default `["global", "1", "*"]`. Regions no entry places go in a final wave, so no selected cell is
ever dropped. Empty waves (nothing selected) vanish.

A wave of more cells than `max_parallel_builds` is split into sub-waves of at most that many, each
after the one before: CodeBuild starts every build of a wave whose dependencies are done at once
(and large graphs fault when 50+ builds become ready together), so the cap is what bounds the
builds in flight, on CodeBuild and on a laptop alike.
"""

from __future__ import annotations

import re
from typing import Iterable, Sequence, TypeVar

from ..errors import ConfigError
from .regions import REGION_SHAPE
from .tags import Tag

T = TypeVar("T")
DEFAULT_WAVES: tuple[str, ...] = ("global", "1", "*")
DEFAULT_MAX_PARALLEL_BUILDS = 20
MAX_PARALLEL_BUILDS_CAP = 50  # at most this many builds become ready at once (see above)
_COUNT_RE = re.compile(r"[1-9][0-9]{0,3}")


def check_waves(entries: Sequence[str], where: str) -> tuple[str, ...]:
    """The `waves` setting validated and normalised (one space between Region codes)."""
    if not entries:
        raise ConfigError(f"{where}: list at least one wave, e.g. [\"global\", \"1\", \"*\"]")
    out: list[str] = []
    for i, raw in enumerate(entries):
        entry = " ".join(raw.split())
        if entry == "*":
            if i != len(entries) - 1:
                raise ConfigError(f"{where}: '*' (the rest of the Regions) must be the last wave")
        elif entry != "global" and not _COUNT_RE.fullmatch(entry):
            bad = [r for r in entry.split(" ") if not REGION_SHAPE.fullmatch(r)]
            if not entry or bad:
                raise ConfigError(f"{where}: wave {raw!r} is not 'global', a number of Regions, "
                                  "Region codes separated by spaces, or '*'")
        out.append(entry)
    if out.count("global") > 1 or ("global" in out and out[0] != "global"):
        raise ConfigError(f"{where}: 'global' must be the first wave, once (the global cell holds "
                          "what its Regions build on)")
    return tuple(out)


def check_max_parallel_builds(value: object, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARALLEL_BUILDS_CAP:
        raise ConfigError(f"{where}: must be a whole number from 1 to {MAX_PARALLEL_BUILDS_CAP} "
                          "(builds of one wave in flight at once)")
    return value


def check_bake_seconds(value: object, where: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 86400:
        raise ConfigError(f"{where}: must be a whole number of seconds from 0 to 86400")
    return value


def group_waves(tags: Iterable[Tag], waves: Sequence[str] = DEFAULT_WAVES,
                cap: int = DEFAULT_MAX_PARALLEL_BUILDS) -> list[list[Tag]]:
    """One release group's tags (one env and team) in waves: lists of tags, in order, none empty,
    none longer than `cap`."""
    tags = list(tags)
    glob = [t for t in tags if t.region is None]
    regions = sorted((t for t in tags if t.region is not None), key=lambda t: t.region or "")
    placed: set[str] = set()
    out: list[list[Tag]] = []
    for entry in waves:
        if entry == "global":
            wave = glob
        elif entry == "*":
            wave = [t for t in regions if t.cell not in placed]
        elif _COUNT_RE.fullmatch(entry):
            wave = [t for t in regions if t.cell not in placed][:int(entry)]
        else:
            named = set(entry.split(" "))
            wave = [t for t in regions if t.region in named and t.cell not in placed]
        placed.update(t.cell for t in wave)
        out.append(list(wave))
    if "global" not in waves and glob:
        out.insert(0, glob)  # the global cell holds what its Regions build on: never after them
        placed.update(t.cell for t in glob)
    out.append([t for t in regions if t.cell not in placed])
    return cap_waves(out, cap)


def cap_waves(waves: Sequence[Sequence[T]], cap: int) -> list[list[T]]:
    """Waves split into sub-waves of at most `cap`, in order; empty waves dropped."""
    split: list[list[T]] = []
    for wave in waves:
        split.extend(list(wave[i:i + cap]) for i in range(0, len(wave), cap))
    return split


def release_waves(tags: Iterable[Tag], waves: Sequence[str] = DEFAULT_WAVES,
                  cap: int = DEFAULT_MAX_PARALLEL_BUILDS) -> list[tuple[tuple[str, str], list[list[Tag]]]]:
    """Every (env, team) group of `tags`, sorted, with its waves."""
    groups: dict[tuple[str, str], list[Tag]] = {}
    for tag in tags:
        groups.setdefault((tag.env, tag.team), []).append(tag)
    return [(key, group_waves(groups[key], waves, cap)) for key in sorted(groups)]
