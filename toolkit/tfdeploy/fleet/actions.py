"""What the fleet does to one cell: plan, apply (saved plan or --auto-approve), destroy, drift.

Each action opens the cell's work dir under its cell lock, sends Terraform's output to the cell's
log, and returns (result, (+, ~, -)). The git checks of the tag were done once in the main thread
(`Job.source`); the work dir is built from that commit.
"""

from __future__ import annotations

import re
from typing import Any, Callable

from .runner import CellAction, Job, plans_ahead


def open_cell(job: Job, *, reuse: bool = False) -> Any:
    from ..engine.stages import open_session

    shared = job.shared
    session = open_session(shared.repo_root, job.tag, overrides=shared.overrides, environ=shared.environ,
                           options=shared.options, terraform_bin=shared.terraform_bin, sink=job.log,
                           err_sink=job.err_sink, reuse_workdir=reuse, lock_timeout_s=shared.lock_timeout_s,
                           source=None if reuse else job.source)
    job.session = session
    job.plan_spent = lambda: _spent(session)
    if job.follow:
        session.terraform.on_wait = _show_wait(job)
    for kept in session.workdir.rescued:
        job.say(f"WARNING: a state Terraform could not save was left in the old work dir: "
                f"{kept.sentence(job.tag.name)}")
    if session.workdir.source.worktree:
        job.say(f"WARNING: --worktree: planning the WORKING TREE of {shared.repo_root}, not the tagged "
                f"commit of {job.tag.name}. Do not apply this to a shared environment.")
    where = f"sandbox {session.sandbox_endpoint}" if session.sandbox_endpoint else "AWS"
    job.say(f"tfdeploy: {job.tag.name} @ {session.workdir.source.commit[:12]} -> "
            f"{session.deployment.target_module} in {session.deployment.region} ({where}); work dir "
            f"{session.workdir.path}")
    return session


def _note_local_problems(job: Job, result: Any) -> None:
    """A result file the disk could not take after a done change: the cell still succeeded (and
    is recorded so); its warning line says what is missing (results.write_result_after_change)."""
    from ..results import RESULT_NOT_WRITTEN

    missing = [note for note in result.notes if note.startswith(RESULT_NOT_WRITTEN)]
    if missing:
        job.local_problem = "; ".join(missing)


def _show_wait(job: Job) -> Callable[[str], None]:
    """A wait (for the plugin cache lock) in the cell's line, not only in its log: a cell that
    waits is otherwise silent while its clock runs."""
    from .display import PROGRESS

    return lambda text: job.progress(PROGRESS, detail=text)


def _spent(session: Any) -> bool:
    """Did an apply start (it claimed its saved plan: every apply applies one)? Then it may have
    changed things: never retried."""
    from ..engine.stages import PLAN_SPENT

    return (session.workdir.path / PLAN_SPENT).exists()


def _counts(counts: dict[str, Any]) -> tuple[int, int, int]:
    return int(counts.get("add", 0)), int(counts.get("change", 0)), int(counts.get("destroy", 0))


def plan_action(before: Callable[[Any], None] | None = None, auto_approved: bool = False) -> CellAction:
    """Plan one cell into its saved plan. `before(session)`: run on the opened work dir before
    the plan (`tfdeploy run`'s lint and scan, engine/flow.py; it raises to stop the cell);
    `auto_approved`: the plan is to be applied without review (`run --auto-approve`), which its
    apply's ledger record says, as an `apply --auto-approve` record does."""

    def plan_cell(job: Job) -> tuple[str, tuple[int, int, int]]:
        from ..engine.stages import plan

        with job.cell_lock():
            session = open_cell(job)
            if before is not None:
                before(session)
            # Human lines, not -json: the plan's log keeps the diff a reviewer reads.
            if job.follow:
                session.terraform.on_line = _follow_lines(job, session.deployment.target_module)
            result, _summary = plan(session, auto_approved=auto_approved)
        job.stage = result
        return "planned", _counts(result.counts)

    return plan_cell


plan_cell = plan_action()


