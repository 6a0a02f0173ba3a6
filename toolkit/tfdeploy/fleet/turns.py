"""When a fan-out's cell may go: the cells it comes after (its earlier waves) succeeded, and the
bake between waves passed. Shared by the runner's main thread, which starts cells, and by the
cells that planned ahead of their turn (`apply --auto-approve`), which wait here between their
checked plan and their apply.

Planning ahead: a later wave's cell plans while the canary applies and applies only once the
canary succeeded, as a release's CodeBuild batch plans every cell before the canary's apply
(delivery/batch.py). The order of applies, the skip after a failed wave and the bake are the same
as without it. It never crosses a global cell: a Region's plan may read what its global cell
applies, so a cell whose wave waits for a global cell plans only after that cell succeeded.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Collection

from ..errors import ValidationError
from .results import CellResult
from .schedule import Step

POLL_S = 0.25


class NotApplied(ValidationError):
    """A cell that planned ahead and did not get its turn (a cell before it did not succeed, or
    the run is stopping): skipped, not failed; its plan is discarded, nothing was changed, and it
    is not a deployment (no ledger record, no retry)."""


def may_plan_ahead(step: Step, global_cells: Collection[str], started: Collection[str]) -> bool:
    """May `step` start before its turn (pure)? Only after a wave of Regions, once every cell of
    that wave has started (so a waiting cell never holds up the cells it waits for)."""
    return bool(step.after) and not any(c in global_cells for c in step.after) \
        and all(c in started for c in step.after)


class Turns:
    def __init__(self, bake_s: float, stopping: Callable[[], str]):
        """`stopping()`: why the run stops starting cells ("" while it goes on)."""
        self._cond = threading.Condition()
        self._bake_s = bake_s
        self._stopping = stopping
        self.done: dict[str, CellResult] = {}
        self._ended: dict[str, float] = {}  # cell -> monotonic end, for the bake between waves

    def end(self, result: CellResult) -> None:
        with self._cond:
            self.done[result.cell] = result
            self._ended[result.cell] = time.monotonic()
            self._cond.notify_all()

    def failed_before(self, step: Step) -> list[str]:
        """The cells before `step` that ended without succeeding (then it is skipped)."""
        return [c for c in step.after if c in self.done and not self.done[c].ok]

    def left(self, step: Step) -> float | None:
        """Seconds until `step`'s turn (<= 0: now), or None while a cell before it still runs."""
        if not all(c in self.done for c in step.after):
            return None
        if not step.after:
            return 0.0
        return max(self._ended[c] for c in step.after) + self._bake_s - time.monotonic()

    def ready(self, step: Step) -> bool:
        left = self.left(step)
        return left is not None and left <= 0

    def wait(self, step: Step) -> None:
        """Return at `step`'s turn; raise NotApplied when it will not come."""
        with self._cond:
            while True:
                why = self._stopping()
                if why:
                    raise NotApplied(f"not applied: {why}; its plan was discarded")
                failed = self.failed_before(step)
                if failed:
                    raise NotApplied(f"{', '.join(failed)} did not succeed; its plan was discarded")
                left = self.left(step)
                if left is not None and left <= 0:
                    return
                self._cond.wait(POLL_S if left is None else min(left, POLL_S))
