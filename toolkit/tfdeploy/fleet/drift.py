"""Drift detection, the pure parts: which cells to check, what a refresh-and-plan says differs,
the run's document, table and exit code.

A cell is checked at the tag the ledger says it last applied successfully (not destroyed since):
the question is "does the cell still match what we deployed?", not "what would the newest tag
change?". The Terraform side (a plan into a separate work dir, never applied) is in
engine/driftplan.py; the fleet action that runs it per cell is in fleet/actions.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..paths import shown_path
from .ledger import Record, parse_cell
from .status import cell_status

IN_SYNC, DRIFTED = "in-sync", "drifted"
FAILED, SKIPPED, INTERRUPTED = "failed", "skipped", "interrupted"
# Plan actions that change nothing: reading a data source is not drift.
_QUIET = ({"no-op"}, {"read"}, set())


def deployed_cells(latest: Mapping[str, Sequence[Record]], environments: Sequence[str], *,
                   extra_regions: frozenset[str] = frozenset(), env: str | None = None,
                   team: str | None = None) -> list[Record]:
    """The last successful apply of every cell that is deployed now (not destroyed since), for
    the cells of `env`/`team` (pure). Sorted by cell name."""
    chosen = []
    for cell, records in sorted(latest.items()):
        if not records:
            continue
        try:
            key = parse_cell(cell, environments, extra_regions)
        except Exception:  # a prefix that is not a cell of this repo: nothing to check
            continue
        if (env is not None and key[0] != env) or (team is not None and key[2] != team):
            continue
        deployed = cell_status(key, records, None).deployed
        if deployed is not None:
            chosen.append(deployed)
    return chosen


def source_problem(record: Record, found_commit: str | None, error: str = "") -> str:
    """Why the cell cannot be checked at its applied tag, or "" when it can (pure).

    `found_commit`: the commit the tag points at now (None: the tag is gone or unreadable)."""
    if found_commit is None:
        why = f"tag {record.tag} (applied at {record.finished_at[:16]}) is not in this repo"
        return f"{why}: {error}" if error else f"{why}; git fetch --tags, then run drift again"
    if found_commit != record.commit:
        return (f"tag {record.tag} now points at {found_commit[:12]}, but {record.commit[:12]} was applied; "
                "a moved tag cannot say what is deployed: check with tfdeploy history --tag "
                f"{record.tag}, then re-apply or restore the tag")
    return ""


# --- what a plan says differs ---------------------------------------------------------------------

def _action(actions: Sequence[str]) -> str:
    wanted = set(actions)
    if {"create", "delete"} <= wanted:
        return "replace"
    for name in ("create", "delete", "update"):
        if name in wanted:
            return name
    return "no-op"


def _same(a: Any, b: Any) -> bool:
    # Providers normalise an unset value to null, {}, [] or "" from one read to the next: that is
    # not a change anyone made.
    return a == b or (a in (None, {}, [], "") and b in (None, {}, [], ""))


def _differing(before: Any, after: Any, unknown: Any) -> list[str]:
    """Top-level attribute names whose known values differ between two objects (pure). A value
    known only after apply is no evidence of a difference: the known ones say what differs."""
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    unknown = unknown if isinstance(unknown, dict) else {}
    return sorted(n for n in set(before) | set(after)
                  if not unknown.get(n) and not _same(before.get(n), after.get(n)))


def _value(side: Any, name: str) -> Any:
    return side.get(name) if isinstance(side, dict) else None


def differing_resources(raw: Mapping[str, Any], redacted: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The resources a refresh-and-plan says differ, from `terraform show -json` of the plan (pure).

    `raw` decides which attributes differ (a masked `<sensitive>` on both sides would hide a real
    difference); `redacted` (engine/redact.py) supplies the values shown, so no secret leaves.
    One entry per address: `action` is what an apply of the tag would do (update, create, delete,
    replace, or no-op), `outside` what changed outside Terraform (update, delete, or None), and
    `attributes` the differing attribute names with their `actual` and `expected` values."""
    shown = {(rc.get("address"), key): rc for key in ("resource_changes", "resource_drift")
             for rc in redacted.get(key) or [] if isinstance(rc, dict)}
    found: dict[str, dict[str, Any]] = {}

    def entry(address: str) -> dict[str, Any]:
        return found.setdefault(address, {"address": address, "action": "no-op", "outside": None,
                                          "attributes": {}})

    for key in ("resource_drift", "resource_changes"):
        for rc in raw.get(key) or []:
            change = rc.get("change") or {}
            actions = change.get("actions") or []
            if set(actions) in _QUIET or not rc.get("address"):
                continue
            item = entry(rc["address"])
            masked = (shown.get((rc["address"], key)) or {}).get("change") or {}
            if key == "resource_drift":
                item["outside"] = _action(actions)
                # before: as last applied; after: as found now.
                sides = ("after", "before", {})
            else:
                item["action"] = _action(actions)
                # before: as found now (refreshed); after: what the tag wants.
                sides = ("before", "after", change.get("after_unknown"))
            actual, expected, unknown = sides
            if (key == "resource_changes" and item["action"] in ("create", "delete")) or item["outside"] == "delete":
                continue  # the whole object is missing or extra: no attribute list
            for name in _differing(change.get(actual), change.get(expected), unknown):
                item["attributes"].setdefault(name, {"actual": _value(masked.get(actual), name),
                                                     "expected": _value(masked.get(expected), name)})
    # Only read back differently (normalised empty values) and no change planned: not drift.
    return [found[a] for a in sorted(found)
            if found[a]["action"] != "no-op" or found[a]["outside"] == "delete" or found[a]["attributes"]]


