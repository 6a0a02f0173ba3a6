"""Close the records of runs that died: a cell whose last apply/destroy record is `started`, whose
run is gone, gets a record saying what the state object shows.

A run writes `started` before Terraform starts and its final record after (fleet/recording.py).
A run killed outright (SIGKILL, an out-of-memory kill, a lost machine) never writes the final one,
so without this the ledger would go on saying what ran before. Every command that reads the
ledger to decide or show what runs where (status, history, promotion, rollback, a fan-out's
gate) passes its records through `reconcile` first.

The run is gone when nothing can still change the state: its process is not running (same host
and boot: pid and process start time; another host cannot be asked, so its record must be older
than `FOREIGN_GRACE_S`), and no one holds the state lock (Terraform may outlive a killed tfdeploy
for a while, finishing its graceful stop). Then one GET of the state object tells whether the run
changed it (serial, lineage and the namespace's resources against the started record's), and an
`interrupted` record that says `reconciled` is written. Nothing is ever rewritten or deleted.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .ledger import Place, Record, newest_first, now_iso, write_record

FOREIGN_GRACE_S = 15 * 60  # a run on another host, holding no lock yet: still opening, as far as we know
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def _boot_id() -> str:
    try:
        return _BOOT_ID.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22): a pid
    reused by another process has another start time. "" when it cannot be read (no such pid)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return ""
    fields = stat.rsplit(")", 1)[1].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else ""


def this_holder() -> dict[str, Any]:
    """pid, host, boot id and process start of this process: what a later reader checks."""
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "boot_id": _boot_id(), "process_start": _process_start(pid)}


def holder_alive(holder: Mapping[str, Any]) -> bool | None:
    """Is the process that wrote a `started` record still running? None: cannot tell (another
    host, or a record without a holder)."""
    if not holder or holder.get("host") != socket.gethostname():
        return None
    boot = _boot_id()
    if holder.get("boot_id") and boot and holder["boot_id"] != boot:
        return False  # this machine rebooted since: that process is gone
    pid = int(holder.get("pid") or 0)
    if pid <= 0:
        return None
    start = _process_start(pid)
    return bool(start) and (not holder.get("process_start") or start == holder.get("process_start"))


def _age_s(iso: str, now: datetime) -> float:
    try:
        return (now - datetime.fromisoformat(iso.replace("Z", "+00:00"))).total_seconds()
    except ValueError:
        return float("inf")


def dangling(records: Sequence[Record], now: datetime | None = None) -> Record | None:
    """The cell's newest apply/destroy record when it is `started` (pure): a run with no final record.
    A record dated in the future (forged: it sorts newest) is passed over, so it cannot hide a dead run."""
    from .signing import future_dated

    now = now or datetime.now(timezone.utc)
    change = next((r for r in newest_first(records) if r.action in ("apply", "destroy") and not future_dated(r, now)),
                  None)
    return change if change is not None and change.result == "started" else None


def without_closed_starts(records: Sequence[Record]) -> list[Record]:
    """The records a person reads (pure): a `started` record whose run's final record is there
    says nothing more, so it is left out; a dangling one (a run going on) stays."""
    closed = {str((r.details or {}).get("started_id")) for r in records if (r.details or {}).get("started_id")}
    return [r for r in records if not (r.result == "started" and r.id in closed)]


def outcome(started: Record, after: Any) -> dict[str, Any]:
    """What the state shows against the started record's mark (pure): details of the reconciled
    record, and its counts when the started record kept the namespace's resources."""
    from ..engine.statemark import StateMark, changed, counts

    before = (started.details or {}).get("state_before") or {}
    mark = StateMark(bool(before.get("exists")), before.get("serial"), before.get("lineage"),
                     before.get("resources") or {})
    moved = changed(mark, after)
    known = "resources" in before
    result: dict[str, Any] = {
        "state_changed": moved, "serial_before": mark.serial, "serial_after": after.serial,
        "lineage": after.lineage,
        "counts": counts(mark, after) if known else (0, 0, 0),
        "counts_known": known or not moved,
    }
    return result


def reconciled_record(started: Record, found: Mapping[str, Any], reader: Mapping[str, Any]) -> Record:
    """The record that closes a dead run (pure): `interrupted`, with what the state shows."""
    moved = found["state_changed"]
    text = (f"the run (pid {started.details.get('holder', {}).get('pid', '?')} on "
            f"{started.details.get('holder', {}).get('host', '?')}) ended without a final record; "
            + (f"the state changed (serial {found['serial_before']} -> {found['serial_after']})" if moved
               else f"the state did not change (serial {found['serial_after']})"))
    add, change, destroy = found["counts"]
    details = {"reconciled": text, "started_id": started.id, "state_changed": moved,
               "serial_before": found["serial_before"], "serial_after": found["serial_after"],
               "lineage": found["lineage"], "reconciled_by": dict(reader)}
    if not found["counts_known"]:
        details["counts"] = "unknown: the started record did not keep the resources"
    return replace(started, result="interrupted", add=add, change=change, destroy=destroy,
                   finished_at=now_iso(), details=details, id=f"{started.id}r")


def reconcile(by_cell: Mapping[str, Sequence[Record]], environ: Mapping[str, str],
              warn: Callable[[str], None], *, now: datetime | None = None) -> dict[str, list[Record]]:
    """`by_cell` with every dead run closed (its reconciled record first, and written to the
    ledger); live runs and cells without a dangling record are as they were."""
    now = now or datetime.now(timezone.utc)
    out = {cell: list(records) for cell, records in by_cell.items()}
    for cell, records in out.items():
        started = dangling(records, now)
        if started is None:
            continue
        record = close(started, environ, warn, now)
        if record is not None:
            out[cell] = newest_first([record, *records])
    return out


def close(started: Record, environ: Mapping[str, str], warn: Callable[[str], None], now: datetime,
          after: Any = None) -> Record | None:
    """The reconciled record of a dead run (written), or None while its run may still live.
    `after`: the state's mark, when the caller has just read it (a new run of the cell)."""
    from ..aws.sandbox import active_endpoint
    from ..engine.statelocks import held_lock
    from ..engine.statemark import read_mark
    from ..errors import TfdeployError

    details = started.details or {}
    state = details.get("state") or {}
    if not state.get("bucket") or not state.get("key"):
        return None  # not a record of this version: nothing to read the state with
    alive = holder_alive(details.get("holder") or {})
    if alive or (alive is None and _age_s(started.started_at, now) < FOREIGN_GRACE_S):
        return None
    endpoint = active_endpoint(environ)
    if held_lock(state["bucket"], state["key"], state["region"], state.get("lock_table"), environ, endpoint):
        return None  # its Terraform may still be stopping (or another run holds it): not yet
    try:
        if after is None:
            after = read_mark(state["bucket"], state["key"], state["region"], state.get("namespace", ""),
                              environ, endpoint)
    except TfdeployError as exc:
        warn(f"cannot reconcile the unfinished {started.action} of {started.cell}: {exc}")
        return None
    record = reconciled_record(started, outcome(started, after), this_holder())
    try:
        write_record(record, Place(state["bucket"], state["region"]), environ)
    except Exception as exc:  # noqa: BLE001 - shown as reconciled anyway; the next reader writes it
        warn(f"the reconciled record of {started.cell} could not be written ({exc}); shown, not saved")
    return record
