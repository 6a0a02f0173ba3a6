"""`tfdeploy demo`: the README's main job."""

from __future__ import annotations

from pathlib import Path

import click

from .common import echo_json, json_option


@click.command()
@click.option("--dir", "workspace", type=click.Path(file_okay=False, path_type=Path),
              help="Where to create the example repo (default: a new temp dir).")
@click.option("--lock", type=click.Choice(["dynamodb", "s3"]), default="dynamodb", show_default=True,
              help="Lock mode of the example repo.")
@click.option("--keep-sandbox", is_flag=True, help="Leave the sandbox running afterwards.")
@click.option("-v", "--verbose", is_flag=True, help="Stream Terraform's own output.")
@json_option
def demo(workspace: Path | None, lock: str, keep_sandbox: bool, verbose: bool, as_json: bool) -> None:
    """Run the whole tag flow offline: example repo, tags, sandbox, bootstrap, plan, apply.

    Needs no AWS account: AWS is the local moto sandbox on 127.0.0.1 and Terraform is the
    embedded one. Takes about 15-30 seconds.

    \b
    Examples:
      tfdeploy demo
      tfdeploy demo --dir /tmp/demo --keep-sandbox   # then explore: cd /tmp/demo/infra
    """
    from ..adopt.demo import run_demo

    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo
    report = run_demo(workspace, lock=lock, keep_sandbox=keep_sandbox, say=say, verbose=verbose)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(f"done in {report.seconds:.1f}s; example repo kept at {report.repo}")
        if keep_sandbox or not report.started_sandbox:
            click.echo(f'sandbox still running (the example repo\'s own): cd {report.repo} && '
                       f'eval "$(tfdeploy sandbox env)"; stop it there with tfdeploy sandbox down')
