"""Run a buildspec's `batch: build-graph` on this machine, with CodeBuild's semantics.

What is reproduced, and how:
- Every task of `build-graph` is one build of the same buildspec (or of its `buildspec:` file,
  relative to the source dir), run by buildspec_runner.run_build with the task's `env.variables`
  over the buildspec's (like CodeBuild's per-task env override); `--env` overrides both.
- Each build gets its own copy of the source dir (`<work>/<identifier>/src`, without `.tfdeploy`),
  as each CodeBuild build gets its own source: exports, reports and artifacts never collide.
- A task starts once every task in its `depend-on` succeeded (or failed with `ignore-failure`);
  a task whose dependency failed never starts (`skipped`). `fast-fail: true` starts no more tasks
  after a failure (running ones finish here; CodeBuild stops them). At most `parallel` builds run
  at once (CodeBuild: the account's concurrent-build quota; tfdeploy's graphs are also split into
  waves of at most max_parallel_builds).
- The batch fails when a task without `ignore-failure` failed or was skipped.
- `stop` (a threading.Event, set from another thread): no more tasks start, and running builds'
  shells are terminated and reported `stopped` (what StopBuildBatch does; tests' CodeBuild double).
  `notify` is called with a task's result each time its status changes (started, ended, skipped).
Each build's output goes to `<work>/<identifier>.log`; one line per start and end goes to `say`.
"""

from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ValidationError
from .buildspec_runner import _NAME, Buildspec, BuildResult, _scalar, parse_buildspec, run_build

SUCCEEDED, FAILED, SKIPPED, NOT_STARTED = "succeeded", "failed", "skipped", "not started"
RUNNING, STOPPED = "running", "stopped"
_IDENT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


@dataclass(frozen=True)
class Task:
    identifier: str
    variables: dict[str, str]
    depend_on: tuple[str, ...] = ()
    ignore_failure: bool = False
    buildspec: str = ""  # another buildspec file for this task, relative to the source dir


@dataclass(frozen=True)
class Batch:
    tasks: tuple[Task, ...]
    fast_fail: bool = False


@dataclass
class TaskResult:
    identifier: str
    status: str
    variables: dict[str, str]
    log: str = ""
    duration_s: float = 0.0
    started: float = 0.0  # monotonic, for the benchmark's concurrency count
    ended: float = 0.0
    build: BuildResult | None = None
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.identifier, "tag": self.variables.get("TFDEPLOY_TAG", ""),
                "wave": int(self.variables["TFDEPLOY_WAVE"]) if self.variables.get("TFDEPLOY_WAVE", "").isdigit() else None,
                "status": self.status, "log": self.log, "duration_s": round(self.duration_s, 3),
                "reason": self.reason,
                "failure": self.build.failure.describe() if self.build and self.build.failure else None,
                "exported_variables": dict(self.build.exported) if self.build else {}}


@dataclass
class BatchOutcome:
    results: list[TaskResult]
    peak: int = 0
    wall_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every build succeeded, or failed with ignore-failure."""
        return all(r.status == SUCCEEDED or (r.status == FAILED and r.reason == "ignored") for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "builds": [r.to_dict() for r in self.results], "peak_concurrency": self.peak,
                "wall_s": round(self.wall_s, 3)}


def parse_batch(data: Any, source: str = "buildspec") -> Batch | None:
    """The `batch:` section's build graph (None when the buildspec has none); pure."""
    if not isinstance(data, dict) or data.get("batch") is None:
        return None
    batch = data["batch"]
    if not isinstance(batch, dict):
        raise ValidationError(f"{source}: batch must be a mapping")
    others = [k for k in ("build-list", "build-matrix", "build-fanout") if k in batch]
    if others:
        raise ValidationError(f"{source}: batch.{others[0]} is not run locally; only batch.build-graph is")
    graph = batch.get("build-graph")
    if not isinstance(graph, list) or not graph:
        raise ValidationError(f"{source}: batch.build-graph must be a list of build tasks")
    tasks: list[Task] = []
    seen: set[str] = set()
    for i, raw in enumerate(graph, 1):
        where = f"{source}: batch.build-graph item {i}"
        if not isinstance(raw, dict):
            raise ValidationError(f"{where} must be a mapping with an identifier")
        ident = raw.get("identifier")
        if not isinstance(ident, str) or not ident or not set(ident) <= _IDENT_CHARS:
            raise ValidationError(f"{where}: identifier {ident!r} must be letters, digits or '_'")
        if ident in seen:
            raise ValidationError(f"{where}: identifier {ident!r} is used twice")
        seen.add(ident)
        env = raw.get("env") or {}
        if not isinstance(env, dict):
            raise ValidationError(f"{where}: env must be a mapping")
        variables = {}
        for name, value in (env.get("variables") or {}).items():
            if not isinstance(name, str) or not _NAME.fullmatch(name):
                raise ValidationError(f"{where}: env.variables name {name!r} is not a valid variable name")
            variables[name] = _scalar(value, f"{where}: env.variables.{name}")
        depend = raw.get("depend-on") or []
        if not isinstance(depend, list) or not all(isinstance(d, str) for d in depend):
            raise ValidationError(f"{where}: depend-on must be a list of identifiers")
        tasks.append(Task(ident, variables, tuple(depend), raw.get("ignore-failure") is True,
                          str(raw.get("buildspec") or "")))
    for task in tasks:
        unknown = [d for d in task.depend_on if d not in seen]
        if unknown:
            raise ValidationError(f"{source}: build {task.identifier} depends on {unknown[0]!r}, "
                                  "which is not in the build graph")
    _check_acyclic(tasks, source)
    return Batch(tuple(tasks), batch.get("fast-fail") is True)


