"""The fleet matrix (pure): ledger records + the repo's tags and cells -> team x env x scope rows
with what is deployed there and what needs a look.

Marks:
- `never-deployed`: a cell the repo can deploy (a tag, a per-scope tfvars file or an allowed
  Region of a team set up for the env) with no record.
- `failed`: the cell's last apply or destroy failed.
- `interrupted`: a run was cut short (a signal, a crash) or a later change that did not complete
  changed the state: the version shown is the last that ran to the end, `partly` the one that did not.
- `behind`: a newer version is tagged for the cell (same env, team and scope) than the one deployed.
- `drifted`: the newest drift check after the last apply found differences.
- `destroyed`: the last successful change was a destroy.
- `unverified`: a record that would have decided the row is not trusted (fleet/signing.py:
  unsigned or badly signed under `ledger_signing_key`, or future-dated); it is left out and the
  row says which record and why.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..model.tags import GLOBAL, Tag
from .ledger import Record, newest_first

MARKS = ("failed", "interrupted", "drifted", "behind", "never-deployed", "destroyed", "unverified")
Distrust = Callable[[Record], str]  # why a record must not be trusted ("" when it may)
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
    unverified: tuple[tuple[Record, str], ...] = field(default=())  # left out, with why
    # A change after the last success that changed the state without completing (interrupted,
    # failed midway): the cell runs part of it. Never evidence that its version runs.
    partly: Record | None = None

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
            "marks": list(self.marks), "partly": self.partly.version if self.partly else None,
            "unverified": [{"id": r.id, "tag": r.tag, "why": why} for r, why in self.unverified],
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


def _trusted(ordered: Sequence[Record], distrust: Distrust | None) -> tuple[list[Record], list[tuple[Record, str]]]:
    """The records that decide a row, newest first, and the untrusted ones met on the way.

    Lazy: a record is checked only while it could still decide something (the last change, the
    last success, the last drift check), so a cell costs a signature check or three, not one per
    record it keeps (`status` reads up to 10,000)."""
    kept, skipped, _wanted = _scan(ordered, distrust)
    return kept, skipped


def _decides_change(r: Record) -> bool:
    return r.action in ("apply", "destroy")


def _decides_drift(r: Record) -> bool:
    return r.action == "drift" and r.result in ("drifted", "in-sync")


def _scan(ordered: Sequence[Record], distrust: Distrust | None) -> tuple[list[Record], list[tuple[Record, str]], set[str]]:
    """`_trusted`, and the kinds of record ("change", "drift") still wanted after `ordered`: what
    a record older than these could still decide."""
    if distrust is None:
        return list(ordered), [], set()
    kept: list[Record] = []
    skipped: list[tuple[Record, str]] = []
    have_last = have_success = have_drift = False
    for r in ordered:
        change = _decides_change(r)
        checked_drift = _decides_drift(r)
        if not ((change and not (have_last and have_success)) or (checked_drift and not have_drift)):
            continue
        why = distrust(r)
        if why:
            skipped.append((r, why))
            if r.result == "succeeded" or ran_to_the_end(r) or not change:
                continue
            # A change that did not complete (started, interrupted, failed, refused; the reconciler
            # and a `started` record sign nothing) is never evidence, but it is kept: it can only
            # warn (a mark, `partly`), never say a version runs, and dropping it would hide that
            # a killed run changed the state.
        kept.append(r)
        have_last = have_last or change
        have_success = have_success or (change and (r.result == "succeeded" or ran_to_the_end(r)))
        have_drift = have_drift or checked_drift
        if have_last and have_success and have_drift:
            break
    wanted = set() if have_last and have_success else {"change"}
    return kept, skipped, wanted if have_drift else wanted | {"drift"}


def head_cut(ordered: Sequence[Record]) -> tuple[int, list[str]]:
    """How many of a cell's records, newest first, decide its row when every one is trusted (the
    last change, the last change that ran to the end, the last drift check, and all newer), and
    the kinds the others hold ("change", "drift") (pure). The local cache keeps only those
    (fleet/ledgercache.py); `complete` reads the others when a row needs them."""
    last = success = drift = None
    for i, r in enumerate(ordered):
        if _decides_change(r):
            last = i if last is None else last
            if success is None and (r.result == "succeeded" or ran_to_the_end(r)):
                success = i
        elif drift is None and _decides_drift(r):
            drift = i
        if None not in (last, success, drift):
            break
    cut = 1 + max((i for i in (last, success, drift) if i is not None), default=0)
    rest = ordered[cut:]
    kinds = [kind for kind, test in (("change", _decides_change), ("drift", _decides_drift)) if any(map(test, rest))]
    return cut, kinds


def complete(records: Sequence[Record], distrust: Distrust | None) -> Sequence[Record]:
    """A cell's records as its row needs them: a Head (fleet/ledger.py) as it is when its
    records are trusted and nothing older could decide what they leave open; else every record."""
    kinds = getattr(records, "kinds", None)
    if not kinds:
        return records
    _kept, skipped, wanted = _scan(newest_first(records), distrust)
    if skipped or wanted & kinds:
        return records.whole()  # type: ignore[attr-defined]
    return records


def cell_status(cell: tuple[str, str, str], records: Sequence[Record], newest_tag: str | None,
                distrust: Distrust | None = None) -> CellStatus:
    """One cell's row from its records, any order (pure but for `distrust`, e.g. Trust.why:
    records it finds against are left out and listed)."""
    env, scope, team = cell
    ordered, unverified = _trusted(newest_first(records), distrust)
    # A `started` record is news only while it is the newest (a run going on, or one to reconcile):
    # otherwise its run's final record follows it.
    changes = [r for i, r in enumerate(r for r in ordered if r.action in ("apply", "destroy"))
               if r.result != "started" or i == 0]
    last = changes[0] if changes else None
    # What ran to the end: a success, or an apply Terraform completed before a signal stopped
    # tfdeploy (`completed`: what runs there now, though never promotion evidence).
    success = next((r for r in changes if r.result == "succeeded" or ran_to_the_end(r)), None)
    deployed = success if success is not None and success.action == "apply" else None
    partly = next((r for r in changes if r.result != "succeeded" and not ran_to_the_end(r)
                   and (r.details or {}).get("state_changed") and (success is None or r.order > success.order)),
                  None)
    # A failed drift check answered nothing: the newest check that did decides.
    drift = next((r for r in ordered if r.action == "drift" and r.result in ("drifted", "in-sync")), None)
    if drift is not None and deployed is not None and drift.order < deployed.order:
        drift = None  # checked before the current deployment: says nothing about it
    marks = []
    if last is not None and last.result == "failed":
        marks.append("failed")
    if (last is not None and last.result == "interrupted") or partly is not None:
        marks.append("interrupted")
    if drift is not None and drift.result == "drifted" and deployed is not None:
        marks.append("drifted")
    newest_version = newest_tag.rsplit("/", 1)[1] if newest_tag else None
    if deployed is not None and newest_version and version_key(newest_version) > version_key(deployed.version):
        marks.append("behind")
    if not any(r.result not in ("started", "refused") for r in changes):
        marks.append("never-deployed")  # nothing was ever changed (a refused run changes nothing)
    elif success is not None and success.action == "destroy":
        marks.append("destroyed")
    if unverified:
        marks.append("unverified")
    return CellStatus(cell=f"{env}-{scope}-{team}", env=env, team=team, scope=scope, deployed=deployed,
                      last=last, drift=drift, newest_tag=newest_tag, marks=tuple(marks),
                      unverified=tuple(unverified), partly=partly)


def ran_to_the_end(record: Record) -> bool:
    """An interrupted run whose Terraform command had completed (pure)."""
    return record.result == "interrupted" and bool((record.details or {}).get("completed"))


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
                 team: str | None = None, distrust: Distrust | None = None) -> list[CellStatus]:
    """Every cell (from the ledger and from `cells`, the (env, scope, team) the repo can deploy),
    with its marks; sorted by team, env in promotion order, then global first and Region (pure)."""
    known: dict[str, tuple[str, str, str]] = {f"{e}-{s}-{t}": (e, s, t) for e, s, t in cells}
    for cell, records in latest.items():
        if records:
            r = records[0]
            known.setdefault(cell, (r.env, r.scope, r.team))
    wanted = {c: k for c, k in known.items() if (env is None or k[0] == env) and (team is None or k[2] == team)}
    newest = newest_tags(tags)
    rows = [cell_status(key, latest.get(cell, ()), newest.get(cell), distrust) for cell, key in wanted.items()]
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
        if "unverified" in marks:
            whys = "; ".join(dict.fromkeys(f"{rec.version} {rec.action}: {why}" for rec, why in r.unverified))
            marks[marks.index("unverified")] = f"unverified ({whys})"
        if "interrupted" in marks and r.partly is not None:
            marks[marks.index("interrupted")] = f"interrupted ({r.partly.version} partly applied)"
        lines.append((r.team, r.env, r.scope, d.version if d else "-", d.commit[:12] if d else "-",
                      _when(d.finished_at) if d else "-", _who(d.caller) if d else "-", outcome or "-",
                      ", ".join(marks) or "ok"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def render_history(records: Sequence[Record], distrust: Distrust | None = None) -> str:
    """A cell's records, newest first, one line each (pure but for `distrust`: a record it finds
    against says `UNVERIFIED (why)`)."""
    header = ("FINISHED", "ACTION", "RESULT", "TAG", "COMMIT", "+/~/-", "BY", "BUILD")
    lines = [header]
    for r in records:
        extra = f" override: {r.override}" if r.override else ""
        if (r.details or {}).get("rollback_from"):
            extra += f" (rollback from {r.details['rollback_from']})"
        why = distrust(r) if distrust is not None else ""
        if why:
            extra += f" UNVERIFIED ({why})"
        extra += state_note(r)
        lines.append((_when(r.finished_at), r.action, r.result + extra, r.tag, r.commit[:12],
                      f"+{r.add} ~{r.change} -{r.destroy}", _who(r.caller), r.build_id or "-"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def state_note(record: Record) -> str:
    """What the state showed after a run that did not succeed (pure): `(state changed, serial
    3 -> 4)`, `(state unchanged)`, `(reconciled: ...)`; "" when the record does not say."""
    details = record.details or {}
    if record.result in ("succeeded", "started", "drifted", "in-sync") or "state_changed" not in details:
        return ""
    if details["state_changed"]:
        note = f" (state changed, serial {details.get('serial_before')} -> {details.get('serial_after')}"
    else:
        note = " (state unchanged"
    return note + ("; reconciled after its run died)" if details.get("reconciled") else ")")
