"""Record every apply and destroy of a cell in the ledger, whatever its outcome, through any crash.

Commands wrap the part of a run that can change a cell in `recorded(...)` and hand it the session
once its gates passed. Just before the Terraform command that can change the state starts
(`Session.before_change`, engine/stages.py), the state object is read and a `started` record
written (who runs it: pid, host, boot id; the state's serial, lineage and resources). On the way
out the state is read again and the final record's result comes from what Terraform did to it,
not from how the command ended (docs/trust/records.md):

- succeeded: the run completed;
- interrupted: a signal stopped it; `state_changed` and the counts say what Terraform had done
  (`completed`: its apply had finished before it heard the signal);
- refused: another run holds the state lock (named): nothing was changed;
- failed: anything else (counts from the state when it changed).

A run killed outright (SIGKILL, a lost machine) leaves its `started` record alone: the next
command that reads the ledger reconciles it from the state object (fleet/reconcile.py). A refusal
before Terraform could change anything (promotion gate, lock mode, a spent or foreign saved plan:
`ValidationError`) is not a deployment and is not recorded; neither is a failure before the
cell's session exists. A failure after the session but before Terraform's apply (e.g. its init)
gets one final record with `state_changed: false`.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from ..errors import TfdeployError, ValidationError
from .ledger import Place, Prepared, Record, now_iso, prepare, record_run

# Details a caller wraps around a normal apply (e.g. `rollback`) so its record says why it ran,
# without a parameter threaded through every apply path. Per thread/context, so fan-out cells
# started elsewhere never pick it up.
_EXTRA_DETAILS: ContextVar[Mapping[str, Any] | None] = ContextVar("tfdeploy_record_details", default=None)


@contextmanager
def extra_details(details: Mapping[str, Any]) -> Iterator[None]:
    """Records written inside this block carry `details` too (the run's own, e.g. an error, win)."""
    token = _EXTRA_DETAILS.set({**(_EXTRA_DETAILS.get() or {}), **details})
    try:
        yield
    finally:
        _EXTRA_DETAILS.reset(token)


@dataclass
class Recording:
    action: str  # "apply" | "destroy"
    started_at: str = field(default_factory=now_iso)
    counts: tuple[int, int, int] | None = None  # set on success; else the saved plan's
    override: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=dict)
    prepared: Prepared | None = None
    warn: Callable[[str], None] = print
    started: Record | None = None  # the `started` record, once written
    before: Any = None  # engine.statemark.StateMark before Terraform (None: could not be read)
    _session: Any = None

    @property
    def session(self) -> Any:
        """The cell's engine.stages.Session, set by the command once open (then the run counts)."""
        return self._session

    @session.setter
    def session(self, session: Any) -> None:
        # Set once the gates passed: the record's reads start now and go on while Terraform runs.
        # The state is read and the `started` record written later, once every check passed and
        # just before the Terraform command that can change the state (Session.before_change):
        # a refusal before it (lock mode, a spent plan) writes nothing.
        self._session = session
        backend = session.deployment.backend
        self.prepared = prepare(Place(backend.bucket, backend.region), session.tag.cell, self.environ)
        if hasattr(session, "before_change"):
            session.before_change = self.start
        else:
            self.start()

    def start(self) -> None:
        """Read the state and write the `started` record: Terraform is about to change the cell."""
        session = self._session
        backend = session.deployment.backend
        place = Place(backend.bucket, backend.region)
        self.before = _mark(session, self.warn)
        _close_dead_run(self.prepared, self.before, self.environ, self.warn)
        details = {**self.details, "holder": this_holder(), "state": state_address(session),
                   "state_before": self.before.to_details() if self.before is not None else None}
        self.started = record_run(session.tag, None, self.environ, cache_dir=session.cache, action=self.action,
                                  result=STARTED, commit=session.workdir.source.commit, counts=(0, 0, 0),
                                  started_at=self.started_at, override=self.override, details=details,
                                  warn=self.warn, place=place, prepared=self.prepared)
        # The final record's own reads (the summary has just changed), while Terraform runs.
        self.prepared = prepare(place, session.tag.cell, self.environ)


def _close_dead_run(prepared: Prepared, before: Any, environ: Mapping[str, str], warn: Callable[[str], None]) -> None:
    """A run of a cell whose last run died without its final record (a SIGKILLed fan-out) closes
    that record first, from the state it has just read: the summary read for its own record
    says so, so this costs nothing unless there is one (fleet/reconcile.py)."""
    from datetime import datetime, timezone

    from .reconcile import close, dangling

    if before is None:
        return
    try:
        records, _etag = prepared.summary()
    except Exception:  # noqa: BLE001 - the record's own write reads again and reports
        return
    dead = dangling(records)
    if dead is not None:
        close(dead, environ, warn, datetime.now(timezone.utc), after=before)


def _mark(session: Any, warn: Callable[[str], None]) -> Any:
    """The state object's mark now (one GET), or None when it cannot be read (said once)."""
    from ..engine.statemark import read_mark

    b = session.deployment.backend
    try:
        return read_mark(b.bucket, b.key, b.region, session.deployment.target_module, session.terraform.env,
                         session.sandbox_endpoint)
    except TfdeployError as exc:
        warn(f"the ledger cannot tell what this run changes: {exc}")
        return None


