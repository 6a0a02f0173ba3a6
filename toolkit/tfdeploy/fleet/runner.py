"""Run a fleet's cells in parallel threads: each under its cell lock, into its own log, in the
schedule's order, retrying only what is safe to retry.

The main thread owns the schedule and the display; workers run one cell each and post events.
Signals: the CLI installed tfdeploy's handler in the main thread (engine/supervise.py); it forwards
an interrupt to every Terraform the workers run, whose runs then end with `Interrupted`. The main
thread stops starting cells, waits for the running ones and reports them as interrupted.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Mapping

from ..engine import supervise
from ..errors import TfdeployError
from ..model.tags import Tag
from .display import Event
from .results import FAILED, INTERRUPTED, SKIPPED, CellResult, now_iso
from .retry import backoff_s, should_retry
from .schedule import Step
from .turns import NotApplied, Turns, may_plan_ahead

POLL_S = 0.25


@dataclass(frozen=True)
class Shared:
    """What is the same for every cell of one invocation, computed once in the main thread."""

    repo_root: Path
    overrides: Mapping[str, Any]
    environ: Mapping[str, str]
    options: Any  # engine.stages.SourceOptions
    terraform_bin: str
    lock_timeout_s: float
    sources: Mapping[str, Any]  # tag name -> engine.gitsource.SourceRef, or the TfdeployError it raised


@dataclass
class Job:
    """One cell's run, as its action sees it."""

    tag: Tag
    shared: Shared
    log: IO[str]
    log_path: Path
    post: Callable[[Event], None]
    session: Any = None  # set by the action once it opened the work dir
    plan_spent: Callable[[], bool] = field(default=lambda: False)
    # Called by the action once Terraform is done with the cell (before its ledger record is
    # written): the cell's slot goes to the next cell (see _Slots).
    release: Callable[[], None] = field(default=lambda: None)
    # Set by the action when the local disk failed under a cell whose outcome stands (e.g. its
    # result file after a done apply): said once, in the cell's warning line.
    local_problem: str = ""
    # A live table or CI lines follow the cell's Terraform (its -json events, its latest step);
    # a single cell (run_one) shows Terraform's own human output instead.
    follow: bool = True
    # tfdeploy's own lines about the cell (its header, warnings): the log, and for a single cell
    # stderr; `err_sink` is where Terraform's stderr goes (the log, or the terminal's stderr).
    tell: Callable[[str], None] | None = None
    err_sink: IO[str] | None = None
    # Set by the action: the stage's own result (plan, apply, destroy), for the one-cell view.
    stage: Any = None
    # What ended the cell's last attempt, if anything did (the one-cell view re-raises it: its
    # one line and exit code are the command's).
    exception: BaseException | None = None
    # Called by an action that planned ahead of its turn (fleet/turns.py), between its checked
    # plan and its apply: returns at the cell's turn or raises NotApplied.
    turn: Callable[[], None] | None = None

    def say(self, text: str) -> None:
        if self.tell is not None:
            self.tell(text)
            return
        self.log.write(text + "\n")
        self.log.flush()

    @property
    def source(self) -> Any:
        found = self.shared.sources[self.tag.name]
        if isinstance(found, TfdeployError):
            raise found
        return found

    def progress(self, state: str, counts: tuple[int, int, int] | None = None, detail: str = "") -> None:
        self.post(Event(self.tag.cell, self.tag.name, state, counts, detail=detail))

    def cell_lock(self) -> Any:
        from ..engine.stages import hold_cell

        return hold_cell(self.shared.repo_root, self.tag, environ=self.shared.environ, timeout_s=self.shared.lock_timeout_s,
                         command=f"tfdeploy fleet {self.tag.name}")


# An action runs one cell and returns its result word and +/~/- counts. An action whose cells
# may plan before their turn says so with `plans_ahead(action)` (it then calls `Job.turn`).
CellAction = Callable[[Job], tuple[str, tuple[int, int, int]]]


def plans_ahead(action: CellAction) -> CellAction:
    """Mark `action` as one that does its Terraform plan before its turn and waits in `Job.turn`."""
    action.plans_ahead = True  # type: ignore[attr-defined]
    return action


@dataclass
class Outcome:
    results: list[CellResult]
    signum: int | None  # the signal that stopped the run, if any


class _Stop:
    def __init__(self) -> None:
        self.reason = ""  # "fail-fast" or "interrupted"
        self.wake = threading.Event()  # ends retry back-offs early

    def why(self) -> str:
        """Why no more cells start ("" while the run goes on)."""
        if not self.reason:
            return ""
        return "interrupted" if self.reason == "interrupted" else "--fail-fast after a failure"


