"""Which version a rollback goes back to, from a cell's ledger history (pure).

The current deployment is the cell's last successful apply, unless a successful destroy came after
it (then nothing is deployed). The target is the newest successful apply before it of another
version; the ledger is read as an undo stack, so rolling back twice goes back two versions rather
than flipping between two: a version a rollback left (`details.rollback_from`) no longer counts as
a place to return to, until it is applied again after that rollback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..errors import ValidationError
from .ledger import Record, newest_first
from .status import version_key

# The key in a rollback apply's ledger record `details` naming the version it replaced.
ROLLBACK_FROM = "rollback_from"


@dataclass(frozen=True)
class Rollback:
    cell: str
    current: Record  # the successful apply that is deployed now
    version: str  # the version to go back to
    target: Record | None  # its newest successful apply before `current` (None: never succeeded here)

    @property
    def details(self) -> dict[str, str]:
        """What the rollback apply's ledger record carries in `details`."""
        return {ROLLBACK_FROM: self.current.version, "rollback_from_commit": self.current.commit}


def current_deployment(cell: str, records: Iterable[Record]) -> Record:
    """The cell's deployed apply; one line saying why there is none otherwise."""
    changes = [r for r in newest_first(records) if r.action in ("apply", "destroy") and r.result == "succeeded"]
    if not changes:
        raise ValidationError(f"nothing deployed in {cell}: the ledger has no successful apply of it, so there "
                              "is nothing to roll back (tfdeploy history --cell " + cell + " shows its records)")
    last = changes[0]
    if last.action == "destroy":
        raise ValidationError(f"nothing deployed in {cell}: it was destroyed at {_when(last.finished_at)} "
                              f"({last.tag}); deploy a version with tfdeploy apply --tag TAG instead")
    return last


def choose(cell: str, records: Iterable[Record], to: str | None = None) -> Rollback:
    """The rollback of `cell` given its records (any order): to `to`, or to the previous version."""
    ordered = newest_first(records)
    current = current_deployment(cell, ordered)
    before = ordered[ordered.index(current) + 1:]
    applied = [r for r in before if r.action == "apply" and r.result == "succeeded"]
    if to is not None:
        if to == current.version:
            raise ValidationError(f"{cell} already runs {to} ({current.tag}); nothing to roll back (to re-apply "
                                  f"it: tfdeploy apply --tag {current.tag})")
        return Rollback(cell, current, to, next((r for r in applied if r.version == to), None))
    left = _left_versions(current)
    for record in applied:
        if record.version != current.version and record.version not in left:
            return Rollback(cell, current, record.version, record)
        left |= _left_versions(record)
    versions = sorted({current.version, *(r.version for r in applied)}, key=version_key)
    raise ValidationError(f"no earlier successful version of {cell} to roll back to (the ledger has "
                          f"{', '.join(versions)} before {current.version} or left by a rollback); name one "
                          "with --to VERSION")


def _left_versions(record: Record) -> set[str]:
    left = (record.details or {}).get(ROLLBACK_FROM)
    return {left} if isinstance(left, str) and left else set()


def _when(iso: str) -> str:
    return iso.replace("T", " ")[:16] + " UTC" if iso else "an unknown time"


def short(commit: str) -> str:
    return commit[:12] if commit else "?"


def announce(rollback: Rollback, target_commit: str) -> str:
    """The one line saying what will happen."""
    current, target = rollback.current, rollback.target
    if target is not None:
        last = f"last applied {_when(target.finished_at)} by {target.caller or 'an unknown caller'}"
    else:
        last = "never applied successfully in this cell"
    return (f"rolling back {rollback.cell} from {current.version} (commit {short(current.commit)}) to "
            f"{rollback.version} (commit {short(target_commit)}), {last}")
