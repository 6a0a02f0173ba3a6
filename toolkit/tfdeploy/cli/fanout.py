"""The fleet path of `plan`, `apply` (and `destroy`): many tags or patterns, run in parallel.

One exact `--tag` keeps the single-cell commands exactly as they were; several tags, a pattern,
`--only-failed` or `--retry` take this path.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable, NoReturn

import click

from .common import RepoContext, echo_json, shown_path


def fanout_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--parallel, --fail-fast, --retry, --only-failed (used when many cells run)."""
    from ..fleet.schedule import default_parallel

    func = click.option("--only-failed", is_flag=True,
                        help="Run again only the cells that failed (or were skipped or interrupted) in "
                             "the previous run of the same --tag arguments and command.")(func)
    func = click.option("--retry", type=click.IntRange(0, 10), default=0, show_default=True, metavar="N",
                        help="Retry a cell up to N times, with backoff, after a transient error "
                             "(throttling, connection reset, timeout, lock busy); never after an "
                             "apply started.")(func)
    func = click.option("--fail-fast", is_flag=True,
                        help="After a cell fails, start no more cells (running ones finish).")(func)
    func = click.option("--parallel", type=click.IntRange(1, 64), default=default_parallel(),
                        show_default=True, metavar="N",
                        help="Cells run at once (default: 2 per CPU, 2 to 8, no more than fit in memory at 600 MB each).")(func)
    return func


# The command options that travel together as one RunOptions (option name -> field).
_RUN_FIELDS = {"source": "source", "terraform_bin": "terraform_bin", "lock_timeout": "lock_timeout_s",
               "as_json": "as_json", "exports": "exports", "detailed_exitcode": "detailed_exitcode", "parallel": "parallel",
               "fail_fast": "fail_fast", "retry": "retry", "only_failed": "only_failed",
               "auto_approve": "auto_approve", "allow_protected": "allow_protected"}


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Pass the command's run options as one `run: RunOptions` (and --skip-promotion-check
    --reason as its PromotionOverride) instead of a parameter each."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ..fleet.options import PromotionOverride, RunOptions

        values = {field: kwargs.pop(name) for name, field in _RUN_FIELDS.items() if name in kwargs}
        if "skip_promotion_check" in kwargs:
            values["override"] = PromotionOverride.requested(kwargs.pop("skip_promotion_check"),
                                                             kwargs.pop("reason", None), os.environ)
        return func(*args, run=RunOptions(**values), **kwargs)

    return wrapper


def wants_fanout(tags: tuple[str, ...], run: Any) -> bool:
    from ..fleet.selection import is_fanout

    return is_fanout(tags) or bool(run.retry) or run.only_failed


