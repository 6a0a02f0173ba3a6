"""The fleet matrix (pure): ledger records + the repo's tags and cells -> team x env x scope rows
with what is deployed there and what needs a look.

Marks:
- `never-deployed`: a cell the repo can deploy (a tag, a per-scope tfvars file or an allowed
  Region of a team set up for the env) with no record.
- `failed`: the cell's last apply or destroy failed.
- `behind`: a newer version is tagged for the cell (same env, team and scope) than the one deployed.
- `drifted`: the newest drift check after the last apply found differences.
- `destroyed`: the last successful change was a destroy.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from ..model.tags import GLOBAL, Tag
from .ledger import Record, newest_first

MARKS = ("failed", "drifted", "behind", "never-deployed", "destroyed")
_RUNS = re.compile(r"[0-9]+|[a-z]+")


def version_key(version: str) -> tuple[Any, ...]:
    """Order versions as people read them: 1.10 > 1.9, and 1.1-rc1 < 1.1 (pure)."""
    numbers, _, suffix = version.partition("-")
    parts = tuple(int(n) for n in numbers.split(".") if n.isdigit())
    parts = parts + (0,) * (4 - len(parts))
    if not suffix:
        return (parts, 1, ())
    # Natural order inside the suffix: rc10 after rc2.
    pieces = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _RUNS.findall(suffix))
    return (parts, 0, pieces)


@dataclass(frozen=True)
class CellStatus:
    cell: str
    env: str
    team: str
    scope: str
    deployed: Record | None  # the last successful apply (None: never, or destroyed since)
    last: Record | None  # the last apply or destroy, whatever its result
    drift: Record | None  # the newest drift check since the last successful apply
    newest_tag: str | None  # the newest version tagged for this cell
    marks: tuple[str, ...] = field(default=())

    @property
    def newest_version(self) -> str | None:
        return self.newest_tag.rsplit("/", 1)[1] if self.newest_tag else None

    def to_dict(self) -> dict[str, Any]:
        d, last = self.deployed, self.last
        return {
            "cell": self.cell, "env": self.env, "team": self.team, "scope": self.scope,
            "version": d.version if d else None, "tag": d.tag if d else None,
            "commit": d.commit if d else None, "deployed_at": d.finished_at if d else None,
            "deployed_by": d.caller if d else None,
            "result": last.result if last else None,
            "last": record_dict(last) if last else None,
            "drift": record_dict(self.drift) if self.drift else None,
            "newest_tag": self.newest_tag, "newest_version": self.newest_version,
            "marks": list(self.marks),
        }


_RECORD_FIELDS: tuple[str, ...] = ()


def record_dict(record: Record) -> dict[str, Any]:
    """`record.to_dict()` without `dataclasses.asdict`'s deep walk (pure): a Record's fields are
    strings, numbers and one JSON `details` dict, so a copy of that dict is all the walk does.
    `status --json` of 10,000 cells spent about a fifth of its time in asdict."""
    global _RECORD_FIELDS
    if not _RECORD_FIELDS:
        from dataclasses import fields

        _RECORD_FIELDS = tuple(f.name for f in fields(Record))
    out = {name: getattr(record, name) for name in _RECORD_FIELDS}
    out["details"] = copy.deepcopy(out["details"])
    return out


def cell_status(cell: tuple[str, str, str], records: Sequence[Record], newest_tag: str | None) -> CellStatus:
    """One cell's row from its records, any order (pure)."""
    env, scope, team = cell
    ordered = newest_first(records)
    changes = [r for r in ordered if r.action in ("apply", "destroy")]
    last = changes[0] if changes else None
    success = next((r for r in changes if r.result == "succeeded"), None)
    deployed = success if success is not None and success.action == "apply" else None
    # A failed drift check answered nothing: the newest check that did decides.
    drift = next((r for r in ordered if r.action == "drift" and r.result in ("drifted", "in-sync")), None)
    if drift is not None and deployed is not None and drift.order < deployed.order:
        drift = None  # checked before the current deployment: says nothing about it
    marks = []
    if last is not None and last.result == "failed":
        marks.append("failed")
    if drift is not None and drift.result == "drifted" and deployed is not None:
        marks.append("drifted")
    newest_version = newest_tag.rsplit("/", 1)[1] if newest_tag else None
    if deployed is not None and newest_version and version_key(newest_version) > version_key(deployed.version):
        marks.append("behind")
    if not changes:
        marks.append("never-deployed")
    elif success is not None and success.action == "destroy":
        marks.append("destroyed")
    return CellStatus(cell=f"{env}-{scope}-{team}", env=env, team=team, scope=scope, deployed=deployed,
                      last=last, drift=drift, newest_tag=newest_tag, marks=tuple(marks))


