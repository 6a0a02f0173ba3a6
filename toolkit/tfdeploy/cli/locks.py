"""`tfdeploy locks` and `tfdeploy unlock`: Terraform state locks left by runs that died."""

from __future__ import annotations

import os
import sys

import click

from ..errors import TfdeployError, ValidationError
from .cells import parse_scopes, scope_options
from .common import (
    RepoContext,
    echo_json,
    hold_cell_for_command,
    json_option,
    repo_command,
)
from .deploy import _open, tag_command


def _held_locks(repo: RepoContext, env: str | None, team: str | None):
    from botocore.exceptions import BotoCoreError, ClientError

    from ..engine.statelocks import list_locks
    from ..engine.tagindex import filter_entries, list_tags

    settings = repo.settings
    if env is not None and env not in settings.environments:
        raise ValidationError(f"--env {env} is not one of the configured environments "
                              f"({', '.join(settings.environments)})")
    entries = filter_entries(list_tags(repo.root, settings.extra_regions), env, team)
    tags = [e.tag for e in entries if e.tag is not None and e.tag.env in settings.environments]
    envs = [env] if env else list(settings.environments)
    try:
        return list_locks(settings, tags, envs, os.environ)
    except (BotoCoreError, ClientError) as exc:
        from ..aws.clients import access_hint

        raise TfdeployError(f"cannot list the state locks: {exc}{access_hint(exc)}") from None


@click.command("locks")
@click.option("--env", help="Only this environment's backend.")
@click.option("--team", help="Only the cells of this team.")
@scope_options
@json_option
@repo_command
def locks(env: str | None, team: str | None, scope: tuple[str, ...], include_global: bool, as_json: bool,
          repo: RepoContext) -> None:
    """List the Terraform state locks held in the backend (DynamoDB and S3 lockfile modes).

    A lock whose holder died stays until released: tfdeploy unlock --tag TAG --lock-id ID.

    \b
    Examples:
      tfdeploy locks --env dev
      tfdeploy locks --env prod --scope us-east-1 --global
      tfdeploy locks --json
    """
    scopes = parse_scopes(scope, include_global, extra=repo.settings.extra_regions)
    held = _held_locks(repo, env, team)
    if team:
        held = [lock for lock in held if any(f"/{team}/" in t for t in lock.tags)]
    if scopes.given:  # a tag is <env>_<scope>/<team>/<version>
        held = [lock for lock in held if any(scopes.matches(t.split("/")[0].partition("_")[2]) for t in lock.tags)]
    if as_json:
        echo_json([lock.to_dict() for lock in held])
        return
    if not held:
        click.echo("no state locks held")
        return
    rows = [("CELL", "STATE", "HOLDER", "OPERATION", "AGE", "LOCK ID", "MODE")]
    rows += [(lock.cell or "?", f"s3://{lock.bucket}/{lock.key}", lock.who, lock.operation, lock.age(),
              lock.lock_id, lock.mode) for lock in held]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    example = next((lock for lock in held if lock.tags), None)
    if example:
        click.echo(f"\nrelease a dead holder's lock: tfdeploy unlock --tag {example.tags[-1]} "
                   f"--lock-id {example.lock_id}")


@click.command("unlock")
@click.option("--lock-id", required=True, metavar="ID", help="The lock to release (see tfdeploy locks).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@tag_command
def unlock(tag: str, source, terraform_bin: str | None, lock_timeout: float, lock_id: str, yes: bool,
           repo: RepoContext) -> None:
    """Release a state lock whose holder died (with Terraform's own force-unlock, both lock modes).

    Refuses while a run of the same cell is alive on this machine.

    \b
    Example:
      tfdeploy unlock --tag dev_us-east-1/research/1.0 --lock-id 5f1c0a8e-...
    """
    from ..engine.celllock import live_holder
    from ..paths import repo_cache_dir

    parsed = repo.parse_tag(tag)
    holder = live_holder(repo_cache_dir(repo.root, os.environ), parsed.cell)
    if holder is not None and holder.pid != os.getpid():
        raise TfdeployError(f"cell {parsed.cell} is in use on this machine by {holder.describe()}: its lock "
                            "is not stale; wait for it to finish (or stop that process) instead")
    hold_cell_for_command(repo, parsed, lock_timeout)
    held = [lock for lock in _held_locks(repo, parsed.env, None) if lock.lock_id == lock_id]
    if not held:
        raise TfdeployError(f"no state lock with ID {lock_id} is held in the {parsed.env} backend; "
                            "tfdeploy locks lists the held ones")
    lock = held[0]
    if lock.cell != parsed.cell:
        raise ValidationError(f"lock {lock_id} is on s3://{lock.bucket}/{lock.key} (cell {lock.cell or '?'}), "
                              f"not on cell {parsed.cell}; pass the tag of that cell")
    click.echo(f"lock {lock_id} on s3://{lock.bucket}/{lock.key}: {lock.operation} by {lock.who}, "
               f"{lock.age()} old ({lock.where})")
    if not yes:
        if not sys.stdin.isatty():
            raise ValidationError("not confirmed: releasing a state lock needs a terminal; make sure its "
                                  "holder is dead, then pass --yes")
        if not click.confirm(f"release lock {lock_id}? (only if its holder is dead)", default=False):
            raise TfdeployError("lock not released")
    from ..engine.stages import init as run_init

    session = _open(repo, parsed, source, terraform_bin, False, lock_timeout=lock_timeout)
    run_init(session, quiet=True)
    session.terraform.check("force-unlock", "-force", lock_id, stream=False)
    click.echo(f"released lock {lock_id} of {parsed.cell}")