class _Slots:
    """At most `parallel` cells in their Terraform part at once. A cell gives its slot back as
    soon as Terraform is done with it, before its ledger record is written: on AWS that write is
    a few round trips, which the next cell's init and apply now overlap. The main thread waits on
    `waker()` beside the running cells, so a freed slot starts the next cell at once."""

    def __init__(self, parallel: int):
        self._free = threading.Semaphore(max(1, parallel))
        self._lock = threading.Lock()
        self._wake: Future = Future()

    def take(self, timeout_s: float | None = None) -> bool:
        """A free slot, now (no `timeout_s`) or within `timeout_s`; whether one was taken."""
        if timeout_s is None:
            return self._free.acquire(blocking=False)
        return self._free.acquire(timeout=timeout_s)

    def give(self) -> None:
        self._free.release()
        with self._lock:
            if not self._wake.done():
                self._wake.set_result(None)

    def waker(self) -> Future:
        with self._lock:
            if self._wake.done():
                self._wake = Future()
            return self._wake


class _Slot:
    """One cell's slot: given back once Terraform is done, taken again for a retry."""

    def __init__(self, slots: _Slots):
        self._slots, self.held = slots, True

    def release(self) -> None:
        if self.held:
            self.held = False
            self._slots.give()

    def retake(self, stop: _Stop) -> bool:
        """Wait for a slot (a retry runs Terraform again); False when the run is stopping."""
        while not self.held and not stop.reason:
            self.held = self._slots.take(POLL_S)
        return self.held


def _skip(step: Step, why: str, result: str = SKIPPED) -> CellResult:
    return CellResult(tag=step.tag.name, cell=step.tag.cell, result=result, error=why)


def run_cells(steps: list[Step], action: CellAction, *, shared: Shared, log_dir: Path, parallel: int,
              fail_fast: bool = False, retries: int = 0, display: Any,
              backoff: Callable[[int], float] = backoff_s, action_name: str = "",
              bake_s: float = 0.0) -> Outcome:
    """Run every step, at most `parallel` at a time; a step starts once the cells it comes after
    succeeded (and `bake_s` passed since the last of them ended: wave_bake_seconds) and is
    skipped if one of them did not. An action marked `plans_ahead` starts a later wave's cell
    once its wave's predecessors all started (fleet/turns.py): it plans, gives its slot back and
    applies at its turn. Returns results in schedule order."""
    log_dir.mkdir(parents=True, exist_ok=True)
    events: queue.Queue[Event] = queue.Queue()
    pending = list(steps)
    running: dict[Future, Step] = {}
    stop = _Stop()
    turns = Turns(bake_s, stop.why)
    done = turns.done
    slots = _Slots(parallel)
    ahead = getattr(action, "plans_ahead", False)
    global_cells = {step.tag.cell for step in steps if step.tag.region is None}
    started: set[str] = set()
    # Twice the slots: a cell writing its ledger record, or waiting for its turn, holds a thread
    # but no slot. A cell starts only with a thread free for it: one queued in the pool would
    # hold a slot that the cells waiting for their turn need.
    workers = 2 * max(1, parallel)
    for step in steps:
        display.add(step.tag.cell, step.tag.name)

    def drain() -> None:
        while True:
            try:
                display.event(events.get_nowait())
            except queue.Empty:
                return

    def finish(result: CellResult) -> None:
        turns.end(result)
        drain()  # the cell's own events before its end
        display.event(Event(result.cell, result.tag, result.result,
                            (result.add, result.change, result.destroy) if result.ok else None,
                            result.duration_s if result.result not in (SKIPPED,) else None,
                            detail=result.error, log=result.log if result.result == FAILED else ""))
        if result.result == FAILED and fail_fast and not stop.reason:
            stop.reason = "fail-fast"

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tfdeploy-cell") as pool:
        while pending or running:
            try:
                if supervise.received() is not None and stop.reason != "interrupted":
                    stop.reason = "interrupted"
                    stop.wake.set()
                for step in list(pending):
                    failed_before = turns.failed_before(step)
                    if failed_before:
                        pending.remove(step)
                        finish(_skip(step, f"{', '.join(failed_before)} did not succeed"))
                    elif stop.reason:
                        pending.remove(step)
                        finish(_skip(step, f"not started: {stop.why()}"))
                    elif len(running) >= workers:
                        continue
                    else:
                        early = not turns.ready(step)
                        if early and not (ahead and may_plan_ahead(step, global_cells, started)):
                            continue
                        if not slots.take():
                            continue
                        pending.remove(step)
                        started.add(step.tag.cell)
                        log = log_dir / f"{step.tag.cell}.log"
                        events.put(Event(step.tag.cell, step.tag.name, "running", log=str(log)))
                        running[pool.submit(_run_cell, step, action, shared, log, events.put, retries,
                                            backoff, stop, action_name, slots,
                                            turns if early else None)] = step
                drain()
                display.tick()
                if running:
                    finished, _ = wait([*running, slots.waker()], timeout=POLL_S, return_when=FIRST_COMPLETED)
                    for future in finished:
                        if future in running:
                            running.pop(future)
                            finish(future.result())
            except supervise.Interrupted:
                continue  # the handler raised it here (no Terraform running): the loop stops cells
        drain()
    order = {step.tag.cell: i for i, step in enumerate(steps)}
    results = sorted(done.values(), key=lambda r: order[r.cell])
    return Outcome(results, supervise.received())


