"""Run Terraform commands in a work dir (argv built by python-terraform), streaming output live.

Output is shown while Terraform runs and also kept, so failures can be explained in one line
(e.g. who holds the state lock). Terraform writes it to unlinked temporary files that tfdeploy
tails, not to pipes: if tfdeploy dies, a pipe would break and Terraform would die of SIGPIPE on
its next line ("Interrupt received...") before saving state; a file keeps accepting its output.
Every process is started and stopped by `supervise` (signals, process group, parent death).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Mapping

from ..errors import ConfigError, TfdeployError
from . import plugincache, supervise
from .targetwarning import TargetWarningFilter
from .tfenv import controlled_environment


@dataclass(frozen=True)
class TerraformResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str  # with ui_json: the rendered human text, not the raw stream
    stderr: str  # with ui_json: also every diagnostic, rendered (explain_failure reads it)
    events: tuple[dict[str, Any], ...] = ()  # with ui_json: the parsed stream


_LOCK_FIELDS = ("ID", "Path", "Operation", "Who", "Created")

# Known Terraform errors -> what to do about them (appended to the one-line explanation).
_HINTS = (
    ("Failed to query available provider packages",
     "the provider registry is unreachable: point TF_CLI_CONFIG_FILE at a config with a "
     "provider_installation mirror, or pre-fill TF_PLUGIN_CACHE_DIR"),
    ("NoSuchBucket", "the state bucket does not exist: run tfdeploy bootstrap --env {env}"),
    ("ResourceNotFoundException", "the lock table does not exist: run tfdeploy bootstrap --env {env}"),
    ("No valid credential sources found",
     'no AWS credentials: eval "$(tfdeploy sandbox env)" for the sandbox, or configure AWS credentials'),
)


def lock_holder(stderr: str) -> dict[str, str] | None:
    """Parse Terraform's 'Error acquiring the state lock' message (pure)."""
    if "Error acquiring the state lock" not in stderr:
        return None
    info = {}
    for field in _LOCK_FIELDS:
        # Tolerate the "│ " gutter Terraform draws around diagnostics when colour is on.
        match = re.search(rf"^[\s\u2502]*{field}:\s*(.*?)\s*$", stderr, re.MULTILINE)
        if match:
            info[field] = match.group(1)
    return info


def unlock_hint(tag: str | None, lock_id: str | None) -> str:
    """How to release a lock whose holder died: tfdeploy's own commands, never Terraform's raw
    force-unlock (`tfdeploy unlock` refuses while a run of the cell is alive on this machine)."""
    return f"tfdeploy locks, then tfdeploy unlock --tag {tag or 'TAG'} --lock-id {lock_id or 'LOCK_ID'}"


class StateLocked(TfdeployError):
    """Terraform could not take the state lock: another run holds it. Nothing was changed, so the
    ledger records it as `refused`, not as a failed deployment (fleet/recording.py)."""

    def __init__(self, message: str, command: str, holder: Mapping[str, str], tag: str | None):
        super().__init__(message)
        self.command, self.holder, self.tag = command, dict(holder), tag


def locked_line(command: str, holder: Mapping[str, Any], tag: str | None) -> str:
    """The one line for a state held by another run (pure)."""
    return (
        f"terraform {command}: the state is locked by {holder.get('Who') or 'someone'} "
        f"({holder.get('Operation') or 'an operation'} since {holder.get('Created') or '?'}, lock ID "
        f"{holder.get('ID') or '?'}); wait for it to finish (--lock-timeout 5m), or if it died: "
        f"{unlock_hint(tag, holder.get('ID'))}"
    )


def failure(command: str, result: TerraformResult, tag: str | None = None) -> TfdeployError:
    """The error for a failed Terraform command: StateLocked when another run holds the lock."""
    holder = lock_holder(result.stderr)
    if holder is not None:
        return StateLocked(locked_line(command, holder, tag), command, holder, tag)
    return TfdeployError(explain_failure(command, result, tag))