def _check_acyclic(tasks: list[Task], source: str) -> None:
    deps = {t.identifier: t.depend_on for t in tasks}
    state: dict[str, int] = {}

    def visit(node: str, path: tuple[str, ...]) -> None:
        if state.get(node) == 2:
            return
        if state.get(node) == 1:
            raise ValidationError(f"{source}: the build graph has a cycle: {' -> '.join((*path, node))}")
        state[node] = 1
        for dep in deps[node]:
            visit(dep, (*path, node))
        state[node] = 2

    for task in tasks:
        visit(task.identifier, ())


def _copy_source(src_dir: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src_dir, dest, symlinks=True, ignore=shutil.ignore_patterns(".tfdeploy"))


def run_batch(spec: Buildspec, batch: Batch, src_dir: Path, work_dir: Path, *,
              overrides: Mapping[str, str] | None = None, skip_install: bool = False,
              parallel: int = 20, say: Callable[[str], None] = lambda line: None,
              base_env: Mapping[str, str] | None = None,
              task_env: Callable[[Task], Mapping[str, str]] | None = None,
              stop: threading.Event | None = None,
              notify: Callable[[TaskResult], None] = lambda result: None) -> BatchOutcome:
    """Run the graph's builds, at most `parallel` at once, each in its own copy of `src_dir`.

    `task_env` adds variables per task over its env.variables (pipeline run: where the cell's
    plan artifact is). Never raises for a failing build."""
    src_dir, work_dir = src_dir.resolve(), work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, TaskResult] = {t.identifier: TaskResult(t.identifier, NOT_STARTED, dict(t.variables))
                                      for t in batch.tasks}
    pending = list(batch.tasks)
    running: dict[Future, Task] = {}
    lock = threading.Lock()
    in_flight, peak = 0, 0
    stopping = False
    begun = time.monotonic()

    def one(task: Task) -> TaskResult:
        nonlocal in_flight, peak
        result = results[task.identifier]
        log_path = work_dir / f"{task.identifier}.log"
        result.log = str(log_path)
        build_src = work_dir / task.identifier / "src"
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        result.started = time.monotonic()
        try:
            _copy_source(src_dir, build_src)
            task_spec = spec
            if task.buildspec:
                from .buildspec_runner import load_buildspec

                task_spec = load_buildspec(build_src / task.buildspec)
            env = {**task.variables, **(task_env(task) if task_env else {}), **(overrides or {})}
            with open(log_path, "wb", buffering=0) as log:  # unbuffered: the log can be followed as it runs
                result.build = run_build(task_spec, build_src, overrides=env, skip_install=skip_install,
                                         sink=log.write, base_env=base_env, cancel=stop)
            result.status = SUCCEEDED if result.build.succeeded else (
                STOPPED if stop is not None and stop.is_set() else FAILED)
            if result.status == FAILED and task.ignore_failure:
                result.reason = "ignored"
        except ValidationError as exc:
            result.status, result.reason = FAILED, str(exc)
        finally:
            result.ended = time.monotonic()
            result.duration_s = result.ended - result.started
            with lock:
                in_flight -= 1
        return result

    def passed(ident: str) -> bool:
        r = results[ident]
        return r.status == SUCCEEDED or (r.status == FAILED and r.reason == "ignored")

    finished: set[str] = set()
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="tfdeploy-batch") as pool:
        while pending or running:
            stopped = stop is not None and stop.is_set()
            for task in list(pending):
                blocked = [d for d in task.depend_on if d in finished and not passed(d)]
                if blocked or stopping or stopped:
                    pending.remove(task)
                    result = results[task.identifier]
                    result.status = SKIPPED if blocked and not stopped else NOT_STARTED
                    result.reason = ("not started: the batch was stopped" if stopped else
                                     f"{', '.join(blocked)} did not succeed" if blocked
                                     else "not started: fast-fail after a failure")
                    finished.add(task.identifier)
                    say(f"[{task.identifier}] {result.status}: {result.reason}")
                    notify(result)
                elif all(d in finished for d in task.depend_on) and len(running) < parallel:
                    pending.remove(task)
                    say(f"[{task.identifier}] started"
                        + (f" ({task.variables['TFDEPLOY_TAG']})" if "TFDEPLOY_TAG" in task.variables else ""))
                    results[task.identifier].status = RUNNING
                    notify(results[task.identifier])
                    running[pool.submit(one, task)] = task
            if not running:
                if pending and not any(all(d in finished for d in t.depend_on) for t in pending):
                    break  # unreachable after validation (no cycles); never spin
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)  # a stop ends the running builds too
            for future in done:
                task = running.pop(future)
                result = future.result()
                finished.add(task.identifier)
                say(f"[{task.identifier}] {result.status} ({result.duration_s:.1f}s)"
                    + (f": {result.build.failure.describe()}" if result.build and result.build.failure else "")
                    + (f": {result.reason}" if result.reason and result.reason != "ignored" else "")
                    + (" (ignore-failure)" if result.reason == "ignored" else ""))
                notify(result)
                if result.status == FAILED and batch.fast_fail and result.reason != "ignored":
                    stopping = True
    return BatchOutcome([results[t.identifier] for t in batch.tasks], peak, time.monotonic() - begun)


