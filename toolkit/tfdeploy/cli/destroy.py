"""`tfdeploy destroy --tag T`: destroy one cell's namespace after showing what goes (engine/destroy.py)."""

from __future__ import annotations

import os
import sys

import click

from ..errors import ValidationError
from .common import RepoContext, echo_json, json_option
from .deploy import _open, tag_command


@click.command("destroy")
@click.option("--auto-approve", is_flag=True, help="Destroy without asking (CI); needed without a terminal.")
@click.option("--allow-protected", is_flag=True, help="Also destroy in an env listed in protected_envs.")
@json_option
@tag_command
def destroy(tag: str, source, terraform_bin: str | None, auto_approve: bool, allow_protected: bool,
            as_json: bool, lock_timeout: float, repo: RepoContext) -> None:
    """Destroy what the tag's cell deployed: plan the destroy of its module namespace, show it, ask, apply.

    Only the tag's namespace (module.regional or module.global) in the cell's own state is
    planned for destruction; the destroy plan is then applied exactly, once, under the cell lock,
    with apply's saved-plan checks. Without a terminal, --auto-approve is required. Envs in
    protected_envs (default prod) also need --allow-protected.

    \b
    Examples:
      tfdeploy destroy --tag dev_us-east-1/research/1.0
      tfdeploy destroy --tag prod_eu-west-1/research/1.0 --auto-approve --allow-protected
    """
    from ..engine.destroy import DestroyPlan, refuse_protected
    from ..engine.destroy import destroy as run_destroy
    from ..model.settings import load_settings
    from ..model.tags import parse_tag

    parsed = parse_tag(tag, repo.settings.extra_regions)
    refuse_protected(parsed, [repo.settings], allow_protected=allow_protected)
    if not auto_approve and not sys.stdin.isatty():
        raise ValidationError(f"destroying {tag} needs a yes: run it on a terminal to review and confirm, "
                              "or pass --auto-approve (CI); nothing was planned")
    session = _open(repo, tag, source, terraform_bin, as_json, lock_timeout=lock_timeout)
    # The tagged commit's settings may protect the env too; they cannot lift the protection.
    refuse_protected(parsed, [load_settings(session.workdir.path, os.environ, repo.overrides)],
                     allow_protected=allow_protected)
    b = session.deployment.backend
    shown: list[DestroyPlan] = []
    say = (lambda text: click.echo(text, err=True)) if as_json else click.echo

    def show_plan(planned: DestroyPlan) -> None:
        shown.append(planned)
        say(f"destroy {tag}: {planned.summary}  (state s3://{b.bucket}/{b.key})")
        for address in planned.addresses:
            say(f"  - {address}")

    def confirm(planned: DestroyPlan) -> bool:
        show_plan(planned)
        answer = click.prompt(f"Destroy these {planned.summary.destroy} resource(s) of cell {session.tag.cell}? "
                              "Only 'yes' will be accepted", default="", show_default=False, err=as_json)
        return answer.strip() == "yes"

    def approved(planned: DestroyPlan) -> bool:
        show_plan(planned)
        return True

    # --auto-approve still goes through a callback: what is destroyed is shown either way.
    result, summary = run_destroy(session, auto_approve=False, confirm=approved if auto_approve else confirm)
    if "nothing to destroy" in result.notes:
        say(f"destroy {tag}: nothing to destroy in s3://{b.bucket}/{b.key}")
    elif not as_json:
        click.echo(f"destroyed {tag}: -{summary.destroy}; state s3://{b.bucket}/{b.key} ({b.lock_description})")
        click.echo(result.export_lines())
    if as_json:
        echo_json({"deployment": session.deployment.to_dict(), "summary": result.counts,
                   "addresses": list(shown[0].addresses) if shown else [], "result": result.to_dict()})


COMMANDS = [destroy]