def change_counts(raw: Mapping[str, Any]) -> tuple[int, int, int]:
    """+/~/- of the plan's resource changes, as Terraform's 'Plan:' line counts them (pure)."""
    add = change = destroy = 0
    for rc in raw.get("resource_changes") or []:
        actions = (rc.get("change") or {}).get("actions") or []
        add += "create" in actions
        destroy += "delete" in actions
        change += list(actions) == ["update"]
    return add, change, destroy


def describe(resource: Mapping[str, Any]) -> str:
    """One line for a differing resource (pure): `module.x.aws_ssm_parameter.p: update (value)`."""
    what = resource["action"] if resource["action"] != "no-op" else "no change planned"
    if resource.get("outside"):
        what = f"{'deleted' if resource['outside'] == 'delete' else 'changed'} outside Terraform; plan: {what}"
    names = ", ".join(resource.get("attributes") or {})
    return f"{resource['address']}: {what}" + (f" ({names})" if names else "")


# --- a run's outcome ------------------------------------------------------------------------------

@dataclass
class CellCheck:
    cell: str
    tag: str
    result: str  # in-sync | drifted | failed | skipped | interrupted
    resources: list[dict[str, Any]] = field(default_factory=list)
    log: str = ""
    error: str = ""

    def to_json(self) -> dict[str, Any]:
        out = {"cell": self.cell, "tag": self.tag, "result": self.result, "resources": self.resources,
               "log": self.log}
        if self.error:
            out["error"] = self.error
        return out


def document(checks: Sequence[CellCheck]) -> dict[str, Any]:
    """The --json document (pure): ok only when every cell was checked and is in sync."""
    return {"ok": all(c.result == IN_SYNC for c in checks),
            "drifted": [c.cell for c in checks if c.result == DRIFTED],
            "cells": [c.to_json() for c in checks]}


def exit_code(checks: Iterable[CellCheck], signum: int | None = None) -> int:
    """128+signal when interrupted; 1 when any cell could not be checked (failed or skipped: the
    answer is incomplete, like Terraform's -detailed-exitcode an error wins); 2 when any drifted;
    else 0 (pure)."""
    if signum is not None:
        return 128 + signum
    results = {c.result for c in checks}
    if results & {FAILED, SKIPPED, INTERRUPTED}:
        return 1
    return 2 if DRIFTED in results else 0


def render(checks: Sequence[CellCheck]) -> str:
    """The end-of-run report as plain text (pure): one row per cell, then each drifted resource."""
    header = ("CELL", "TAG", "RESULT", "DIFFERS", "LOG")
    rows = [header] + [(c.cell, c.tag, c.result, str(len(c.resources)) if c.result == DRIFTED else "-",
                        shown_path(c.log) if c.log else "-") for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    for c in checks:
        if c.result == DRIFTED:
            lines.append(f"\n{c.cell} ({c.tag}) drifted:")
            lines += [f"  {describe(r)}" for r in c.resources]
        elif c.result in (FAILED, SKIPPED, INTERRUPTED) and c.error:
            lines.append(f"\n{c.cell} {c.result}: {c.error}")
    counts = {name: sum(c.result == name for c in checks) for name in (IN_SYNC, DRIFTED, FAILED, SKIPPED,
                                                                         INTERRUPTED)}
    lines.append("\n" + f"{len(checks)} cells: " + ", ".join(f"{n} {name}" for name, n in counts.items() if n))
    return "\n".join(lines)
