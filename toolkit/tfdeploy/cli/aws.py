"""`tfdeploy sandbox ...` (the local AWS stand-in) and `tfdeploy bootstrap` (the state backend).

Registered by name in `tfdeploy.cli` (LAZY_COMMANDS), imported when run.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from ..errors import TfdeployError
from .common import RepoContext, echo_json, json_option, repo_command


def _state_dir() -> Path:
    from ..aws.sandbox import sandbox_dir

    return sandbox_dir(os.environ)


# The sandbox keeps everything in the moto server's memory: `down` loses it. Said by `down` itself.
DOWN_DISCARDS = ("its buckets, tables, state objects and ledger records are discarded "
                 "(the next `sandbox up` starts empty)")


@click.group()
def sandbox() -> None:
    """A local AWS stand-in (moto server on 127.0.0.1) for S3, DynamoDB and STS.

    One sandbox per repo (or checkout): each command finds the sandbox of the repo it runs in,
    and `down` in one repo never stops another's. `eval "$(tfdeploy sandbox env)"` ties a shell
    to one sandbox wherever it runs.

    \b
    Example session:
      tfdeploy sandbox up
      eval "$(tfdeploy sandbox env)"
      tfdeploy bootstrap --env dev
      tfdeploy sandbox down
    """


@sandbox.command("up")
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port to listen on [default: a free one].")
@json_option
def sandbox_up(port: int | None, as_json: bool) -> None:
    """Start the sandbox in the background (does nothing if it is already running).

    \b
    Examples:
      tfdeploy sandbox up && eval "$(tfdeploy sandbox env)"
      tfdeploy sandbox up --port 4566 --json
    """
    from ..aws import sandbox as sb

    state_dir = _state_dir()
    running = sb.status(state_dir)
    info = running or sb.start(state_dir, port)
    if as_json:
        echo_json({"running": True, "already_running": running is not None, **info.to_dict()})
    elif running:
        click.echo(f"sandbox already running at {info.endpoint} (pid {info.pid})")
    else:
        click.echo(f"sandbox started at {info.endpoint} (pid {info.pid}, log {info.log_path})")
        click.echo('next: eval "$(tfdeploy sandbox env)"')


@sandbox.command("down")
def sandbox_down() -> None:
    """Stop this repo's sandbox and discard its data: buckets, lock tables, state objects and
    ledger records live only in the server's memory, so the next `sandbox up` starts empty
    (bootstrap again). Other repos' sandboxes keep running.

    \b
    Example:
      tfdeploy sandbox down
    """
    from ..aws import sandbox as sb

    click.echo(f"sandbox stopped; {DOWN_DISCARDS}" if sb.stop(_state_dir()) else "sandbox not running")


@sandbox.command("status")
@json_option
def sandbox_status(as_json: bool) -> None:
    """Say whether the sandbox is running, and where.

    \b
    Examples:
      tfdeploy sandbox status
      tfdeploy sandbox status --json
    """
    from ..aws import sandbox as sb

    info = sb.status(_state_dir())
    override = os.environ.get(sb.ENDPOINT_VAR) or None
    if as_json:
        data: dict[str, object] = {"running": info is not None, **(info.to_dict() if info else {})}
        if info:
            data["answering"] = sb.answers(info.endpoint)
        data["env_override"] = override
        echo_json(data)
        return
    if info:
        answering = "" if sb.answers(info.endpoint) else " (not answering; see the log)"
        click.echo(f"running at {info.endpoint}{answering}\n  pid {info.pid}, started {info.started_at}\n"
                   f"  log {info.log_path}")
    else:
        click.echo("not running")
    if override:
        click.echo(f"note: {sb.ENDPOINT_VAR}={override} is set and takes precedence")


@sandbox.command("env")
def sandbox_env() -> None:
    """Print `export` lines that point AWS tools at the sandbox.

    \b
    Example:
      eval "$(tfdeploy sandbox env)"; aws s3 ls   # any AWS tool now talks to the sandbox
    """
    from ..aws import sandbox as sb

    endpoint = sb.active_endpoint(os.environ, _state_dir())
    if endpoint is None:
        raise TfdeployError(f"the local AWS sandbox is not running: {sb.UP_HINT} first")
    env = sb.aws_env(endpoint, os.environ)
    # Always the dummy credentials: a shell switched to the sandbox must not carry real keys along.
    env.update(AWS_ACCESS_KEY_ID=sb.DUMMY_CREDENTIAL, AWS_SECRET_ACCESS_KEY=sb.DUMMY_CREDENTIAL)
    click.echo(sb.shell_exports(env))


@click.command()
@click.option("--env", "env", required=True, metavar="ENV", help="Environment whose backend to create, e.g. dev.")
@click.option("--region", default=None, metavar="REGION",
              help="Region of the state bucket (required with state_layout = regional).")
@json_option
@repo_command
def bootstrap(env: str, region: str | None, as_json: bool, repo: RepoContext) -> None:
    """Create the env's state bucket and lock table, or fix their settings; safe to re-run.

    The bucket gets versioning, default encryption, all public-access blocks and a policy that
    denies non-TLS access; the DynamoDB lock table (lock = dynamodb) gets on-demand billing,
    point-in-time recovery and encryption. Only what differs is changed. Uses the local sandbox
    when one is running or TFDEPLOY_SANDBOX_ENDPOINT is set.

    \b
    Examples:
      tfdeploy bootstrap --env dev
      tfdeploy bootstrap --env prod --region eu-west-1 --set state_layout=regional --json
      tfdeploy bootstrap --env prod --set kms_key_id=alias/tfstate
    """
    from ..aws.bootstrap import bootstrap_backend, render_report

    # --set kms_key_id=K is a setting like any other, so it is in settings.
    report = bootstrap_backend(repo.settings, env, region, environ=os.environ)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(render_report(report))
