"""`tfdeploy doctor`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from .common import echo_json, json_option


@click.command()
@click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False),
              help="The infra repo (any folder inside it).")
@json_option
def doctor(repo: str, as_json: bool) -> None:
    """Show which Terraform, checkov, tflint, git and AWS target tfdeploy would use.

    Exits 1 when something required (terraform, git, an AWS target, valid repo settings) is missing.

    \b
    Example:
      tfdeploy doctor
    """
    from ..adopt.doctor import MISSING, run_checks
    from ..errors import ValidationError
    from ..repo import find_repo_root

    try:
        root: Path | None = find_repo_root(Path(repo))
    except ValidationError:
        root = None
    checks = run_checks(root, os.environ)
    if as_json:
        echo_json([c.to_dict() for c in checks])
    else:
        for check in checks:
            mark = {"ok": "ok  ", "missing": "FAIL", "warning": "warn"}[check.status]
            click.echo(f"[{mark}] {check.name:<9} {check.detail}")
            if check.fix and check.status != "ok":
                click.echo(f"{'':16}fix: {check.fix}")
    if any(c.status == MISSING and c.required for c in checks):
        sys.exit(1)
