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

from .common import RepoContext, echo_json


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
                        help="Cells run at once (default: 2 per CPU, 2 to 8).")(func)
    return func


def wants_fanout(tags: tuple[str, ...], retry: int, only_failed: bool) -> bool:
    from ..fleet.selection import is_fanout

    return is_fanout(tags) or bool(retry) or only_failed


def run_fanout(repo: RepoContext, tag_args: tuple[str, ...], action: str, *, source: Any,
               terraform_bin: str | None, lock_timeout: float, as_json: bool, detailed_exitcode: bool,
               parallel: int, fail_fast: bool, retry: int, only_failed: bool,
               auto_approve: bool = False, confirm: Callable[[list[Any]], None] | None = None,
               allow_protected: bool = False, override: str = "") -> NoReturn:
    """Select, schedule and run the cells; print the matrix (and --json); exit with the fleet's code.

    `confirm` (destroy) sees the scheduled steps before any cell starts and may refuse.
    `override` (apply): the --skip-promotion-check reason, checked and recorded per cell."""
    from ..engine.stages import check_sources, find_terraform
    from ..engine.tagindex import list_tags
    from ..fleet.actions import ACTIONS
    from ..fleet.display import make_display
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
        write_record,
    )
    from ..fleet.runner import Shared, run_cells
    from ..fleet.schedule import schedule
    from ..fleet.selection import expand
    from ..model.tags import parse_tag
    from ..paths import repo_cache_dir

    out = sys.stderr if as_json else sys.stdout  # with --json, stdout carries only the document
    say = functools.partial(click.echo, file=out)
    display = make_display(out)  # before any work: a bad display setting is refused first
    settings = repo.settings
    _prewarm(repo)
    extra = settings.extra_regions
    runs = repo_cache_dir(repo.root, os.environ) / RUNS_DIR
    if only_failed:
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
    steps = schedule(tags, action, settings.waves, settings.max_parallel_builds)
    if confirm is not None:
        confirm(steps)

    # Once for every cell: the Terraform binary and each tag's git checks (a failing tag fails
    # its cell alone, with its own error).
    sources: dict[str, Any] = check_sources(repo.root, tags, settings.default_branch, source)
    shared = Shared(repo.root, repo.overrides, os.environ, source,
                    find_terraform(terraform_bin, repo.root, os.environ), lock_timeout, sources)
    record = RunRecord(run_id=new_run_id(), action=action, tag_args=list(tag_args),
                       key=selection_key(action, tag_args), started_at=now_iso())
    log_dir = runs / record.run_id
    say(f"tfdeploy: {action} of {len(steps)} cells, {min(parallel, len(steps))} at a time; logs in {log_dir}")
    with display:
        outcome = run_cells(steps, ACTIONS[action](auto_approve=auto_approve, allow_protected=allow_protected,
                                               override=override), shared=shared,
                            log_dir=log_dir, parallel=parallel, fail_fast=fail_fast, retries=retry,
                            display=display, action_name=action,
                            bake_s=settings.wave_bake_seconds if action != "destroy" else 0.0)
    record.finished_at, record.interrupted = now_iso(), outcome.signum is not None
    write_record(runs, record, outcome.results)
    if action in ("apply", "destroy") and settings.notify_topic_arn and not all(r.ok for r in outcome.results):
        from ..fleet.notify import fleet_failed, notify

        # One message for the run (not one per cell): which cells, why, where their logs are.
        notify("fleet-failed", *fleet_failed(action, tag_args, outcome.results, str(log_dir)), settings, os.environ)
    say(matrix(outcome.results))
    if as_json:
        echo_json(document(outcome.results))
    code = exit_code(outcome.results, detailed=detailed_exitcode, signum=outcome.signum)
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
