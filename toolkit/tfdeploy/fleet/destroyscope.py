"""Which selected cells a `destroy --tag <version>` may touch: those the ledger says run that version.

A destroy plans with the tagged code but removes whatever the cell's namespace holds, so
`destroy --tag 'dev_*/research/1.1'` would also tear down a cell that has since moved to 1.3.
The ledger's last successful apply of each cell (fleet/status.py `cell_status`) decides:

- it was the selected version: destroyed;
- it was another version: skipped, with the version it runs (`--any-version` destroys it);
- none (never applied, or destroyed since): destroyed; there is nothing of another version to
  lose, and a destroy of an empty namespace changes nothing.

The pure choice is `choose`; `deployed_versions` reads the ledger for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..model.settings import Settings
from ..model.tags import Tag


@dataclass(frozen=True)
class Skip:
    tag: Tag
    runs: str  # the version of the cell's last successful apply
    kept_for: tuple[str, ...] = ()  # a global cell: its Regions skipped here, which still run on it

    @property
    def reason(self) -> str:
        if self.kept_for:
            return (f"{self.tag.cell} runs {self.runs}, but its Regions {', '.join(self.kept_for)} run another "
                    "version and stay; not destroyed (--any-version destroys it)")
        return (f"{self.tag.cell} runs {self.runs} (its last successful apply), not {self.tag.version}; "
                "not destroyed (--any-version destroys it)")


def choose(tags: Sequence[Tag], running: Mapping[str, str]) -> tuple[list[Tag], list[Skip]]:
    """The tags to destroy and the cells skipped because they run another version (pure).

    `running`: cell -> version of its last successful apply (cells with none are absent).
    A global cell whose Regions are skipped stays too: they still build on it."""
    chosen, skipped = [], []
    for tag in tags:
        runs = running.get(tag.cell)
        if runs is None or runs == tag.version:
            chosen.append(tag)
        else:
            skipped.append(Skip(tag, runs))
    for tag in [t for t in chosen if t.region is None]:
        kept = tuple(s.tag.cell for s in skipped
                     if s.tag.region is not None and (s.tag.env, s.tag.team) == (tag.env, tag.team))
        if kept:
            chosen.remove(tag)
            skipped.append(Skip(tag, running.get(tag.cell, tag.version), kept))
    return chosen, skipped


def deployed_versions(tags: Iterable[Tag], settings: Settings, environ: Mapping[str, str],
                      cache_dir: Path | None) -> dict[str, str]:
    """cell -> the version of its last successful apply, for the cells of `tags`, from the ledger
    (raises LedgerError when it cannot be read: then no one can say what a cell runs)."""
    from .ledger import latest
    from .status import cell_status

    tags = list(tags)
    envs = sorted({t.env for t in tags})
    teams = sorted({t.team for t in tags})
    records = latest(settings, environ, envs, teams, cache_dir=cache_dir)
    found = {}
    for tag in tags:
        deployed = cell_status((tag.env, tag.scope_name, tag.team), records.get(tag.cell, []), None).deployed
        if deployed is not None:
            found[tag.cell] = deployed.version
    return found
