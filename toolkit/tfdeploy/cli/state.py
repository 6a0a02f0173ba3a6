"""`tfdeploy state ...`: a cell's state: `recover` (engine/errored.py), `migrate-lock` (engine/lockmode.py),
`history` and `restore` (engine/stateversions.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import TfdeployError, ValidationError
from .common import (
    RepoContext,
    echo_json,
    hold_cell_for_command,
    json_option,
    repo_command,
    tag_options,
)
from .deploy import _open, tag_command
from .lockmode import migrate_lock


@click.group("state")
def state() -> None:
    """The state of a tag's cell.

    \b
    Example:
      tfdeploy state recover --tag dev_us-east-1/research/1.0
      tfdeploy state migrate-lock --tag dev_us-east-1/research/1.0 --to s3
      tfdeploy state history --tag dev_us-east-1/research/1.0
      tfdeploy state restore --tag dev_us-east-1/research/1.0 --version-id ID
    """


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ValidationError(f"not confirmed: {question} needs a terminal; read the above, then pass --yes")
    if not click.confirm(question, default=False):
        raise TfdeployError("not pushed: nothing changed")


def _remote_choice(session: Any, cell: str, asked: str | None, local: list[Path],
                   cache: Path) -> tuple[Any, dict | None]:
    """The errored state in the state bucket to recover, and its base: the one asked for with
    --file s3://..., else the newest one there when none is kept on this disk; (None, None) for a
    local file. Its bytes are copied into the work dir for Terraform to push."""
    from ..engine.errored import errored_dir
    from ..engine.errored_backend import cell_prefix, list_states, parse_url, read_state

    b = session.deployment.backend
    if asked is not None and not asked.startswith("s3://"):
        return None, None
    if asked is not None:
        remote = parse_url(asked)
        if remote is None or remote.bucket != b.bucket or not remote.key.startswith(cell_prefix(cell)):
            raise ValidationError(f"--file {asked} is not an errored state of cell {cell} (expected "
                                  f"s3://{b.bucket}/{cell_prefix(cell)}...tfstate)")
    elif local:
        return None, None
    else:
        found = list_states(b.bucket, b.region, cell, os.environ, session.sandbox_endpoint)
        if not found:
            raise TfdeployError(f"no kept errored state for cell {cell} (looked in {errored_dir(cache, cell)} "
                                f"and s3://{b.bucket}/{cell_prefix(cell)})")
        remote = found[-1]
        if len(found) > 1:
            click.echo(f"{len(found)} errored states of {cell} in the state bucket; the newest is shown "
                       "(others: --file s3://...):", err=True)
    try:
        body, base = read_state(remote, b.region, os.environ, session.sandbox_endpoint)
    except Exception as exc:  # noqa: BLE001 - a missing or unreadable object: one line
        raise TfdeployError(f"cannot read {remote.url}: {' '.join(str(exc).split())[:300]}") from None
    from ..results import write_atomic

    write_atomic(session.workdir.path / "tfdeploy.errored-from-backend.tfstate", body.decode("utf-8", "replace"))
    return remote, base


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TfdeployError(f"{path} is not a readable Terraform state ({exc}); pick another with --file") from None
    if not isinstance(data, dict) or "lineage" not in data or "serial" not in data:
        raise TfdeployError(f"{path} is not a Terraform state (no serial/lineage); pick another with --file")
    return data


@state.command("recover")
@click.option("--file", "state_file", metavar="PATH|s3://...",
              help="The kept state to push: a file, or an s3:// object under _tfdeploy-errored/ "
                   "[default: the newest one kept for the cell, on this disk, else in the state bucket].")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True,
              help="Push even when the remote state is newer or another lineage (terraform state push -force).")
@tag_command
def recover(tag: str, source, terraform_bin: str | None, lock_timeout: float, state_file: str | None,
            yes: bool, force: bool, repo: RepoContext) -> None:
    """Push back a state Terraform could not save (kept when an apply's state write failed).

    Shows what the kept state holds and how it compares with the remote state, asks, then pushes
    it under the cell lock and Terraform's state lock. The pushed file moves to recovered/. A state
    kept in the state bucket (when the local disk failed: _tfdeploy-errored/<cell>/) is read from
    there when none is kept on this disk; once pushed it is marked recovered (never deleted).

    \b
    Examples:
      tfdeploy state recover --tag dev_us-east-1/research/1.0
      tfdeploy state recover --tag dev_us-east-1/research/1.0 --file .tfdeploy/errored/CELL/X.tfstate --yes
    """
    from ..engine.errored import (
        base_of,
        compare,
        errored_dir,
        kept_states,
        mark_recovered,
        successor,
        summarize_state,
    )
    from ..engine.stages import init as run_init
    from ..paths import repo_cache_dir
    from ..results import write_atomic

    parsed = repo.parse_tag(tag)
    hold_cell_for_command(repo, parsed, lock_timeout)
    cell = parsed.cell
    cache = repo_cache_dir(repo.root, os.environ)
    local = [] if state_file is not None else kept_states(cache, cell)
    session = _open(repo, parsed, source, terraform_bin, False, lock_timeout=lock_timeout)
    remote, base = _remote_choice(session, cell, state_file, local, cache)
    if remote is not None:
        state_file = session.workdir.path / "tfdeploy.errored-from-backend.tfstate"
    elif state_file is None:
        state_file = str(local[-1])
        if len(local) > 1:
            click.echo(f"{len(local)} kept states for {cell}; the newest is shown (others: --file):", err=True)
    state_file = Path(state_file).resolve()
    if remote is None:
        base = base_of(state_file)
    kept_state = _load(state_file)
    kept_summary = summarize_state(kept_state)

    run_init(session, quiet=True)
    pulled = session.terraform.check("state", "pull", stream=False).stdout.strip()
    remote_summary = summarize_state(json.loads(pulled) if pulled else None)
    if remote_summary.serial is not None and not remote_summary.lineage and not remote_summary.addresses:
        remote_summary = summarize_state(None)  # what Terraform shows for a state never written
    b = session.deployment.backend
    click.echo(f"kept state: {remote.url if remote is not None else state_file}\n  {kept_summary.describe()}")
    for address in kept_summary.addresses:
        click.echo(f"    {address}")
    click.echo(f"remote state: s3://{b.bucket}/{b.key}\n  "
               + (remote_summary.describe() if remote_summary.serial is not None else "empty"))
    differences = compare(kept_summary, remote_summary)
    to_push, why = successor(kept_state, base, remote_summary)
    if to_push is not None and to_push is not kept_state:
        differences.append(why)
    for line in differences:
        click.echo(f"  {line}")
    refused = to_push is None or any("push refuses" in line for line in differences)
    if refused and not force:
        reason = why if to_push is None else differences[0]
        raise TfdeployError(f"not pushed: {reason}; compare with tfdeploy show --tag {tag}, then pass "
                            "--force to overwrite the remote state")
    _confirm(f"push {state_file.name} to s3://{b.bucket}/{b.key}" + (" with -force" if refused else ""), yes)
    flags = [*(["-force"] if refused and force else []),
             *[f"-lock-timeout={v}" for v in session.lock_options().values()]]
    pushed = state_file
    if to_push is not None and to_push is not kept_state:
        # The kept file is never edited: its successor is written next to the work dir's code.
        pushed = session.workdir.path / "tfdeploy.recover.tfstate"
        write_atomic(pushed, json.dumps(to_push, indent=2) + "\n")
    session.terraform.check("state", "push", "-no-color", *flags, str(pushed), stream=False)
    if remote is not None:
        from ..engine.errored_backend import mark_recovered as mark_remote
        from ..fleet.ledger import now_iso

        moved = f"{remote.url} (marked {mark_remote(remote, b.region, os.environ, session.sandbox_endpoint, now_iso())})"
    else:
        moved = mark_recovered(state_file) if state_file.parent == errored_dir(cache, cell).resolve() else state_file
    click.echo(f"recovered {tag}: pushed serial {kept_summary.serial} to s3://{b.bucket}/{b.key}; "
               f"the file is kept in {moved}")


state.add_command(migrate_lock)


# ---- state history / state restore: the versions of the state object (engine/stateversions.py) ----


@state.command("history")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="Read the state documents of this many newest versions (each is one S3 GET).")
@json_option
@tag_options(required=True)
@repo_command
def history(tag: str, source, limit: int, as_json: bool, repo: RepoContext) -> None:
    """List the versions of a tag's state object in the versioned state bucket, newest first.

    Shows each version's id, time, size, serial, lineage and resource count, the current one and
    delete markers. Read-only: no lock, no Terraform.

    \b
    Examples:
      tfdeploy state history --tag dev_us-east-1/research/1.0
      tfdeploy state history --tag dev_us-east-1/research/1.0 --limit 50 --json
    """
    from ..engine.stages import terraform_environment
    from ..engine.stateversions import StateObject, describe
    from ..engine.tagview import resolve_tag

    deployment, _ = resolve_tag(repo.root, tag, environ=os.environ, overrides=repo.overrides,
                                worktree=source.worktree, note=lambda text: click.echo(text, err=True),
                                worktree_settings=lambda: repo.settings)
    env, endpoint, _ = terraform_environment(repo.root, os.environ)
    obj = StateObject(deployment.backend, deployment.tag.env, env, endpoint)
    versions, more = obj.list_versions(limit)
    if as_json:
        echo_json({"tag": tag, "cell": deployment.tag.cell, "state": obj.url, "more": more,
                   "versions": [v.to_dict() for v in versions]})
        return
    if not versions:
        click.echo(f"{obj.url}: no versions (never written)")
        return
    click.echo(f"{obj.url} ({deployment.tag.cell}), newest first:")
    for version in versions:
        click.echo(f"  {describe(version)}")
    if more:
        click.echo(f"  ... older versions not shown (--limit {limit}); restore one with: tfdeploy state "
                   f"restore --tag {tag} --version-id ID")


@state.command("restore")
@click.option("--version-id", "version_id", required=True, metavar="ID",
              help="The S3 version of the state object to restore (see tfdeploy state history).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True,
              help="Restore a version of another lineage too (terraform state push -force).")
@tag_command
def restore(tag: str, source, terraform_bin: str | None, lock_timeout: float, version_id: str, yes: bool,
            force: bool, repo: RepoContext) -> None:
    """Write an earlier version of a tag's state back as the current state (a NEW version).

    Under the cell lock and Terraform's state lock (terraform state push, which also checks
    lineage and serial), shows which resources the restore adds back to or removes from the state,
    asks, then writes the old content as the current state's successor. No version is deleted.

    \b
    Examples:
      tfdeploy state history --tag dev_us-east-1/research/1.1
      tfdeploy state restore --tag dev_us-east-1/research/1.1 --version-id 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY
    """
    from ..engine.errored import summarize_state
    from ..engine.stages import init as run_init
    from ..engine.stateversions import (
        StateObject,
        changes,
        parse_state,
        restore_document,
        short_lineage,
    )
    from ..results import write_atomic

    session = _open(repo, repo.parse_tag(tag), source, terraform_bin, False, lock_timeout=lock_timeout)  # holds the cell lock
    b = session.deployment.backend
    obj = StateObject(b, session.tag.env, session.terraform.env, session.sandbox_endpoint)
    chosen = obj.version(version_id)
    try:
        old = parse_state(obj.read(version_id))
    except ValueError as exc:
        raise TfdeployError(f"version {version_id} of {obj.url} is not a Terraform state ({exc}); pick "
                            "another from tfdeploy state history") from None
    run_init(session, quiet=True)
    pulled = session.terraform.check("state", "pull", stream=False).stdout.strip()
    current = json.loads(pulled) if pulled else None
    if current is not None and not current.get("lineage") and not current.get("resources"):
        current = None  # what Terraform shows for a state never written (or deleted)
    now, then = summarize_state(current), summarize_state(old)
    added, removed = changes(now, then)
    click.echo(f"restore {obj.url} to version {version_id} "
               f"(written {chosen.last_modified.strftime('%Y-%m-%d %H:%M:%SZ')}):")
    click.echo(f"  current state: {now.describe() if current else 'empty'}")
    click.echo(f"  that version:  {then.describe()}")
    for address in added:
        click.echo(f"  + {address}  (added back to the state)")
    for address in removed:
        click.echo(f"  - {address}  (removed from the state: the real object stays, Terraform forgets it)")
    if not added and not removed:
        click.echo("  same resource addresses (attributes and outputs may differ)")
    to_push, needs_force = restore_document(old, current, force)
    if to_push is not old:
        # Terraform's push may bump the serial once more; the final line says what was stored.
        click.echo(f"  written as the current state's successor (lineage {short_lineage(to_push['lineage'])}, "
                   f"serial above {now.serial}), a new version of the object; every existing version is kept")
    question = f"restore version {version_id} as the current state of {tag}" + (" with -force" if needs_force else "")
    if not yes:
        if not sys.stdin.isatty():
            raise ValidationError(f"not confirmed: {question} needs a terminal; read the above, then pass --yes")
        if not click.confirm(question + "?", default=False):
            raise TfdeployError("not restored: nothing changed")
    pushed = session.workdir.path / "tfdeploy.restore.tfstate"
    write_atomic(pushed, json.dumps(to_push, indent=2) + "\n")
    flags = [*(["-force"] if needs_force else []),
             *[f"-lock-timeout={v}" for v in session.lock_options().values()]]
    session.terraform.check("state", "push", "-no-color", *flags, str(pushed), stream=False)
    newest, _ = obj.list_versions(1)
    written = newest[0] if newest else None
    serial = written.summary.serial if written and written.summary else "?"
    click.echo(f"restored {tag}: version {version_id} is the current state again, as version "
               f"{written.version_id if written else '?'} (serial {serial}); earlier versions kept "
               f"(tfdeploy state history --tag {tag}); run tfdeploy plan --tag {tag} to see what differs "
               "from the real resources")