def explain_failure(command: str, result: TerraformResult, tag: str | None = None) -> str:
    """One line for a failed Terraform command (pure)."""
    holder = lock_holder(result.stderr)
    if holder is not None:
        return locked_line(command, holder, tag)
    errors = re.findall(r"^(?:\u2577\n\u2502 )?Error: (.+)$", result.stderr, re.MULTILINE)
    errors += re.findall(r"\u2502 Error: (.+)$", result.stderr, re.MULTILINE)
    first = errors[0].strip() if errors else (result.stderr.strip().splitlines() or ["(no output)"])[-1]
    hint = next((text for needle, text in _HINTS if needle in result.stderr), None)
    if hint:
        # A hint names the real env (the tag's first part), never a placeholder to fill in.
        env = tag.split("_", 1)[0] if tag and "_" in tag else "<env of the tag>"
        hint = hint.replace("{env}", env)
    return f"terraform {command} failed (exit {result.returncode}): {first}" + (f"; {hint}" if hint else "")


MIRROR_VAR = "TFDEPLOY_PROVIDER_MIRROR"


def mirror_providers(mirror: Path) -> list[str]:
    """Provider addresses (`host/namespace/type`) a filesystem mirror holds."""
    return sorted("/".join(p.relative_to(mirror).parts) for p in mirror.glob("*/*/*") if p.is_dir())


def mirror_cli_config(mirror: Path, providers: list[str]) -> str:
    """A Terraform CLI config that installs `providers` from `mirror`, the rest from their
    registries (pure). For air-gapped builds: the registry is never asked for those providers."""
    quoted = ", ".join(f'"{p}"' for p in providers)
    return (
        "# Written by tfdeploy from TFDEPLOY_PROVIDER_MIRROR.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = \"{mirror}\"\n"
        f"    include = [{quoted}]\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = [{quoted}]\n"
        "  }\n"
        "}\n"
    )