def newest_tags(tags: Iterable[Tag]) -> dict[str, str]:
    """cell -> the name of its tag with the highest version (pure)."""
    best: dict[str, Tag] = {}
    for tag in tags:
        current = best.get(tag.cell)
        if current is None or version_key(tag.version) > version_key(current.version):
            best[tag.cell] = tag
    return {cell: tag.name for cell, tag in best.items()}


def fleet_matrix(latest: Mapping[str, Sequence[Record]], cells: Iterable[tuple[str, str, str]],
                 tags: Iterable[Tag], environments: Sequence[str], *, env: str | None = None,
                 team: str | None = None) -> list[CellStatus]:
    """Every cell (from the ledger and from `cells`, the (env, scope, team) the repo can deploy),
    with its marks; sorted by team, env in promotion order, then global first and Region (pure)."""
    known: dict[str, tuple[str, str, str]] = {f"{e}-{s}-{t}": (e, s, t) for e, s, t in cells}
    for cell, records in latest.items():
        if records:
            r = records[0]
            known.setdefault(cell, (r.env, r.scope, r.team))
    wanted = {c: k for c, k in known.items() if (env is None or k[0] == env) and (team is None or k[2] == team)}
    newest = newest_tags(tags)
    rows = [cell_status(key, latest.get(cell, ()), newest.get(cell)) for cell, key in wanted.items()]
    order = {name: i for i, name in enumerate(environments)}
    return sorted(rows, key=lambda r: (r.team, order.get(r.env, len(order)), r.env,
                                       r.scope != GLOBAL, r.scope))


def counts(rows: Sequence[CellStatus]) -> dict[str, int]:
    """How many cells carry each mark, and how many there are (pure)."""
    out = {"cells": len(rows)}
    for mark in MARKS:
        out[mark] = sum(mark in r.marks for r in rows)
    return out


def _when(iso: str) -> str:
    return iso[:16].replace("T", " ") + "Z" if iso else ""


def _who(arn: str) -> str:
    """The readable end of a caller ARN: `assumed-role/InfraBuildRole/INFRA_BUILD` -> `InfraBuildRole/INFRA_BUILD`."""
    if not arn:
        return "?"
    resource = arn.split(":", 5)[-1]
    kind, _, rest = resource.partition("/")
    return rest if kind == "assumed-role" and rest else resource


def render_table(rows: Sequence[CellStatus]) -> str:
    """The matrix as aligned text, readable in a terminal and in a CI log (pure)."""
    header = ("TEAM", "ENV", "SCOPE", "VERSION", "COMMIT", "DEPLOYED", "BY", "LAST", "MARKS")
    lines = [header]
    for r in rows:
        d, last = r.deployed, r.last
        outcome = ""
        if last is not None:
            outcome = f"{last.action} {last.result}"
            if d is None or last.id != d.id:
                outcome += f" ({last.version}, {_when(last.finished_at)})"
        marks = list(r.marks)
        if "behind" in marks and r.newest_version:
            marks[marks.index("behind")] = f"behind ({r.newest_version} tagged)"
        lines.append((r.team, r.env, r.scope, d.version if d else "-", d.commit[:12] if d else "-",
                      _when(d.finished_at) if d else "-", _who(d.caller) if d else "-", outcome or "-",
                      ", ".join(marks) or "ok"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def render_history(records: Sequence[Record]) -> str:
    """A cell's records, newest first, one line each (pure)."""
    header = ("FINISHED", "ACTION", "RESULT", "TAG", "COMMIT", "+/~/-", "BY", "BUILD")
    lines = [header]
    for r in records:
        extra = f" override: {r.override}" if r.override else ""
        if (r.details or {}).get("rollback_from"):
            extra += f" (rollback from {r.details['rollback_from']})"
        lines.append((_when(r.finished_at), r.action, r.result + extra, r.tag, r.commit[:12],
                      f"+{r.add} ~{r.change} -{r.destroy}", _who(r.caller), r.build_id or "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)
