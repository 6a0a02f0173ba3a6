"""One way to name cells on the command line.

A command that runs cells takes a tag or a tag pattern (`--tag 'dev_*/research/1.1'`); a command
that reads or tags the fleet takes filters: `--env`, `--team` and `--scope`, where a scope is a
Region, `global` or `all` (every Region), repeatable or comma-separated. `--global` means the same
everywhere: include the global cell. The older `--regions R1,R2|all` and `history --cell` still
work, hidden from --help, with a one-line note naming the new form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import click

from ..errors import ValidationError

ALL = "all"
GLOBAL = "global"

SCOPE_HELP = ("A Region (us-east-1), global, or all (every Region); repeat it or separate with commas. "
              "Add --global to include the global cell.")
GLOBAL_HELP = "Include the global cell (as --scope global does)."


@dataclass(frozen=True)
class Scopes:
    """Which scopes were asked for (pure data): `regions` None for every Region (`all`), () for
    none named; `with_global` the global cell too; `given` whether any --scope/--global was."""

    regions: tuple[str, ...] | None
    with_global: bool
    given: bool

    def matches(self, scope: str) -> bool:
        """Is a cell of `scope` selected? Without --scope or --global every cell is."""
        if not self.given:
            return True
        if scope == GLOBAL:
            return self.with_global
        return self.regions is None or scope in self.regions

    def note(self) -> str:
        """The filter as the user could type it ("" when none)."""
        if not self.given:
            return ""
        named = [ALL] if self.regions is None else list(self.regions)
        return " ".join([f"--scope {','.join(named)}"] * bool(named) + ["--global"] * self.with_global)


def parse_scopes(values: tuple[str, ...], include_global: bool, option: str = "--scope",
                 extra: frozenset[str] = frozenset()) -> Scopes:
    """`--scope` values and `--global` -> Scopes (pure). `all` stands alone among the Regions; a
    Region that is not one (a typo) is refused, not a filter that silently matches nothing;
    `extra`: the repo's extra_regions."""
    from ..model.regions import is_allowed

    items = [item.strip() for value in values for item in value.split(",") if item.strip()]
    for item in items:
        if item not in (ALL, GLOBAL) and not is_allowed(item, extra):
            raise ValidationError(f"{option} {item}: not a known AWS Region; name a Region (us-east-1), "
                                  "global or all (a new Region can be allowed with extra_regions in "
                                  "[tool.tfdeploy])")
    with_global = include_global or GLOBAL in items
    regions = list(dict.fromkeys(item for item in items if item != GLOBAL))
    given = bool(items) or include_global
    if ALL in regions:
        if len(regions) > 1:
            raise ValidationError(f"{option} all stands alone (every Region); or name Regions: "
                                  f"{option} us-east-1,eu-west-1")
        return Scopes(None, with_global, given)
    return Scopes(tuple(regions), with_global, given)


def scope_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--scope (repeatable) and --global; the command gets `scope: tuple[str, ...]` and
    `include_global: bool` (parse_scopes turns them into Scopes)."""
    func = click.option("--global", "include_global", is_flag=True, help=GLOBAL_HELP)(func)
    return click.option("--scope", "scope", multiple=True, metavar="SCOPE", help=SCOPE_HELP)(func)


def regions_alias(func: Callable[..., Any]) -> Callable[..., Any]:
    """The deprecated `--regions R1,R2|all`: hidden; folded into --scope by `with_regions`."""
    return click.option("--regions", "regions", hidden=True, default=None)(func)


def with_regions(scope: tuple[str, ...], regions: str | None) -> tuple[str, ...]:
    """--scope values with the deprecated --regions folded in (said once on stderr)."""
    if regions is None:
        return scope
    if scope:
        raise ValidationError("--regions and --scope both given; give --scope alone (--regions is its old name)")
    if GLOBAL in [item.strip() for item in regions.split(",")]:
        raise ValidationError(f"--regions {regions!r}: global is not a Region; pass --global to include the "
                              "global cell")
    click.echo(f"tfdeploy: note: --regions is deprecated; use --scope {regions}", err=True)
    return (regions,)
