"""`tfdeploy state ...`: a cell's state: `recover` (engine/errored.py), `migrate-lock` (engine/lockmode.py)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ..errors import TfdeployError, ValidationError
from .common import RepoContext, hold_cell_for_command
from .deploy import _open, tag_command
from .lockmode import migrate_lock


@click.group("state")
def state() -> None:
    """The state of a tag's cell.

    \b
    Example:
      tfdeploy state recover --tag dev_us-east-1/research/1.0
      tfdeploy state migrate-lock --tag dev_us-east-1/research/1.0 --to s3
    """


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ValidationError(f"not confirmed: {question} needs a terminal; read the above, then pass --yes")
    if not click.confirm(question, default=False):
        raise TfdeployError("not pushed: nothing changed")


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TfdeployError(f"{path} is not a readable Terraform state ({exc}); pick another with --file") from None
    if not isinstance(data, dict) or "lineage" not in data or "serial" not in data:
        raise TfdeployError(f"{path} is not a Terraform state (no serial/lineage); pick another with --file")
    return data


@state.command("recover")
@click.option("--file", "state_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The kept state to push [default: the newest one kept for the cell].")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True,
              help="Push even when the remote state is newer or another lineage (terraform state push -force).")
@tag_command
def recover(tag: str, source, terraform_bin: str | None, lock_timeout: float, state_file: Path | None,
            yes: bool, force: bool, repo: RepoContext) -> None:
    """Push back a state Terraform could not save (kept when an apply's state write failed).

    Shows what the kept state holds and how it compares with the remote state, asks, then pushes
    it under the cell lock and Terraform's state lock. The pushed file moves to recovered/.

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
    from ..model.tags import parse_tag
    from ..paths import repo_cache_dir
    from ..results import write_atomic

    hold_cell_for_command(repo, tag, lock_timeout)
    cell = parse_tag(tag, repo.settings.extra_regions).cell
    cache = repo_cache_dir(repo.root, os.environ)
    if state_file is None:
        kept = kept_states(cache, cell)
        if not kept:
            raise TfdeployError(f"no kept errored state for cell {cell} (looked in {errored_dir(cache, cell)})")
        state_file = kept[-1]
        if len(kept) > 1:
            click.echo(f"{len(kept)} kept states for {cell}; the newest is shown (others: --file):", err=True)
    state_file = state_file.resolve()
    kept_state = _load(state_file)
    kept_summary = summarize_state(kept_state)

    session = _open(repo, tag, source, terraform_bin, False, lock_timeout=lock_timeout)
    run_init(session, quiet=True)
    pulled = session.terraform.check("state", "pull", stream=False).stdout.strip()
    remote_summary = summarize_state(json.loads(pulled) if pulled else None)
    if remote_summary.serial is not None and not remote_summary.lineage and not remote_summary.addresses:
        remote_summary = summarize_state(None)  # what Terraform shows for a state never written
    b = session.deployment.backend
    click.echo(f"kept state: {state_file}\n  {kept_summary.describe()}")
    for address in kept_summary.addresses:
        click.echo(f"    {address}")
    click.echo(f"remote state: s3://{b.bucket}/{b.key}\n  "
               + (remote_summary.describe() if remote_summary.serial is not None else "empty"))
    differences = compare(kept_summary, remote_summary)
    to_push, why = successor(kept_state, base_of(state_file), remote_summary)
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
    session.terraform.check("state", "push", *flags, str(pushed), stream=False)
    moved = mark_recovered(state_file) if state_file.parent == errored_dir(cache, cell).resolve() else state_file
    click.echo(f"recovered {tag}: pushed serial {kept_summary.serial} to s3://{b.bucket}/{b.key}; "
               f"the file is kept in {moved}")


state.add_command(migrate_lock)

COMMANDS = [state]