def _recorded(job: Job, action: str) -> Any:
    """The cell's ledger record (fleet/recording.py); a record that cannot be written is said in
    the cell's log and on stderr."""
    from .recording import recorded

    return recorded(action, job.shared.environ, _warner(job), before_write=job.release)


def _show_planned(job: Job, event: dict[str, Any]) -> None:
    """The live table shows what an auto-approved apply planned as soon as Terraform says it."""
    from ..engine.tfjson import change_summary

    planned = change_summary([event], operation="plan")
    if planned is not None:
        job.progress("plan", (planned.add, planned.change, planned.remove))


# Terraform's events that say what it is doing to a resource right now.
_STEPS = {"apply_start", "apply_progress", "apply_complete", "apply_errored", "provision_start",
          "provision_complete", "refresh_start"}


def _follow(job: Job, namespace: str) -> Callable[[dict[str, Any]], None]:
    """What a fleet shows of a cell's Terraform events: its plan's counts as soon as Terraform
    says them, and its latest step (the live table's last column, CI's "still running" line),
    without the `namespace` (module.regional/module.global) every one of its resources shares."""
    from .display import PROGRESS

    prefix = f"{namespace}."

    def on_event(event: dict[str, Any]) -> None:
        _show_planned(job, event)
        if event.get("type") in _STEPS and event.get("@message"):
            job.progress(PROGRESS, detail=str(event["@message"]).removeprefix(prefix))

    return on_event


# Terraform's human lines that say what a plan is reading right now. They start at the first
# column with the resource's address; the diff's lines are indented, so a value never matches.
_PLAN_STEP = re.compile(r"^\S.*?: (Refreshing state\.\.\.|Reading\.\.\.|Still reading\.\.\.|Read complete after )")


def plan_step(line: str, namespace: str) -> str | None:
    """The step a plan's human line reports (`x: Refreshing state... [id=…]`), without the
    `namespace` every resource of the cell shares; None for any other line (pure)."""
    if not _PLAN_STEP.match(line):
        return None
    return line.strip().removeprefix(f"{namespace}.")


def _follow_lines(job: Job, namespace: str) -> Callable[[str], None]:
    """A plan's latest step for the fleet's display, from Terraform's human output."""
    from .display import PROGRESS

    def on_line(line: str) -> None:
        step = plan_step(line, namespace)
        if step is not None:
            job.progress(PROGRESS, detail=step)

    return on_line


def _note(job: Job) -> Callable[[str], None]:
    return lambda text: job.say(f"tfdeploy: {text}")


def apply_action(auto_approve: bool, override: Any = None) -> CellAction:
    """Apply one cell (fleet/applycell.py, as `apply` of one tag does): a refused cell fails
    alone, its one line in the matrix and its log."""

    def apply_cell(job: Job) -> tuple[str, tuple[int, int, int]]:
        from .applycell import apply_cell as apply_one

        with job.cell_lock(), _recorded(job, "apply") as rec:
            session = open_cell(job, reuse=not auto_approve)
            if job.follow:
                session.terraform.on_event = _follow(job, session.deployment.target_module)
            # The tag now, checked once for the whole run.
            current = session.workdir.source if auto_approve else job.source
            result = apply_one(rec, session, job.shared.environ, auto_approve=auto_approve, current=current,
                               override=override, note=_note(job), turn=job.turn)
        _note_local_problems(job, result)
        job.stage = result
        return "applied", rec.counts

    # --auto-approve plans in the cell's own run: a later wave's cell plans while the canary
    # applies and applies at its turn. A reviewed apply's plans are made already.
    return plans_ahead(apply_cell) if auto_approve else apply_cell