def run_batch_here(spec: Buildspec, batch: Batch, src_dir: Path, work_dir: Path, **options: Any) -> BatchOutcome:
    """`run_batch` as a command on this machine runs it (`buildspec run`, `pipeline run`): a
    SIGINT, SIGTERM or SIGHUP stops the batch, as StopBuildBatch stops one (no build starts; each
    running build's process group, its shell and a cell's tfdeploy, gets one SIGTERM and time to end
    (buildspec_runner.STOP_GRACE_S): the tfdeploy stops its Terraform and records the run; the build
    ends `stopped`), then Interrupted names what was stopped. Builds run in sessions of their own, so
    without this a stopped command left them deploying, unwatched, and said no state was affected."""
    from ..engine import supervise

    stop = threading.Event()
    finished = threading.Event()

    def watch() -> None:
        while not finished.wait(supervise.POLL_S * 2):
            if supervise.received() is not None:
                stop.set()
                return

    with supervise.supervising_remote():
        watcher = threading.Thread(target=watch, name="tfdeploy-batch-stop", daemon=True)
        watcher.start()
        try:
            outcome = run_batch(spec, batch, src_dir, work_dir, stop=stop, **options)
        finally:
            finished.set()
            watcher.join()
    signum = supervise.received()  # a signal after the last build ended is still one to report
    if signum is None:
        return outcome
    by_status = {status: [r.identifier for r in outcome.results if r.status == status]
                 for status in (STOPPED, SUCCEEDED, FAILED, NOT_STARTED, SKIPPED)}
    said = "; ".join(f"{status}: {', '.join(names)}" for status, names in by_status.items() if names)
    raise supervise.Interrupted(
        f"interrupted ({supervise.signal_name(signum)}): the batch was stopped ({said}); the running builds got "
        f"one SIGTERM and time to end (a tfdeploy in one stops its Terraform and records the run); logs in "
        f"{work_dir}; run it again when ready", signum)


def load_batch(path: Path) -> tuple[Buildspec, Batch | None]:
    """A buildspec file and its batch section (None without one)."""
    from .buildspec_runner import load_yaml

    data = load_yaml(path)
    return parse_buildspec(data, str(path)), parse_batch(data, str(path))


def default_work_dir(src_dir: Path) -> Path:
    """`SRC/.tfdeploy/batch/<UTC time>`: git-ignored, and never copied into a build's source."""
    return src_dir / ".tfdeploy" / "batch" / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
