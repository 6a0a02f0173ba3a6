"""`tfdeploy demo`: the README's main job."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import echo_json, json_option


@click.command()
@click.option("--dir", "workspace", type=click.Path(file_okay=False, path_type=Path),
              help="Where to create the example repo and the fleet report (default: a new temp dir).")
@click.option("--lock", type=click.Choice(["dynamodb", "s3"]), default="dynamodb", show_default=True,
              help="Lock mode of the example repo.")
@click.option("--keep-sandbox", is_flag=True, help="Leave the sandbox running afterwards.")
@json_option
def demo(workspace: Path | None, lock: str, keep_sandbox: bool, as_json: bool) -> None:
    """Release a version to global + 4 Regions offline, read the fleet, promote it to qa.

    Creates an example repo, starts the local sandbox, bootstraps dev and qa, then runs (and
    shows) release, a fan-out apply, status (the fleet matrix), promote, a second fan-out and
    status --html (the fleet report). Needs no AWS account: AWS is the local moto sandbox on
    127.0.0.1 and Terraform is the embedded one. Takes 15-20 seconds on 2 cores.

    \b
    Examples:
      tfdeploy demo
      tfdeploy demo --dir /tmp/demo --keep-sandbox   # then explore: cd /tmp/demo/infra
    """
    from ..adopt.demo import run_demo

    # With --json, stdout carries only the document: the demo's lines and the commands' output go to stderr.
    stream = sys.stderr if as_json else sys.stdout
    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    try:
        stream.flush()
        out: int | None = stream.fileno()
    except (AttributeError, OSError, ValueError):  # a stream without a descriptor (click's test runner)
        out = None
    report = run_demo(workspace, lock=lock, keep_sandbox=keep_sandbox, say=say, out=out, read_back=as_json)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(f"done in {report.seconds:.1f}s; example repo kept at {report.repo}")
        if keep_sandbox or not report.started_sandbox:
            click.echo(f'sandbox still running (the example repo\'s own): cd {report.repo} && '
                       f'eval "$(tfdeploy sandbox env)"; stop it there with tfdeploy sandbox down')
