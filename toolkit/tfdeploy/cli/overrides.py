"""Setting overrides on the command line: one `--set NAME=VALUE` option, documented once.

Every setting used to have its own `--<name>` option on every repo command (24 options repeated
on 30 commands' --help). Those options still work, hidden from --help, and say once on stderr
that `--set` is the form to use. Policy settings are refused however they are given
(model.settings.refuse_policy_overrides; gates/policy.py reads them only from commits).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import click

from ..errors import ValidationError

SET_HELP = ("Override a setting for this command, e.g. --set lock=dynamodb (repeatable; lists "
            "comma-separated). `tfdeploy settings` lists every setting, its value here and where it "
            "came from. Policy settings are read only from the committed pyproject.toml.")


def set_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--set", "set_pairs", multiple=True, metavar="NAME=VALUE", help=SET_HELP)(func)


def deprecated_setting_options() -> list[Callable[[Callable[..., Any]], Callable[..., Any]]]:
    """The old `--<name>` option of every setting, hidden (a policy one exists only to be refused)."""
    from ..model.settings import SETTING_CHOICES, SETTING_NAMES, option_flag

    return [click.option(option_flag(name), name, default=None, hidden=True,
                         type=click.Choice(list(SETTING_CHOICES[name])) if name in SETTING_CHOICES else None)
            for name in reversed(SETTING_NAMES)]


def parse_set(pairs: tuple[str, ...]) -> dict[str, str]:
    """`NAME=VALUE` strings -> {setting: value} (pure); `-` in a name reads as `_`. An unknown
    name, a missing `=` or a setting given twice is a ValidationError naming it."""
    from ..model.settings import SETTING_NAMES

    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name:
            raise ValidationError(f"--set {pair!r} is not NAME=VALUE, e.g. --set lock=dynamodb")
        if name not in SETTING_NAMES:
            raise ValidationError(f"--set {pair!r}: {name!r} is not a setting; tfdeploy settings lists them "
                                  f"({', '.join(SETTING_NAMES)})")
        if name in found:
            raise ValidationError(f"--set {name}= given twice; give each setting once")
        found[name] = value
    return found


def collect_overrides(set_pairs: tuple[str, ...], options: dict[str, Any],
                      environ: Mapping[str, str]) -> dict[str, Any]:
    """Pop the deprecated per-setting options from `options` and merge them with --set into the
    overrides (every setting's name, None where not given). Refuses policy settings first (one line, nothing printed
    before it), then notes each deprecated option used."""
    from ..errors import ConfigError
    from ..model.settings import POLICY_SETTINGS, SETTING_NAMES, option_flag, policy_refusal, refuse_policy_overrides

    old = {name: options.pop(name) for name in SETTING_NAMES if name in options}
    old = {name: value for name, value in old.items() if value is not None}
    refuse_policy_overrides(environ, old)
    given_set = parse_set(set_pairs)
    for name in POLICY_SETTINGS:
        if name in given_set:
            raise ConfigError(policy_refusal(name, f"--set {name}"))
    both = sorted(set(old) & set(given_set))
    if both:
        raise ValidationError(f"{option_flag(both[0])} and --set {both[0]}= both given; give --set alone")
    for name, value in old.items():
        click.echo(f"tfdeploy: note: {option_flag(name)} is deprecated; use --set {name}={value} "
                   "(tfdeploy settings lists every setting)", err=True)
    return {name: None for name in SETTING_NAMES} | old | given_set
