"""A fleet run's outcome: per-cell results, the matrix, the --json document, the exit code, and
the run record under `.tfdeploy/runs/` that `--only-failed` reads back."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import ValidationError
from ..paths import shown_path
from ..results import write_atomic

# What a cell ends as. "ok" results first; the rest make the run fail.
DONE = ("planned", "applied", "destroyed", "in-sync", "drifted")  # drift checks: checked either way
FAILED, SKIPPED, INTERRUPTED = "failed", "skipped", "interrupted"
JSON_FIELDS = ("tag", "cell", "result", "add", "change", "destroy", "duration_s", "log")


@dataclass
class CellResult:
    tag: str
    cell: str
    result: str
    add: int = 0
    change: int = 0
    destroy: int = 0
    duration_s: float = 0.0
    log: str = ""
    error: str = ""
    attempts: int = 0
    started_at: str = ""
    finished_at: str = ""
    # Skipped on purpose, not for a failure (destroy: the cell runs another version): the run
    # still succeeds, and the reason is in `error` and the --json "reason".
    chosen_skip: bool = False
    local_problem: str = ""  # the local disk failed under the cell (its log, its result file), and how
    state: str = ""  # the cell's state object (s3://bucket/key), once its work dir was opened
    cause: str = ""  # runner.failure_cause: promotion-refused, declined, state-locked or ""

    @property
    def ok(self) -> bool:
        return self.result in DONE or self.chosen_skip

    @property
    def has_changes(self) -> bool:
        return bool(self.add or self.change or self.destroy)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        shown = {name: data[name] for name in JSON_FIELDS}
        if self.chosen_skip:
            shown["reason"] = self.error
        return shown


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def run_ok(results: Sequence[CellResult]) -> bool:
    return all(r.ok for r in results)


def document(results: Sequence[CellResult]) -> dict[str, object]:
    """The --json document (pure)."""
    return {"ok": run_ok(results), "cells": [r.to_json() for r in results]}


def exit_code(results: Sequence[CellResult], *, detailed: bool, signum: int | None = None) -> int:
    """130/143 when interrupted, 1 when any cell did not finish, 2 (--detailed-exitcode) when
    all finished and any has changes, else 0 (pure)."""
    if signum is not None:
        return 128 + signum
    if not run_ok(results):
        return 1
    return 2 if detailed and any(r.has_changes for r in results) else 0


def matrix(results: Sequence[CellResult]) -> str:
    """The end-of-run table as plain text (pure but for the current directory): cell, tag,
    result, +/~/-, duration, log (relative to where the command runs: the table stays narrow)."""
    header = ("CELL", "TAG", "RESULT", "+/~/-", "TIME", "LOG")
    rows = [header] + [(r.cell, r.tag, r.result, f"+{r.add} ~{r.change} -{r.destroy}",
                        f"{r.duration_s:.1f}s", shown_path(r.log) if r.log else "-") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
             for row in rows]
    lines += [f"skipped: {r.error}" for r in results if r.chosen_skip]
    lines.append(summary_line(results))
    return "\n".join(line.rstrip() for line in lines)


def summary_line(results: Sequence[CellResult]) -> str:
    """The run in one line (pure): what the matrix ends with, and all that follows a live table
    (which showed every cell already)."""
    failed = [r for r in results if not r.ok]
    chosen = [r for r in results if r.chosen_skip]
    return (f"{len(results) - len(failed) - len(chosen)} of {len(results)} cells succeeded"
            + (f"; skipped: {', '.join(r.cell for r in chosen)}" if chosen else "")
            + (f"; not done: {', '.join(r.cell for r in failed)}" if failed else ""))


# --- the run record -------------------------------------------------------------------------

RUNS_DIR = "runs"
RECORD = "run.json"
# Finished runs kept (each is a folder of cell logs). The newest run of every selection is kept
# as well, however old: `--only-failed` reads it.
KEEP_RUNS = 50


def selection_key(action: str, tag_args: Iterable[str]) -> str:
    """Same action and same --tag arguments (in any order) = same selection (pure)."""
    text = json.dumps([action, sorted(set(tag_args))])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ") + f"-{os.getpid()}"


@dataclass
class RunRecord:
    run_id: str
    action: str
    tag_args: list[str]
    key: str
    started_at: str
    finished_at: str = ""
    interrupted: bool = False
    cells: list[dict[str, object]] = field(default_factory=list)

    def not_done(self) -> list[str]:
        """Tags of the cells that failed, were skipped or interrupted."""
        return [str(c["tag"]) for c in self.cells if c["result"] not in DONE and not c.get("chosen_skip")]


def write_record(runs: Path, record: RunRecord, results: Sequence[CellResult], keep: int = KEEP_RUNS) -> Path:
    """Write the run's record, then remove the finished runs past the newest `keep`."""
    record.cells = [asdict(r) for r in results]
    path = runs / record.run_id / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(asdict(record), indent=2) + "\n")
    prune_runs(runs, keep)
    return path


def runs_to_remove(finished: Sequence[tuple[str, str]], keep: int) -> list[str]:
    """Of finished runs `(run id, selection key)`, those past the newest `keep` that are not
    the newest run of their selection (pure). Run ids sort by when they started."""
    newest_of_key: dict[str, str] = {}
    for run_id, key in sorted(finished, reverse=True):
        newest_of_key.setdefault(key, run_id)
    ordered = sorted((run_id for run_id, _ in finished), reverse=True)
    protected = set(newest_of_key.values()) | set(ordered[:keep])
    return [run_id for run_id in ordered if run_id not in protected]


def prune_runs(runs: Path, keep: int = KEEP_RUNS) -> None:
    """Remove old finished run folders (best effort: one that cannot be read or removed stays).
    A folder without a record is a run still going, or one killed before it ended: never removed."""
    import shutil

    finished = []
    for folder in runs.iterdir():
        try:
            key = json.loads((folder / RECORD).read_text(encoding="utf-8"))["key"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        finished.append((folder.name, str(key)))
    for run_id in runs_to_remove(finished, keep):
        shutil.rmtree(runs / run_id, ignore_errors=True)


def last_record(runs: Path, key: str) -> RunRecord | None:
    """The newest finished run of the same selection, or None."""
    if not runs.is_dir():
        return None
    for folder in sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True):
        try:
            data = json.loads((folder / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a run still going, or killed before it wrote its record
        if data.get("key") == key:
            return RunRecord(**data)
    return None


def only_failed_tags(runs: Path, action: str, tag_args: Sequence[str]) -> tuple[RunRecord, list[str]]:
    """The tags to run again for --only-failed; an error when there is no previous run."""
    record = last_record(runs, selection_key(action, tag_args))
    if record is None:
        shown = " ".join(f"--tag {a}" for a in tag_args)
        raise ValidationError(f"--only-failed: no previous {action} of {shown} in {runs}; run it once "
                              "without --only-failed")
    return record, record.not_done()
