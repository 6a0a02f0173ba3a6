"""Shared pieces of the command line: error handling, repo/settings options, JSON output.

Command modules import from here (not from cli.py) so each can be registered without cycles.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import click

from ..errors import TfdeployError, ValidationError
from ..paths import shown_path  # noqa: F401 - command modules take it from here

if TYPE_CHECKING:
    from ..model.settings import Settings
    from ..model.tags import Tag

EXAMPLE_TAG = "dev_us-east-1/research/1.0"


def usage_error_line(exc: click.UsageError) -> str:
    """Click's usage error (usage, hint and message on three lines) as one line (pure)."""
    message = " ".join(exc.format_message().split()).rstrip(".")
    message = re.sub(r"\. Did you mean (.+)\?$", r" (did you mean \1)", message)
    message = re.sub(r"\. \(Did you mean one of: (.+)\?\)$", r" (did you mean one of \1)", message)
    command = exc.ctx.command_path if exc.ctx is not None else "tfdeploy"
    return f"tfdeploy: error: {message}; see {command} --help"


class TfdeployGroup(click.Group):
    """Turns TfdeployError into one `tfdeploy: error: ...` line and its exit code; the same for
    click's usage errors (exit 2), which click itself prints on three lines.

    `lazy_commands` (name -> module of this package defining it under that name): commands
    imported only when run or listed (see click's "Lazily Loading Subcommands")."""

    def __init__(self, *args: Any, lazy_commands: dict[str, str] | None = None,
                 sections: dict[str, tuple[str, ...]] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.lazy_commands: dict[str, str] = dict(lazy_commands or {})
        self.sections = dict(sections or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands under headings by task (Deploy, Fleet, ...), not one alphabetical list of
        thirty; a command no heading names is still listed, under Other."""
        names = self.list_commands(ctx)
        placed = {name for members in self.sections.values() for name in members}
        groups = [(title, [n for n in members if n in names]) for title, members in self.sections.items()]
        groups.append(("Other", [n for n in names if n not in placed]))
        limit = formatter.width - 6 - max((len(n) for n in names), default=0)
        for title, members in groups:
            rows = []
            for name in members:
                command = self.get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
            if rows:
                with formatter.section(f"{title} commands"):
                    formatter.write_dl(rows)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy_commands:
            import importlib

            module = importlib.import_module(f"{__package__}.{self.lazy_commands[cmd_name]}")
            self.add_command(getattr(module, cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            # click (8.2+) suggests a close name among the commands loaded so far: the lazy ones
            # count too ("did you mean 'apply'" for `aply`).
            no_such = getattr(click.exceptions, "NoSuchCommand", None)
            if no_such is None or not isinstance(exc, no_such):
                raise
            raise no_such(exc.command_name, possibilities=self.list_commands(ctx), ctx=ctx) from None

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        # The group's own options are parsed here, before invoke.
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            click.echo(usage_error_line(exc), err=True)
            raise SystemExit(exc.exit_code) from None

    def invoke(self, ctx: click.Context) -> Any:
        from ..engine.supervise import handling_signals

        # SIGINT/SIGTERM/SIGHUP: forwarded to a running Terraform, else raised as Interrupted.
        try:
            with handling_signals(until_exit=True):
                return super().invoke(ctx)
        except TfdeployError as exc:
            click.echo(f"tfdeploy: error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except click.UsageError as exc:  # a subcommand's options, an unknown command
            click.echo(usage_error_line(exc), err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:  # a full or failing local disk: the machine's problem, said in one line
            from ..fleet.celllog import describe_os_error, is_disk_error

            if not is_disk_error(exc):
                raise
            click.echo(f"tfdeploy: error: {describe_os_error(exc)} (errno {exc.errno}); free space, then run "
                       "the command again", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:  # before our handler was in place; click would say "Aborted!"
            click.echo("tfdeploy: error: interrupted (SIGINT); no Terraform was running; run the "
                       "command again when ready", err=True)
            ctx.exit(130)


@dataclass
class RepoContext:
    """What every repo command needs: where the repo is and its merged settings."""

    start: Path
    overrides: dict[str, Any]
    verbose: int

    @functools.cached_property
    def root(self) -> Path:
        from ..repo import find_repo_root

        return find_repo_root(self.start)

    def parse_tag(self, name: str) -> Tag:
        """The one parse of a --tag the command was given (the CLI edge): everything below gets
        the Tag, never the string (a malformed tag is one line, exit 2)."""
        from ..model.tags import parse_tag

        return parse_tag(name, self.settings.extra_regions)

    @functools.cached_property
    def settings(self) -> Settings:
        from ..model.settings import load_settings
        from .report import settings_origin

        settings = load_settings(self.root, os.environ, self.overrides)
        if self.verbose:
            click.echo(settings_origin(settings), err=True)
        return settings


def repo_command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add --repo, -v and --set NAME=VALUE (plus the deprecated, hidden `--<name>` options);
    pass a RepoContext as `repo`. A policy setting given as --set, an option or a TFDEPLOY_<NAME>
    variable is refused before the command does anything."""
    from .overrides import collect_overrides, deprecated_setting_options, set_option

    @functools.wraps(func)
    def wrapper(*args: Any, repo: str, verbose: int, set_pairs: tuple[str, ...], **kwargs: Any) -> Any:
        overrides = collect_overrides(set_pairs, kwargs, os.environ)
        return func(*args, repo=RepoContext(Path(repo), overrides, verbose), **kwargs)

    for option in deprecated_setting_options():
        wrapper = option(wrapper)
    wrapper = set_option(wrapper)
    wrapper = click.option("-v", "--verbose", count=True, help="Say where each setting came from.")(wrapper)
    wrapper = click.option("--repo", default=".", show_default=True, type=click.Path(file_okay=False),
                           help="The infra repo (any folder inside it).")(wrapper)
    return wrapper


def exports_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--exports: also print the KEY=VALUE lines a CI script reads (`tfdeploy ci` always does)."""
    return click.option("--exports", "exports", is_flag=True,
                        help="Also print KEY=VALUE lines for scripts (TAG=, PLAN_SUMMARY=, STATE_KEY=, ...); "
                             "`tfdeploy ci` prints and writes them always.")(func)


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Print one JSON document for machines.")(func)


def echo_json(data: Any) -> None:
    """Indented for a person at a terminal; one line for a pipe or a file, where a fleet's
    `status --json` is megabytes and indenting it cost a tenth of the command."""
    tty = sys.stdout.isatty() if hasattr(sys.stdout, "isatty") else False
    click.echo(json.dumps(data, indent=2 if tty else None))


def _one_tag(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> str | None:
    # click keeps only the last of a repeated option; running one of two tags silently is worse
    # than refusing both.
    if len(values) > 1:
        raise ValidationError(f"--tag given {len(values)} times; this command takes one tag (plan, "
                              "apply, destroy and publish take many)")
    if values and any(char in values[0] for char in "*?["):
        raise ValidationError(f"--tag {values[0]!r} is a pattern; this command takes one exact tag "
                              "(plan, apply, destroy and publish take patterns)")
    return values[0] if values else None


MANY_TAGS_HELP = (f"Deployment tag, e.g. {EXAMPLE_TAG}; repeat it, or use a pattern matched against "
                  "the repo's tags ('dev_*/research/1.1'), to run many cells in parallel.")


def tag_option(required: bool, help_text: str = f"Deployment tag, e.g. {EXAMPLE_TAG}.",
               many: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--tag TAG: given at most once (a repeated --tag is an error, not "the last one wins"), or
    with `many`, any number of tags and patterns (passed on as a tuple)."""
    if many:
        return click.option("--tag", required=required, metavar="TAG|PATTERN", multiple=True,
                            help=MANY_TAGS_HELP)
    return click.option("--tag", required=required, metavar="TAG", multiple=True, callback=_one_tag,
                        help=help_text)


def tag_options(required: bool, many: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--tag and where its code comes from; passes `source: SourceOptions` to the command."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def wrapper(*args: Any, worktree: bool, allow_lightweight: bool, skip_branch_check: bool,
                    **kwargs: Any) -> Any:
            from ..engine.stages import SourceOptions

            return func(*args, source=SourceOptions(worktree, allow_lightweight, skip_branch_check), **kwargs)

        wrapper = click.option("--skip-branch-check", is_flag=True,
                               help="Accept a tagged commit that is not on the default branch.")(wrapper)
        wrapper = click.option("--allow-lightweight", is_flag=True,
                               help="Accept a lightweight (non-annotated) tag.")(wrapper)
        wrapper = click.option("--worktree", is_flag=True,
                               help="Use the current working tree instead of the tagged commit "
                                    "(local iteration only).")(wrapper)
        return tag_option(required, many=many)(wrapper)

    return decorate


class _Duration(click.ParamType):
    name = "DURATION"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        from ..engine.celllock import parse_duration
        from ..errors import ValidationError

        try:
            return parse_duration(str(value))
        except ValidationError as exc:
            self.fail(str(exc), param, ctx)


def lock_timeout_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """--lock-timeout: how long to wait for the cell lock (and Terraform's state lock)."""
    return click.option("--lock-timeout", "lock_timeout", type=_Duration(), default="0", show_default=True,
                        help="Wait this long (0, 30s, 2m, 1h) for another run of the same cell to "
                             "finish, and for the state lock (Terraform's -lock-timeout).")(func)


def hold_cell_for_command(repo: RepoContext, tag: Tag, lock_timeout: float) -> None:
    """Hold the tag's cell lock until the current command ends (released by click's context)."""
    from ..engine.stages import hold_cell

    click.get_current_context().with_resource(hold_cell(repo.root, tag, environ=os.environ, timeout_s=lock_timeout))