def destroy_action(allow_protected: bool, confirm: Callable[[Any, Any], bool] | None = None) -> CellAction:
    """Destroy one cell (engine/destroy.py); the tagged commit's settings may still protect its env
    (they can add protection, never lift it). Without `confirm` (a fan-out asked once for the
    whole list before any cell started) each cell runs approved. With it (one tag), `confirm(session,
    planned)` sees the destroy plan and says yes or no; the ledger records the destroy once it is
    confirmed (a declined one changes nothing)."""

    def destroy_cell(job: Job) -> tuple[str, tuple[int, int, int]]:
        from ..engine.destroy import destroy, refuse_protected
        from ..gates.policy import policy_settings

        with job.cell_lock(), _recorded(job, "destroy") as rec:
            session = open_cell(job)
            if confirm is None:
                rec.session = session
            policy = policy_settings(job.shared.repo_root, session.workdir.path, job.shared.environ)
            refuse_protected(session.tag, policy, allow_protected=allow_protected)
            if job.follow:
                session.terraform.on_event = _follow(job, session.deployment.target_module)  # for its apply
                session.terraform.on_line = _follow_lines(job, session.deployment.target_module)  # its plan
            if confirm is None:
                result, summary = destroy(session, auto_approve=True)
            else:
                def confirmed(planned: Any) -> bool:
                    if confirm(session, planned):
                        rec.session = session
                        return True
                    return False

                result, summary = destroy(session, auto_approve=False, confirm=confirmed)
            rec.counts = (summary.add, summary.change, summary.destroy)
        _note_local_problems(job, result)
        job.stage = result
        return "destroyed", (summary.add, summary.change, summary.destroy)

    return destroy_cell


def drift_action(found: dict[str, list[dict[str, Any]]]) -> CellAction:
    """Refresh and plan one cell at the tag it last applied (Job.source: checked against the
    ledger's commit in the main thread), in its own drift work dir (engine/driftplan.py): never
    applied, no saved plan left, the state only read. The differing resources go into
    `found[cell]`; the check is recorded in the ledger (action `drift`), whatever its result."""

    def drift_cell(job: Job) -> tuple[str, tuple[int, int, int]]:
        from ..engine.driftplan import open_drift_session, redacted, refresh_and_plan
        from ..errors import TfdeployError
        from .drift import DRIFTED, IN_SYNC, change_counts, differing_resources
        from .ledger import Place, now_iso, record_run

        shared, started_at = job.shared, now_iso()
        with job.cell_lock():
            session = open_drift_session(shared.repo_root, job.tag, job.source, overrides=shared.overrides,
                                         environ=shared.environ, terraform_bin=shared.terraform_bin,
                                         log=job.log, lock_timeout_s=shared.lock_timeout_s)
            session.terraform.on_wait = _show_wait(job)
            job.log.write(f"tfdeploy: drift check of {job.tag.name} @ {session.workdir.source.commit[:12]} in "
                          f"{session.workdir.path} (plan only: nothing is applied)\n")
            job.log.flush()
            backend = session.deployment.backend

            def record(result: str, counts: tuple[int, int, int], details: dict[str, Any]) -> None:
                record_run(session.tag, None, shared.environ, cache_dir=session.cache, action="drift",
                           result=result, commit=session.workdir.source.commit, counts=counts,
                           started_at=started_at, details=details, warn=_warner(job),
                           place=Place(backend.bucket, backend.region),
                           signing=(session.deployment.ledger_signing_key, session.deployment.state_region))

            try:
                raw = refresh_and_plan(session)
            except TfdeployError as exc:
                record("failed", (0, 0, 0), {"error": " ".join(str(exc).split())[:2000]})
                raise
            resources = differing_resources(raw, redacted(raw))
            counts = change_counts(raw)
            found[job.tag.cell] = resources
            result = DRIFTED if resources else IN_SYNC
            record(result, counts, {"resources": resources})
        return result, counts

    return drift_cell


def _warner(job: Job) -> Callable[[str], None]:
    """A warning about the cell: a single cell's stderr line, or a fan-out cell's log and its
    `[cell]` line on stderr."""
    import sys

    def warn(text: str) -> None:
        if job.tell is not None:
            job.tell(f"tfdeploy: warning: {text}")
            return
        job.log.write(f"tfdeploy: warning: {text}\n")
        print(f"[{job.tag.cell}] tfdeploy: warning: {text}", file=sys.stderr, flush=True)

    return warn


# action name -> its CellAction for a command's RunOptions (fleet/options.py)
ACTIONS: dict[str, Callable[[Any], CellAction]] = {
    "plan": lambda run: plan_cell,
    "apply": lambda run: apply_action(run.auto_approve, run.override),
    "destroy": lambda run: destroy_action(run.allow_protected),
}