def _run_cell(step: Step, action: CellAction, shared: Shared, log_path: Path,
              post: Callable[[Event], None], retries: int, backoff: Callable[[int], float],
              stop: _Stop, action_name: str, slots: _Slots, turns: Turns | None) -> CellResult:
    """One cell, in a worker thread, holding a slot the main thread took for it; never raises (a
    bug becomes a failed cell with a traceback in its log). `turns`: the cell started before its
    turn (planning ahead) and waits for it there."""
    slot = _Slot(slots)
    try:
        return _attempts(step, action, shared, log_path, post, retries, backoff, stop, action_name, slot,
                         turns=turns)
    except Exception as exc:  # noqa: BLE001 - a bug around the attempts: this cell fails, the run goes on
        return CellResult(tag=step.tag.name, cell=step.tag.cell, result=FAILED, log=str(log_path),
                          error=_unexpected(exc, log_path))
    finally:
        slot.release()


def failure_cause(exc: BaseException) -> str:
    """What kind of failure ended a cell, for its notification (pure): a refusal of the promotion
    gate (which notified on its own), a destroy the person declined, a state held by another run,
    or "" for any other."""
    from ..engine.destroy import NotConfirmed
    from ..engine.terraform import StateLocked
    from .promotion import PromotionRefused

    if isinstance(exc, PromotionRefused):
        return "promotion-refused"
    if isinstance(exc, NotConfirmed):
        return "declined"
    return "state-locked" if isinstance(exc, StateLocked) else ""


def _unexpected(exc: Exception, log_path: Path) -> str:
    """A cell's error line for an exception tfdeploy did not turn into one itself."""
    from .celllog import describe_os_error, is_disk_error

    if is_disk_error(exc):  # not a bug: the machine's disk; say so, and what to do
        return f"{describe_os_error(exc)} (errno {exc.errno}); free space, then run again with --only-failed"
    return f"internal error ({type(exc).__name__}: {exc}); details in {log_path}; please report this"


class _Terminal:
    """A single cell's "log": Terraform's output goes straight to the terminal, as it always did
    for one tag (no log file; the runner's own bookkeeping lines are not printed)."""

    problem = ""

    def __init__(self, out: IO[str], err: IO[str]):
        self.out, self.err = out, err

    def write(self, text: str) -> int:
        return self.out.write(text)

    def note(self, text: str) -> None:
        """The runner's bookkeeping lines are for a log file: the terminal has the command's own."""

    def flush(self) -> None:
        self.out.flush()

    def __enter__(self) -> "_Terminal":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.flush()


def run_one(step: Step, action: CellAction, *, shared: Shared, out: IO[str], err: IO[str],
            tell: Callable[[str], None], action_name: str) -> tuple[CellResult, Job]:
    """A single tag, as a fleet of one: the same attempt, cell lock, action, recording and
    CellResult as a fan-out's cell, run in this (the main) thread, with Terraform's output on the
    terminal (`out`, its stderr on `err`) and tfdeploy's lines through `tell`. Returns the result
    and the Job (its session, stage result and what ended it, for the one-cell view)."""
    slots = _Slots(1)
    slots.take()
    kept: list[Job] = []
    terminal = _Terminal(out, err)
    result = _attempts(step, action, shared, Path(), lambda event: None, 0, backoff_s, _Stop(), action_name,
                       _Slot(slots), log=terminal, tell=tell, kept=kept)
    result.log = ""
    return result, kept[0]


