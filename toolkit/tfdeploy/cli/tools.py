"""`tfdeploy tools install checkov`: a managed checkov in a venv of its own."""

from __future__ import annotations

import os

import click


@click.group()
def tools() -> None:
    """Tools tfdeploy can install for you (checkov).

    \b
    Example:
      tfdeploy tools install checkov
    """


@tools.command("install")
@click.argument("name", type=click.Choice(["checkov"]))
@click.option("--spec", "requirement", metavar="REQUIREMENT",
              help="pip requirement to install [default: checkov>=3.2,<4].")
def tools_install(name: str, requirement: str | None) -> None:
    """Install NAME into its own venv under the user state dir, where scan finds it.

    The venv is <state dir>/tools/NAME (~/.local/state/tfdeploy, or $TFDEPLOY_HOME); pip uses
    your usual index settings (PIP_INDEX_URL, PIP_FIND_LINKS...). Running it again replaces the
    install; a failed install keeps the previous one. scan looks for checkov at --checkov /
    TFDEPLOY_CHECKOV, then PATH, then <repo>/.venv-checkov, then here.

    \b
    Examples:
      tfdeploy tools install checkov
      tfdeploy tools install checkov --spec 'checkov==3.3.30'
    """
    from ..gates.toolinstall import install

    path = install(name, requirement, environ=os.environ, say=lambda text: click.echo(f"tfdeploy: {text}", err=True))
    click.echo(f"installed {name}: {path}")