def state_address(session: Any) -> dict[str, Any]:
    """Where the cell's state and its lock are: what a reader needs to reconcile the run."""
    d = session.deployment
    b = d.backend
    return {"bucket": b.bucket, "key": b.key, "region": b.region, "namespace": d.target_module,
            "lock_table": b.dynamodb_table}


def this_holder() -> dict[str, Any]:
    """Who writes the `started` record (fleet/reconcile.py tells from it whether the run lives)."""
    from .reconcile import this_holder as holder

    return holder()


STARTED, INTERRUPTED, REFUSED = "started", "interrupted", "refused"


def plan_meta(session: Any) -> dict[str, Any]:
    """The saved plan's metadata beside it in the work dir ({} when there is none)."""
    from ..engine.workdir import PLAN_META

    try:
        return json.loads((session.workdir.path / PLAN_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write(rec: Recording, result: str, environ: Mapping[str, str], warn: Callable[[str], None]) -> None:
    from ..engine import statemark

    session = rec.session
    meta = plan_meta(session)
    planned = meta.get("summary") or {}
    counts = rec.counts or (planned.get("add", 0), planned.get("change", 0), planned.get("destroy", 0))
    if meta.get("auto_approved"):
        rec.details.setdefault("plan", "auto-approved: planned, checked and applied without review")
    # What Terraform did, from the state object itself (one more GET).
    after = _mark(session, warn) if rec.before is not None else None
    if rec.started is not None:
        rec.details["started_id"] = rec.started.id
    if after is not None:
        changed = statemark.changed(rec.before, after)
        rec.details.update(state_changed=changed, serial_before=rec.before.serial, serial_after=after.serial,
                           lineage=after.lineage)
        if result in (INTERRUPTED, REFUSED) or (result == "failed" and changed):
            counts = statemark.counts(rec.before, after)  # what it did, not what it set out to do
        if result == REFUSED and changed:
            result = "failed"  # the state moved under this run: never call that "nothing changed"
    backend = session.deployment.backend
    record_run(session.tag, None, environ, cache_dir=session.cache, action=rec.action, result=result,
               commit=session.workdir.source.commit, counts=counts, started_at=rec.started_at,
               plan_sha256=str(meta.get("plan_sha256", "")), override=rec.override, details=rec.details,
               warn=warn, place=Place(backend.bucket, backend.region), prepared=rec.prepared,
               signing=(session.deployment.ledger_signing_key, session.deployment.state_region))


@contextmanager
def recorded(action: str, environ: Mapping[str, str], warn: Callable[[str], None],
             before_write: Callable[[], None] = lambda: None) -> Iterator[Recording]:
    """`before_write`: told when the run is over and only its record is left to write (a fan-out
    gives the cell's slot to the next cell then, fleet/runner.py)."""
    from ..engine.supervise import Interrupted
    from ..engine.terraform import StateLocked

    rec = Recording(action, details=dict(_EXTRA_DETAILS.get() or {}), environ=environ, warn=warn)
    try:
        yield rec
    except BaseException as exc:
        if rec.session is None or (rec.started is None and isinstance(exc, ValidationError)):
            raise  # refused before anything could change: not a deployment
        if rec.started is None:  # failed before Terraform could change anything (e.g. its init)
            rec.details.setdefault("state_changed", False)
        if isinstance(exc, StateLocked):
            exc = named_holder(exc, rec.session)
        result = (INTERRUPTED if isinstance(exc, (Interrupted, KeyboardInterrupt))
                  else REFUSED if isinstance(exc, (StateLocked, ValidationError)) else "failed")
        rec.details.setdefault("error", " ".join(str(exc).split())[:2000])
        if rec.started is not None and getattr(exc, "completed", False):
            rec.details["completed"] = True  # Terraform finished its apply before it heard the signal
        before_write()
        write(rec, result, environ, warn)
        raise exc from None
    if rec.session is not None:
        before_write()
        write(rec, "succeeded", environ, warn)


def named_holder(exc: Any, session: Any) -> Any:
    """A lost state lock, with its holder named: when Terraform could not show who holds it (it
    prints no Lock Info when it cannot parse the lock), read it from the backend, in both lock
    modes, the way `tfdeploy locks` does (engine/statelocks.py)."""
    from ..engine.statelocks import held_lock
    from ..engine.terraform import StateLocked, locked_line

    if all(exc.holder.get(k) for k in ("Who", "ID", "Created")):
        return exc
    b = session.deployment.backend
    info = held_lock(b.bucket, b.key, b.region, b.dynamodb_table or b.lock_table, session.terraform.env,
                     session.sandbox_endpoint)
    if not info:
        return exc
    holder = {**{k: str(v) for k, v in info.items() if v}, **{k: v for k, v in exc.holder.items() if v}}
    return StateLocked(locked_line(exc.command, holder, exc.tag), exc.command, holder, exc.tag)