def _turn(step: Step, turns: Turns, slot: _Slot, stop: _Stop, job: Job) -> Callable[[], None]:
    """A cell's wait for its turn after planning ahead: without its slot (the cells it waits for
    and other plans use it), said in its line and log; the slot is taken again to apply."""
    from .display import PROGRESS

    def turn() -> None:
        waits_for = ", ".join(step.after)
        began = time.monotonic()
        if not turns.ready(step):
            job.progress(PROGRESS, detail=f"planned; applies once {waits_for} succeeded")
            job.say(f"tfdeploy: planned ahead; waiting for {waits_for} before applying")
            slot.release()
            turns.wait(step)
            if not slot.retake(stop):
                raise NotApplied(f"not applied: {stop.why()}; its plan was discarded")
        # The time the apply began, for whoever checks the order of waves in the log.
        job.say(f"tfdeploy: turn at {now_iso()}: applying the checked plan (waited "
                f"{time.monotonic() - began:.1f}s for {waits_for})")

    return turn


def _attempts(step: Step, action: CellAction, shared: Shared, log_path: Path,
              post: Callable[[Event], None], retries: int, backoff: Callable[[int], float],
              stop: _Stop, action_name: str, slot: _Slot, *, log: Any = None,
              tell: Callable[[str], None] | None = None, kept: list[Job] | None = None,
              turns: Turns | None = None) -> CellResult:
    from .celllog import CellLog

    tag = step.tag
    started, started_at = time.monotonic(), now_iso()
    result = CellResult(tag=tag.name, cell=tag.cell, result=FAILED, log=str(log_path), started_at=started_at)
    one = log is not None  # run_one: the terminal, not a log file
    # Never raises on write: a full disk leaves the log incomplete, not the cell failed.
    with log if one else CellLog(log_path) as log:
        log.note(f"# tfdeploy {action_name} {tag.name}: started {started_at}\n")
        log.flush()
        job = Job(tag, shared, log, log_path, post, release=slot.release, follow=not one, tell=tell,
                  err_sink=log.err)
        if kept is not None:
            kept.append(job)
        if turns is not None:
            job.turn = _turn(step, turns, slot, stop, job)
        for attempt in range(1, retries + 2):
            if not slot.retake(stop):
                break
            result.attempts = attempt
            try:
                word, counts = action(job)
                result.result, (result.add, result.change, result.destroy) = word, counts
                result.error = ""
                break
            except supervise.Interrupted as exc:
                result.result, result.error, job.exception = INTERRUPTED, str(exc), exc
                break
            except NotApplied as exc:  # planned ahead, and its turn never came: nothing changed
                result.result, result.error, job.exception = SKIPPED, str(exc), exc
                log.note(f"tfdeploy: {exc}\n")
                break
            except TfdeployError as exc:
                result.result, result.error, job.exception = FAILED, str(exc), exc
                result.cause = failure_cause(exc)
                log.note(f"tfdeploy: error: {exc}\n")
                if stop.reason or not should_retry(str(exc), attempt=attempt, retries=retries,
                                                   plan_spent=job.plan_spent()):
                    break
                delay = backoff(attempt)
                post(Event(tag.cell, tag.name, "retry",
                           detail=f"attempt {attempt + 1} of {retries + 1} in {delay:.0f}s after: {exc}"))
                log.write(f"# transient failure; attempt {attempt + 1} in {delay:.0f}s\n")
                log.flush()
                if stop.wake.wait(delay):
                    break
            except Exception as exc:  # a bug (or the disk): keep it in the log, fail this cell only
                job.exception = exc
                log.note(traceback.format_exc())  # a single cell raises it again, traceback and all
                result.result = FAILED
                result.error = _unexpected(exc, log_path)
                break
        if result.result == FAILED and supervise.received() is not None:
            result.result = INTERRUPTED
        result.duration_s = round(time.monotonic() - started, 1)
        result.finished_at = now_iso()
        if job.session is not None:
            backend = job.session.deployment.backend
            result.state = f"s3://{backend.bucket}/{backend.key}"
        log.note(f"# finished {result.finished_at}: {result.result}"
                 + (f": {result.error}" if result.error else "") + "\n")
        log.flush()
        problems = [p for p in (job.local_problem, log.problem) if p]
        if problems:  # one line for the cell, however many writes failed
            import sys

            from .celllog import DISK_WORDS

            result.local_problem = "; ".join(problems)
            if not any(words in result.error for words in DISK_WORDS):  # else its failure line said it
                print(f"[{tag.cell}] tfdeploy: warning: {result.local_problem}", file=sys.stderr, flush=True)
    return result