def base_environment(cache: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Environment for any Terraform run: automation mode, plugin cache, a usable CLI config.

    Refuses variables that would steer Terraform away from the tag (see tfenv), before anything
    is written."""
    env = controlled_environment(environ)
    plugin_cache = cache / "plugin-cache"
    plugin_cache.mkdir(parents=True, exist_ok=True)
    env.setdefault("TF_PLUGIN_CACHE_DIR", str(plugin_cache))
    env["TF_IN_AUTOMATION"] = "1"
    env["TF_INPUT"] = "0"
    mirror = environ.get(MIRROR_VAR)
    if mirror:
        path = Path(mirror).resolve()
        providers = mirror_providers(path) if path.is_dir() else []
        if not providers:
            raise ConfigError(f"{MIRROR_VAR}={mirror} holds no providers (expected "
                              "<host>/<namespace>/<type>/<version>/<os_arch>/ folders); fix or unset it")
        config = cache / "terraformrc-mirror"
        text = mirror_cli_config(path, providers)
        if not config.is_file() or config.read_text() != text:
            config.write_text(text)
        env["TF_CLI_CONFIG_FILE"] = str(config)
        return env
    configured = env.get("TF_CLI_CONFIG_FILE")
    if (configured and not Path(configured).is_file()) or (
            not configured and not (Path.home() / ".terraformrc").exists()):
        # Without any CLI config Terraform warns on every command; an empty file is a valid config.
        empty = cache / "terraformrc"
        if not empty.exists():
            empty.write_text("")
        env["TF_CLI_CONFIG_FILE"] = str(empty)
    return env


class Terraform:
    """A Terraform executable bound to one work dir and environment."""

    def __init__(self, binary: str, workdir: Path, env: Mapping[str, str], sink: IO[str] | None = None,
                 err_sink: IO[str] | None = None):
        from python_terraform import Terraform as PythonTerraform

        self._argv_builder = PythonTerraform(working_dir=str(workdir), terraform_bin_path=binary,
                                             is_env_vars_included=False)
        self.binary = binary
        self.workdir = workdir
        self.env = dict(env)
        # Where live output goes: stdout normally, stderr under --json, a buffer for the demo.
        self.sink = sink if sink is not None else sys.stdout
        self.err_sink = err_sink if err_sink is not None else sys.stderr
        # Which cell and tag this Terraform works for: error lines and interrupt reports name them.
        self.context: RunContext | None = None
        # Called with each event of a -json run as it arrives (a fleet's live table); None: nobody.
        self.on_event: Callable[[dict[str, Any]], None] | None = None
        # Called with each stdout line of a human (not -json) run as it arrives: a fleet follows a
        # plan's refresh this way and the plan keeps its attribute-level diff. None: nobody.
        self.on_line: Callable[[str], None] | None = None
        # Told when this Terraform waits for something other than Terraform (the plugin cache
        # lock): a fleet shows it in the cell's line; the log always gets it (say).
        self.on_wait: Callable[[str], None] | None = None

    def say(self, text: str) -> None:
        """A line of tfdeploy's own about this Terraform's run, in its log (and the cell's line)."""
        self.err_sink.write(f"tfdeploy: {text}\n")
        self.err_sink.flush()
        if self.on_wait is not None:
            self.on_wait(text)

    def argv(self, command: str, *args: str, **options: Any) -> list[str]:
        """python-terraform's option convention: foo_bar=1 -> -foo-bar=1, flag=IsFlagged -> -flag."""
        return self._argv_builder.generate_cmd_string(command, *args, **options)

    def run(self, command: str, *args: str, stream: bool = True, ui_json: bool = False,
            unset: tuple[str, ...] = (), **options: Any) -> TerraformResult:
        """Run one command; `ui_json` adds -json and renders the event stream for the human;
        `unset`: variables of this Terraform's environment the command runs without."""
        from . import tfjson

        if ui_json:
            from python_terraform import IsFlagged

            options["json"] = IsFlagged
        argv = self.argv(command, *args, **options)
        select_default_workspace(self.workdir, self.err_sink)
        # init takes the plugin-cache lock itself (stages.init); everything else that runs cached
        # providers holds it shared, so no init rewrites them underneath (plugincache.reading).
        cache_lock = contextlib.nullcontext() if command == "init" else plugincache.reading(self.workdir, self.env, self.say)
        with supervise.handling_signals(), cache_lock, tempfile.TemporaryFile() as out_file, \
                tempfile.TemporaryFile() as err_file:
            try:
                env = {k: v for k, v in self.env.items() if k not in unset} if unset else self.env
                child = supervise.spawn(argv, self.workdir, env, out_file, err_file)
            except FileNotFoundError:
                raise TfdeployError(f"terraform executable {self.binary!r} not found; "
                                    "pass --terraform PATH or run tfdeploy doctor") from None
            out = _Tail(out_file, self.sink if stream else None,
                        _EventRenderer(self.on_event) if ui_json else None,
                        watch=None if ui_json else self.on_line)
            err = _Tail(err_file, self.err_sink if stream else None)
            try:
                returncode = supervise.wait(child, lambda: (out.poll(), err.poll()))
            finally:
                out.poll(final=True)
                err.poll(final=True)
        events = tuple(out.events)
        stderr = err.text + tfjson.diagnostics_text(events) if ui_json else err.text
        result = TerraformResult(tuple(argv), returncode, out.text, stderr, events)
        signum = supervise.received()
        if signum is not None:
            raise supervise.Interrupted(describe_interrupt(signum, supervise.signal_count(), command,
                                                           result, self.context, self.workdir), signum,
                                        completed=returncode == 0)
        return result

    def check(self, command: str, *args: str, ok: tuple[int, ...] = (0,), **options: Any) -> TerraformResult:
        result = self.run(command, *args, **options)
        if result.returncode not in ok:
            raise failure(command, result, self.context.tag if self.context else None)
        return result


class _EventRenderer:
    """Turns -json stream lines into Terraform's human lines, keeping the events."""

    def __init__(self, on_event: Callable[[dict[str, Any]], None] | None):
        self.events: list[dict[str, Any]] = []
        self._on_event = on_event

    def __call__(self, line: str) -> str | None:
        from . import tfjson

        event = tfjson.parse_event(line)
        if event is None:
            return line  # not part of the stream (a crash message): shown as it is
        self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)
        return tfjson.render_event(event)


class _Tail:
    """Follows a file Terraform writes to: keeps every line, echoes complete lines as they come."""

    def __init__(self, file: IO[bytes], echo: IO[str] | None, render: _EventRenderer | None = None,
                 watch: Callable[[str], None] | None = None):
        self._watch = watch
        self._fd = file.fileno()
        self._offset = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._keep: list[str] = []
        self._echo = echo
        self._render = render
        # What is shown live leaves out Terraform's -target warnings; what is kept has them.
        self._shown = TargetWarningFilter()

    @property
    def events(self) -> list[dict[str, Any]]:
        return self._render.events if self._render is not None else []

    def poll(self, final: bool = False) -> None:
        # pread: the file offset is shared with Terraform's descriptor and must not move.
        while chunk := os.pread(self._fd, 65536, self._offset):
            self._offset += len(chunk)
            self._partial += self._decoder.decode(chunk)
        if final:
            self._partial += self._decoder.decode(b"", final=True)
        *lines, self._partial = self._partial.split("\n")
        lines = [line + "\n" for line in lines]
        if final and self._partial:
            lines.append(self._partial)
            self._partial = ""
        if self._render is not None:
            lines = [text for line in lines if (text := self._render(line)) is not None]
        if self._watch is not None:
            for line in lines:
                self._watch(line)
        self._keep.extend(lines)
        shown = self._shown.feed(lines) + (self._shown.flush() if final else [])
        if self._echo is not None and shown:
            self._echo.write("".join(shown))
            self._echo.flush()

    @property
    def text(self) -> str:
        return "".join(self._keep)


def select_default_workspace(workdir: Path, note: IO[str] | None = None) -> None:
    """Make sure Terraform uses the default workspace in `workdir`.

    `.terraform/environment` names the selected workspace (what `terraform workspace select`
    writes); a tagged tree or a hand-run command could leave one there and move state to
    env:/<name>/... . A cell's state is always the default workspace's, so the file goes."""
    selected = workdir / ".terraform" / "environment"
    try:
        name = selected.read_text(encoding="utf-8", errors="replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return
    except IsADirectoryError:
        import shutil

        shutil.rmtree(selected)
        return
    selected.unlink()
    if name not in ("", "default") and note is not None:
        note.write(f"tfdeploy: ignoring workspace {name!r} selected in {selected}; a cell always "
                   "uses the default workspace\n")
        note.flush()


@dataclass(frozen=True)
class RunContext:
    """The cell a Terraform works for: named in the line an interrupt ends with."""

    cell: str
    tag: str
    state_url: str


# Commands that write state; the others leave it as it was when interrupted.
_STATE_WRITERS = {"apply", "destroy", "import", "refresh", "state", "taint", "untaint"}


def describe_interrupt(signum: int, signals: int, command: str, result: TerraformResult,
                       context: RunContext | None, workdir: Path) -> str:
    """One line: what a signal did to a Terraform command and what to run next (pure)."""
    name = supervise.signal_name(signum)
    what = f"terraform {command}" + (f" of {context.cell}" if context else "")
    state = f"state saved at {context.state_url}" if context else "state saved"
    see = (f"run tfdeploy plan --tag {context.tag} to see what remains" if context
           else "plan again to see what remains")
    output = result.stdout + result.stderr
    if "errored.tfstate" in output or "Failed to save state" in output or "Failed to persist state" in output:
        recover = (f"tfdeploy state recover --tag {context.tag}" if context
                   else "terraform state push errored.tfstate")
        return (f"interrupted ({name}): {what} could NOT save its state and wrote errored.tfstate "
                f"(in {workdir}), the only record of what it created; push it back before any "
                f"plan or apply: {recover}")
    forced = result.returncode < 0 or signals > 1 or "Two interrupts received" in output
    if forced:
        return (f"interrupted ({name}, {signals} signals): {what} was stopped forcibly; changes it "
                f"made last may be missing from state and the lock may still be held; {see} "
                "(if it reports the lock, release it once nothing runs)")
    if "Error releasing the state lock" in output:
        holder = re.search(r"Lock Info:\s*\n\s*ID:\s*(\S+)", output)
        lock = holder.group(1) if holder else None
        return (f"interrupted ({name}): {what} stopped, {state}, but the lock was NOT released; "
                f"once nothing runs: {unlock_hint(context.tag if context else None, lock)}")
    if command not in _STATE_WRITERS:
        again = f"tfdeploy plan --tag {context.tag}" if context else "the command"
        return (f"interrupted ({name}): {what} stopped before it finished; it changes no state "
                f"and released its lock; run {again} again when ready")
    if result.returncode == 0:
        return (f"interrupted ({name}) as {what} finished: it completed, {state}, lock released; "
                f"{see}")
    return f"interrupted ({name}): {what} stopped cleanly; {state}, lock released; {see}"
