"""`tfdeploy status` and `tfdeploy history`: what the ledger says runs where."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import ValidationError
from .cells import parse_scopes, scope_options
from .common import RepoContext, echo_json, json_option, repo_command, tag_option

if TYPE_CHECKING:
    from ..fleet.ledger import Record
    from ..fleet.status import CellStatus


def _warn(text: str) -> None:
    click.echo(f"tfdeploy: warning: {text}", err=True)


def _flush(repo: RepoContext) -> None:
    """Records an earlier command could not write go first, so what is read is complete."""
    from ..fleet.ledger import flush_outbox
    from ..paths import repo_cache_dir

    for where in flush_outbox(repo_cache_dir(repo.root, os.environ), os.environ, _warn):
        click.echo(f"tfdeploy: kept ledger record written: {where}", err=True)


def _trust(repo: RepoContext):  # -> fleet.signing.Trust
    """Which records to trust (the repo's ledger_signing_key); a key that cannot be used is said
    once, and every signed record then reads as unverified (status and history still show them)."""
    from ..fleet.signing import trust_for
    from ..gates.policy import repo_policy
    from ..paths import repo_cache_dir

    # The key is policy: the default branch's committed one, never a runner's or an uncommitted edit.
    trust = trust_for(repo_policy(repo.root, os.environ), os.environ, repo_cache_dir(repo.root, os.environ),
                      strict=False)
    if trust.problem:
        _warn(f"{trust.problem}; no record can be verified (grant kms:GetPublicKey on the key)")
    return trust


def deployable_cells(repo_root: Path, envs: list[str], extra_regions: frozenset[str]) -> set[tuple[str, str, str]]:
    """(env, scope, team) the working tree's envs/ sets up: a team's `<region>.tfvars` or
    `global.tfvars`, and its allowed_regions. A malformed file is skipped (lint reports it)."""
    from ..errors import ConfigError
    from ..model.envs import ENVS_DIR, TEAM_FILE, _read_tfvars, team_config_from
    from ..model.regions import is_allowed
    from ..model.tags import GLOBAL, TEAM_RE

    cells: set[tuple[str, str, str]] = set()
    for env in envs:
        env_dir = repo_root / ENVS_DIR / env
        if not env_dir.is_dir() or env_dir.is_symlink():
            continue
        for team_dir in sorted(env_dir.iterdir()):
            team_file = team_dir / TEAM_FILE
            if not TEAM_RE.fullmatch(team_dir.name) or not team_file.is_file() or team_file.is_symlink():
                continue
            scopes = {p.stem for p in team_dir.glob("*.tfvars") if p.name != TEAM_FILE}
            try:
                _account, allowed = team_config_from(_read_tfvars(team_file, str(team_file)), str(team_file))
            except ConfigError:
                allowed = None
            scopes |= set(allowed or ())
            cells |= {(env, s, team_dir.name) for s in scopes if s == GLOBAL or is_allowed(s, extra_regions)}
    return cells


@click.command("status")
@click.option("--env", help="Only this environment.")
@click.option("--team", help="Only this team.")
@scope_options
@click.option("--release", metavar="ENV/TEAM/VERSION",
              help="One release: its cells, waves, results and where each build's log is.")
@click.option("--list", "as_list", is_flag=True,
              help="One line per cell (commit, when, who, last run) instead of the team x env by scope matrix.")
@json_option
@click.option("--html", "html_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the fleet as one self-contained HTML page (filters, history on click).")
@repo_command
def status(env: str | None, team: str | None, scope: tuple[str, ...], include_global: bool, release: str | None,
           as_list: bool, as_json: bool, html_file: Path | None, repo: RepoContext) -> None:
    """The fleet: which version runs in each team x env x scope, who put it there, and what needs a look.

    Shown as a matrix: a row per team x env, a column per scope (global, then Regions by their
    short names), each cell its version and one-letter marks, explained below it; `--list` shows
    one line per cell instead.

    Reads the deployment ledger in the state buckets (a listing per 1,000 cells, then only the
    summaries changed since the last read) and the repo's tags.
    Marks cells whose last apply failed, that are behind the newest version tagged for them, that
    were never deployed, or that a drift check found drifted.

    \b
    Examples:
      tfdeploy status
      tfdeploy status --list
      tfdeploy status --env prod --team research --json
      tfdeploy status --scope eu-west-1 --global            one Region and the global cells
      tfdeploy status --html fleet.html
      tfdeploy status --release dev/research/1.1 --json
    """
    if release is not None:
        _release_status(release, as_json, repo)
        return
    with _no_collection():
        _fleet_status(env, team, scope, include_global, as_list, as_json, html_file, repo)


@contextmanager
def _no_collection() -> Iterator[None]:
    """Python's cyclic garbage collector off while a fleet is read: it ran every few thousand new
    objects and walked every record read so far, half a second of CPU for 10,000 cells, to find
    no garbage (a record holds no cycle). The command ends soon after; the memory is freed then."""
    import gc

    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _fleet_status(env: str | None, team: str | None, scope: tuple[str, ...], include_global: bool, as_list: bool,
                  as_json: bool, html_file: Path | None, repo: RepoContext) -> None:
    from ..engine.tagindex import list_tags
    from ..fleet.ledger import latest
    from ..fleet.matrix import build_matrix, render_matrix
    from ..fleet.status import counts, fleet_matrix, render_table
    from ..paths import repo_cache_dir

    scopes = parse_scopes(scope, include_global, extra=repo.settings.extra_regions)
    settings = repo.settings
    if env is not None and env not in settings.environments:
        raise ValidationError(f"--env {env} is not one of the configured environments "
                              f"({', '.join(settings.environments)})")
    envs = [env] if env else list(settings.environments)
    _flush(repo)
    from ..fleet.reconcile import reconcile
    from ..fleet.status import complete

    # A cell the local cache serves may come as its newest records only (a Head): enough for its
    # row unless one of them is not trusted. The HTML page shows every record of every cell.
    found = latest(settings, os.environ, envs, [team] if team else None,
                   cache_dir=repo_cache_dir(repo.root, os.environ), heads=html_file is None)
    # After the read: a ledger that cannot be read at all is one error line, not a key warning first.
    trust = _trust(repo)
    records = reconcile({cell: complete(got, trust.why) for cell, got in found.items()}, os.environ, _warn)
    tags = [e.tag for e in list_tags(repo.root, settings.extra_regions)
            if e.tag is not None and e.tag.env in envs]
    cells = deployable_cells(repo.root, envs, settings.extra_regions) | {(t.env, t.scope_name, t.team) for t in tags}
    rows = [row for row in fleet_matrix(records, cells, tags, settings.environments, env=env, team=team,
                                        distrust=trust.why) if scopes.matches(row.scope)]
    trust.save()
    if html_file is not None:
        _write_report(html_file, rows, records, settings.environments, env, team)
    if as_json:
        echo_json({"cells": [r.to_dict() for r in rows], "counts": counts(rows),
                   "matrix": build_matrix(rows).to_dict()})
        return
    if not rows:
        click.echo("no cells: no tags, no envs/ set up and no deployments recorded"
                   + (" for these filters" if env or team else ""))
        return
    if as_list:
        click.echo(render_table(rows))
    else:
        import shutil

        click.echo(render_matrix(build_matrix(rows), shutil.get_terminal_size((120, 24)).columns))
    summary = counts(rows)
    marked = ", ".join(f"{n} {mark}" for mark, n in summary.items() if mark != "cells" and n)
    click.echo(f"\n{summary['cells']} cells: {marked or 'all ok'}")


def _release_status(release: str, as_json: bool, repo: RepoContext) -> None:
    from ..engine.tagindex import list_tags
    from ..fleet.ledger import latest
    from ..fleet.release_status import parse_release, release_rows, render
    from ..paths import repo_cache_dir

    env, team, version = parse_release(release)
    settings = repo.settings
    if env not in settings.environments:
        raise ValidationError(f"--release {release}: env {env} is not one of the configured environments "
                              f"({', '.join(settings.environments)})")
    _flush(repo)
    cache = repo_cache_dir(repo.root, os.environ)
    records = latest(settings, os.environ, [env], [team], cache_dir=cache)
    tags = [e.tag for e in list_tags(repo.root, settings.extra_regions) if e.tag is not None]
    rows = release_rows((env, team, version), tags, records, settings.waves, settings.max_parallel_builds,
                        cache / "pipeline")
    if as_json:
        echo_json({"release": release, "ok": all(r["result"] == "succeeded" for r in rows), "cells": rows})
        return
    click.echo(render(release, rows))


def _write_report(path: Path, rows: Sequence[CellStatus], records: Mapping[str, Sequence[Record]],
                  environments: Sequence[str], env: str | None, team: str | None) -> None:
    """The HTML page, written whole or not at all; histories are the summaries `status` already read."""
    from ..errors import TfdeployError
    from ..fleet.htmlreport import render_report
    from ..fleet.ledger import now_iso
    from ..results import write_atomic

    note = " ".join(f"--{k} {v}" for k, v in (("env", env), ("team", team)) if v)
    from ..fleet.reconcile import without_closed_starts

    records = {cell: without_closed_starts(found) for cell, found in records.items()}
    page = render_report(rows, records, generated_at=now_iso(), environments=list(environments), scope_note=note)
    try:
        write_atomic(path, page)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise TfdeployError(f"cannot write the HTML report to {path}: {exc.strerror or exc}{where}; "
                            "give a writable file path to --html") from None
    click.echo(f"tfdeploy: fleet report written to {path} ({len(rows)} cells)", err=True)


@click.command("history")
@tag_option(required=False, help_text="A tag of the cell, e.g. dev_us-east-1/research/1.0 (any version).")
@click.option("--env", help="The cell's environment (with --team and --scope, instead of --tag).")
@click.option("--team", help="The cell's team.")
@click.option("--scope", help="The cell's scope: a Region (us-east-1) or global.")
@click.option("--cell", hidden=True)  # deprecated: --env/--team/--scope name a cell everywhere
@json_option
@repo_command
def history(tag: str | None, env: str | None, team: str | None, scope: str | None, cell: str | None,
            as_json: bool, repo: RepoContext) -> None:
    """A cell's deployments, newest first: every apply, destroy and drift check in the ledger.

    Name the cell by a tag of it (any version) or by --env, --team and --scope.

    \b
    Examples:
      tfdeploy history --tag dev_us-east-1/research/1.0
      tfdeploy history --env dev --team research --scope global --json
    """
    from ..fleet.ledger import history as read_history
    from ..fleet.ledger import parse_cell
    from ..fleet.status import render_history
    from ..model.tags import parse_tag

    settings = repo.settings
    named = [value for value in (env, team, scope) if value is not None]
    if cell is not None:
        click.echo("tfdeploy: note: --cell is deprecated; use --env E --team T --scope S", err=True)
    if named and len(named) < 3:
        raise ValidationError("name the cell by all of --env, --team and --scope (or by --tag)")
    if sum((tag is not None, bool(named), cell is not None)) != 1:
        raise ValidationError("name one cell: --tag TAG, or --env E --team T --scope S "
                              "(e.g. --env dev --team research --scope us-east-1)")
    if named:
        cell = f"{env}-{scope}-{team}"
    if tag is not None:
        parsed = parse_tag(tag, settings.extra_regions)
        cell, env = parsed.cell, parsed.env
    else:
        env, _scope, _team = parse_cell(cell, settings.environments, settings.extra_regions)
    if env not in settings.environments:
        raise ValidationError(f"env {env} of {cell} is not one of the configured environments "
                              f"({', '.join(settings.environments)})")
    _flush(repo)
    from ..fleet.reconcile import reconcile, without_closed_starts

    records = without_closed_starts(reconcile({cell: read_history(cell, env, settings, os.environ)},
                                              os.environ, _warn)[cell])
    trust = _trust(repo)
    if as_json:
        echo_json({"cell": cell, "records": [trust.annotate(r) for r in records]})
    elif not records:
        click.echo(f"no deployments recorded for {cell}")
    else:
        click.echo(f"{cell}: {len(records)} record(s), newest first")
        click.echo(render_history(records, trust.why))
