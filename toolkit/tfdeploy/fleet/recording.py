"""Record every apply and destroy of a cell in the ledger, whatever its outcome.

Commands wrap the part of a run that can change a cell in `recorded(...)` and hand it the session
once it is open; the record is written on the way out, succeeded or failed. A refusal before
Terraform changes anything (`ValidationError`: a spent or foreign saved plan, a moved tag) is not
a deployment and is not recorded; neither is a failure before the cell's session exists.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

from ..errors import ValidationError
from .ledger import Place, Prepared, now_iso, prepare, record_run

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
    _session: Any = None

    @property
    def session(self) -> Any:
        """The cell's engine.stages.Session, set by the command once open (then the run counts)."""
        return self._session

    @session.setter
    def session(self, session: Any) -> None:
        # Set just before Terraform starts: the record's reads go on while it runs.
        self._session = session
        backend = session.deployment.backend
        self.prepared = prepare(Place(backend.bucket, backend.region), session.tag.cell, self.environ)


def plan_meta(session: Any) -> dict[str, Any]:
    """The saved plan's metadata beside it in the work dir ({} when there is none)."""
    from ..engine.workdir import PLAN_META

    try:
        return json.loads((session.workdir.path / PLAN_META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def write(rec: Recording, result: str, environ: Mapping[str, str], warn: Callable[[str], None]) -> None:
    session = rec.session
    meta = plan_meta(session)
    planned = meta.get("summary") or {}
    counts = rec.counts or (planned.get("add", 0), planned.get("change", 0), planned.get("destroy", 0))
    if meta.get("auto_approved"):
        rec.details.setdefault("plan", "auto-approved: planned, checked and applied without review")
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
    rec = Recording(action, details=dict(_EXTRA_DETAILS.get() or {}), environ=environ)
    try:
        yield rec
    except ValidationError:
        raise  # refused before anything changed
    except BaseException as exc:
        if rec.session is not None:
            rec.details.setdefault("error", " ".join(str(exc).split())[:2000])
            before_write()
            write(rec, "failed", environ, warn)
        raise
    if rec.session is not None:
        before_write()
        write(rec, "succeeded", environ, warn)