def run_fanout(repo: RepoContext, tag_args: tuple[str, ...], action: str, run: Any, *,
               confirm: Callable[[list[Any]], None] | None = None,
               narrow: Callable[[tuple[Any, ...]], tuple[tuple[Any, ...], list[Any]]] | None = None) -> NoReturn:
    """Select, schedule and run the cells; print the matrix (and --json); exit with the fleet's code.

    `run` (fleet/options.RunOptions): how the cells run, the apply's override included.
    `narrow` (destroy) sees the selected tags first and returns those to run and the CellResults
    of the cells it leaves out on purpose (shown in the matrix, never run).
    `confirm` (destroy) sees the scheduled steps before any cell starts and may refuse."""
    from ..engine.stages import check_sources, find_terraform
    from ..engine.tagindex import list_tags
    from ..fleet.actions import ACTIONS
    from ..fleet.display import LiveDisplay, make_display
    from ..fleet.preflight import Fleet, run_checks
    from ..fleet.results import (
        RUNS_DIR,
        RunRecord,
        document,
        exit_code,
        matrix,
        new_run_id,
        now_iso,
        only_failed_tags,
        selection_key,
        summary_line,
        write_record,
    )
    from ..fleet.runner import Shared, run_cells
    from ..fleet.schedule import schedule
    from ..fleet.selection import expand
    from ..model.tags import parse_tag
    from ..paths import repo_cache_dir

    as_json, source = run.as_json, run.source
    out = sys.stderr if as_json else sys.stdout  # with --json, stdout carries only the document
    say = functools.partial(click.echo, file=out)
    display = make_display(out)  # before any work: a bad display setting is refused first
    settings = repo.settings
    _prewarm(repo)
    extra = settings.extra_regions
    runs = repo_cache_dir(repo.root, os.environ) / RUNS_DIR
    if run.only_failed:
        previous, names = only_failed_tags(runs, action, tag_args)
        if not names:
            say(f"nothing to run again: every cell of the previous {action} ({previous.run_id}) succeeded")
            if as_json:
                echo_json({"ok": True, "cells": []})
            sys.exit(0)
        tags = tuple(parse_tag(name, extra) for name in names)
        say(f"--only-failed: running again {len(tags)} of {len(previous.cells)} cells of run {previous.run_id}")
    else:
        selection = expand(tag_args, list_tags(repo.root, extra), extra)
        for note in selection.notes:
            click.echo(f"tfdeploy: note: {note}", err=True)
        tags = selection.tags
    left_out: list[Any] = []
    if narrow is not None:
        tags, left_out = narrow(tags)
    steps = schedule(tags, action, settings.waves, settings.max_parallel_builds)

    # Once for every cell: the Terraform binary and each tag's git checks (a failing tag fails
    # its cell alone, with its own error); then what all cells share (credentials, state buckets):
    # a problem there is one line and no cell starts.
    sources: dict[str, Any] = check_sources(repo.root, tags, settings.default_branch, source)
    run_checks(Fleet(repo.root, settings, os.environ, repo.overrides, tags, sources))
    if confirm is not None:
        confirm(steps)
    shared = Shared(repo.root, repo.overrides, os.environ, source,
                    find_terraform(run.terraform_bin, repo.root, os.environ), run.lock_timeout_s, sources)
    record = RunRecord(run_id=new_run_id(), action=action, tag_args=list(tag_args),
                       key=selection_key(action, tag_args), started_at=now_iso())
    log_dir = runs / record.run_id
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from ..errors import TfdeployError
        from ..fleet.celllog import describe_os_error

        raise TfdeployError(f"cannot create the run's log folder {log_dir} ({describe_os_error(exc)}); no cell "
                            "was started: free space, then run again") from None
    say(f"tfdeploy: {action} of {len(steps)} cells, {min(run.parallel, len(steps))} at a time; logs in {shown_path(log_dir)}")
    with display:
        outcome = run_cells(steps, ACTIONS[action](run), shared=shared,
                            log_dir=log_dir, parallel=run.parallel, fail_fast=run.fail_fast, retries=run.retry,
                            display=display, action_name=action,
                            bake_s=settings.wave_bake_seconds if action != "destroy" else 0.0)
    outcome.results = left_out + outcome.results
    record.finished_at, record.interrupted = now_iso(), outcome.signum is not None
    try:
        write_record(runs, record, outcome.results)
    except OSError as exc:
        from ..fleet.celllog import describe_os_error

        click.echo(f"tfdeploy: warning: the run record {log_dir / 'run.json'} was not written "
                   f"({describe_os_error(exc)}): --only-failed cannot pick up this run", err=True)
    _notify(repo, action, tag_args, outcome.results, str(log_dir))
    # A live table showed every cell as it ended: then the run in one line, not the table again.
    say(summary_line(outcome.results) if isinstance(display, LiveDisplay) else matrix(outcome.results))
    _disk_summary(outcome.results)
    if as_json:
        echo_json(document(outcome.results))
    code = exit_code(outcome.results, detailed=run.detailed_exitcode, signum=outcome.signum)
    if outcome.signum is not None:
        from ..engine.supervise import signal_name

        click.echo(f"tfdeploy: error: interrupted ({signal_name(outcome.signum)}); running cells were "
                   "stopped gracefully, no new ones started; see the matrix, then run again with "
                   "--only-failed", err=True)
    elif code == 1:
        failed = [r for r in outcome.results if not r.ok]
        click.echo(f"tfdeploy: error: {len(failed)} of {len(outcome.results)} cells did not succeed "
                   f"({', '.join(r.cell for r in failed)}); see their logs, fix, then run the same "
                   "command with --only-failed", err=True)
    sys.exit(code)


