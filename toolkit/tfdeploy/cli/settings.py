"""`tfdeploy settings`: every setting, its value here and where it came from (the one place the
overrides are documented; repo commands take them as --set NAME=VALUE)."""

from __future__ import annotations

from typing import Any

import click

from .common import RepoContext, echo_json, json_option, repo_command


def _shown(value: Any) -> str:
    if value is None:
        return "(none)"
    if isinstance(value, (tuple, list, frozenset, set)):
        items = sorted(value) if isinstance(value, (frozenset, set)) else list(value)
        return ",".join(str(v) for v in items) or "(empty)"
    return str(value)


def settings_rows(settings: Any) -> list[dict[str, Any]]:
    """One row per setting (pure): name, value as typed on the command line, where it came from,
    whether it is policy, and what it means."""
    from ..model.settings import POLICY_SETTINGS, SETTING_HELP, SETTING_NAMES

    return [{"name": name, "value": _shown(getattr(settings, name)), "from": settings.origin.get(name, "default"),
             "policy": name in POLICY_SETTINGS, "help": SETTING_HELP[name]} for name in SETTING_NAMES]


@click.command("settings")
@json_option
@repo_command
def settings(as_json: bool, repo: RepoContext) -> None:
    """Every setting: its value in this repo, where it came from, and what it means.

    A value comes from, last one winning: the default, `[tool.tfdeploy]` in pyproject.toml, a
    TFDEPLOY_<NAME> environment variable, then --set NAME=VALUE on the command (any repo command
    takes --set, repeatable). Policy settings (marked) are read only from the committed
    pyproject.toml of the default branch and of the tagged commit: --set or a variable for one is
    refused.

    \b
    Examples:
      tfdeploy settings
      tfdeploy settings --set lock=dynamodb --set state_layout=regional
      tfdeploy plan --tag dev_us-east-1/research/1.0 --set lock=dynamodb
      tfdeploy settings --json
    """
    from .report import table

    rows = settings_rows(repo.settings)
    if as_json:
        echo_json(rows)
        return
    click.echo(table([[r["name"] + (" (policy)" if r["policy"] else ""), r["value"], r["from"]] for r in rows],
                     ["SETTING", "VALUE", "FROM"]))
    click.echo("\noverride any but a policy setting with --set NAME=VALUE on a repo command, or TFDEPLOY_<NAME>; "
               "docs/reference/settings.md says what each means")