def _disk_summary(results: list[Any]) -> None:
    """One line for the run when the local disk failed under some cells (their own lines came
    as they ended): which cells, and that their results above are still what Terraform did."""
    from ..fleet.celllog import DISK_WORDS

    hit = [r.cell for r in results if r.local_problem or any(w in r.error for w in DISK_WORDS)]
    if hit:
        click.echo(f"tfdeploy: warning: the local disk failed during this run under {len(hit)} of {len(results)} "
                   f"cells ({', '.join(hit)}); each cell's result above is what Terraform did; free space "
                   "before the next run", err=True)


def _prewarm(repo: RepoContext) -> None:
    """Build the state bucket's S3 client (botocore's import, ~0.12 s) while the tags are listed
    and checked, before the first cell needs it. A problem here is left for the cells to report."""
    from ..engine.stages import prewarm_state_client, terraform_environment
    from ..errors import TfdeployError

    try:
        env, endpoint, _extra = terraform_environment(repo.root, os.environ)
        prewarm_state_client(repo.settings, None, env, endpoint)
    except TfdeployError:
        pass


def _notify(repo: RepoContext, action: str, tag_args: tuple[str, ...], results: list[Any], log_dir: str) -> None:
    """The run's one notification, the same for one tag and a fan-out (fleet/notify.run_failed)."""
    from ..fleet.notify import notify, run_failed

    try:
        settings = repo.settings
    except Exception:  # noqa: BLE001 - no valid settings: nothing was applied, and no topic can be trusted
        return
    message = run_failed(action, tag_args, results, log_dir) if settings.notify_topic_arn else None
    if message is not None:
        event, subject, payload = message
        notify(event, subject, payload, settings, os.environ)


def run_single(repo: RepoContext, tag: Any, action: str, run: Any, cell_action: Any = None) -> Any:
    """One exact --tag, as a fleet of one: the fan-out's cell action, cell lock, recording and
    notification (fleet/runner.run_one), in this thread, with Terraform's output on the terminal.

    Returns the Job (its session and stage result) for the one-cell view. A cell that did not
    succeed raises what ended it, so the command's one error line and exit code are the cell's."""
    from ..engine.stages import check_sources, find_terraform
    from ..fleet.actions import ACTIONS
    from ..fleet.runner import Shared, run_one
    from ..fleet.schedule import Step

    from .common import hold_cell_for_command

    # Held until the command ends, as for every one-tag command: its view (the plan's JSON) reads
    # the work dir after the cell's run. Re-entrant: the cell's own run takes it again.
    hold_cell_for_command(repo, tag, run.lock_timeout_s)
    out = sys.stderr if run.as_json else sys.stdout  # with --json, stdout carries only the document
    sources: dict[str, Any] = check_sources(repo.root, (tag,), repo.settings.default_branch, run.source)
    shared = Shared(repo.root, repo.overrides, os.environ, run.source,
                    find_terraform(run.terraform_bin, repo.root, os.environ), run.lock_timeout_s, sources)
    result, job = run_one(Step(tag, ()), cell_action or ACTIONS[action](run), shared=shared, out=out,
                          err=sys.stderr, tell=functools.partial(click.echo, err=True), action_name=action)
    if not result.ok:
        _notify(repo, action, (tag.name,), [result], "")
        assert job.exception is not None
        raise job.exception
    return job
