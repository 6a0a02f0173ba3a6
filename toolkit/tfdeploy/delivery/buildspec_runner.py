"""Run a CodeBuild buildspec (version 0.2) on this machine, with the semantics that matter.

What is reproduced, and how:
- One bash shell for the whole build: a persistent `bash` process evaluates each command in turn,
  so `export`, `cd` and shell variables carry over between commands and phases, as in CodeBuild.
  Commands are sent over a private pipe and each exit status comes back over another, so the
  runner (not a generated shell script) decides what runs next and knows exactly which phase and
  command failed.
- Phases run in order install, pre_build, build, post_build. The first failing command ends its
  phase's `commands`; the phase's `finally` commands still run. After a failed phase,
  `on-failure: ABORT` stops the build and `CONTINUE` goes on to the next phase; without
  `on-failure`, CodeBuild's phase transitions apply (a failed install or pre_build stops the
  build, a failed build still runs post_build). CODEBUILD_BUILD_SUCCEEDING turns 0 on failure.
- `env.variables` are set (overriding the calling environment, as they override the image's),
  `--env K=V` overrides those (like start-build overrides). CODEBUILD_SRC_DIR is the source dir,
  which is also the working directory.
- `env.exported-variables` are read from the shell at the end of the build.
- `artifacts.files` must match something (CodeBuild fails the build otherwise); missing `reports`
  files only produce a note. Nothing is uploaded.

Not reproduced: runtime-versions, run-as, parameter-store/secrets-manager (pass values with
--env), caching. Batch builds (`batch: build-graph`): delivery/batch_runner.py, on top of this. A command that runs `exit` ends the shell: it is reported as
that command's failure, and later commands and `finally` blocks cannot run.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import TfdeployError, ValidationError

PHASES = ("install", "pre_build", "build", "post_build")
ON_FAILURE = ("ABORT", "CONTINUE")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PHASE_KEYS = {"commands", "finally", "on-failure", "runtime-versions", "run-as"}
# How long what a stopped build was running gets to end after its one SIGTERM before SIGKILL: a
# tfdeploy in it lets its Terraform finish the operations in flight, write the state and release
# the lock, then records the run.
STOP_GRACE_S = 300.0


class BuildFailedError(TfdeployError):
    """The build ran and failed (a command, a phase or the artifacts)."""


@dataclass(frozen=True)
class Phase:
    name: str
    commands: tuple[str, ...]
    finally_commands: tuple[str, ...] = ()
    on_failure: str | None = None  # ABORT | CONTINUE | None (CodeBuild's default transitions)


@dataclass(frozen=True)
class Buildspec:
    phases: tuple[Phase, ...]
    variables: dict[str, str] = field(default_factory=dict)
    exported: tuple[str, ...] = ()
    artifact_files: tuple[str, ...] = ()
    artifact_base: str = ""
    reports: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)  # name -> (base, files)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failure:
    phase: str
    block: str  # commands | finally | artifacts
    index: int  # 1-based position in its block
    command: str
    exit_code: int | None
    shell_exited: bool = False

    def describe(self) -> str:
        shown = _one_line(self.command)
        if self.block == "artifacts":
            return f"artifacts: no file matches {shown!r}"
        where = f"phase {self.phase}, {'finally ' if self.block == 'finally' else ''}command {self.index}"
        if self.shell_exited:
            return (f"{where} (`{shown}`) ended the shell with exit code {self.exit_code}; "
                    "later commands and finally blocks did not run")
        return f"{where} (`{shown}`) failed with exit code {self.exit_code}"

    def to_dict(self) -> dict[str, object]:
        return {"phase": self.phase, "block": self.block, "index": self.index,
                "command": self.command, "exit_code": self.exit_code,
                "shell_exited": self.shell_exited}


@dataclass(frozen=True)
class BuildResult:
    succeeded: bool
    phases: tuple[tuple[str, str], ...]  # (phase, succeeded|failed|skipped|not run)
    failure: Failure | None
    exported: dict[str, str]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "status": "succeeded" if self.succeeded else "failed",
            "failure": self.failure.to_dict() if self.failure else None,
            "phases": [{"name": name, "status": status} for name, status in self.phases],
            "exported_variables": dict(self.exported),
            "notes": list(self.notes),
        }


def _one_line(command: str, limit: int = 100) -> str:
    first = command.strip().splitlines()[0] if command.strip() else ""
    more = first != command.strip()
    if len(first) > limit:
        first, more = first[:limit], True
    return first + (" ..." if more else "")


def _scalar(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    if value is None:
        return ""
    raise ValidationError(f"{where} is a {type(value).__name__}, not a string; quote it "
                          "(a ': ' or '- ' in an unquoted YAML value starts a mapping or a list)")


def _commands(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValidationError(f"{where} must be a list of commands")
    commands = tuple(_scalar(item, f"{where} item {i}") for i, item in enumerate(value, 1))
    for i, command in enumerate(commands, 1):
        if "\0" in command:
            raise ValidationError(f"{where} item {i} contains a NUL character")
    return commands


def parse_buildspec(data: Any, source: str = "buildspec") -> Buildspec:
    """Validate parsed buildspec YAML into a Buildspec (pure)."""
    if not isinstance(data, dict):
        raise ValidationError(f"{source}: not a buildspec (expected a YAML mapping with version and phases)")
    if str(data.get("version")) != "0.2":
        raise ValidationError(f"{source}: version {data.get('version')!r} is not supported; use version: 0.2")
    notes: list[str] = []
    env = data.get("env") or {}
    if not isinstance(env, dict):
        raise ValidationError(f"{source}: env must be a mapping")
    if env.get("shell") not in (None, "bash"):
        notes.append(f"env.shell {env['shell']!r} ignored: commands run in bash")
    for key in ("parameter-store", "secrets-manager"):
        if env.get(key):
            names = ", ".join(map(str, env[key]))
            notes.append(f"env.{key} is not fetched locally ({names}): pass values with --env NAME=VALUE")
    raw_vars = env.get("variables") or {}
    if not isinstance(raw_vars, dict):
        raise ValidationError(f"{source}: env.variables must be a mapping of NAME: value")
    variables = {}
    for name, value in raw_vars.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValidationError(f"{source}: env.variables name {name!r} is not a valid variable name")
        variables[name] = _scalar(value, f"{source}: env.variables.{name}")
    exported = env.get("exported-variables") or []
    if not isinstance(exported, list) or not all(isinstance(n, str) and _NAME.fullmatch(n) for n in exported):
        raise ValidationError(f"{source}: env.exported-variables must be a list of variable names")

    raw_phases = data.get("phases")
    if not isinstance(raw_phases, dict) or not raw_phases:
        raise ValidationError(f"{source}: phases must be a mapping with at least one of {', '.join(PHASES)}")
    unknown = [name for name in raw_phases if name not in PHASES]
    if unknown:
        raise ValidationError(f"{source}: unknown phase {unknown[0]!r}; phases are {', '.join(PHASES)}")
    phases = []
    for name in PHASES:
        if name not in raw_phases:
            continue
        body = raw_phases[name] or {}
        where = f"{source}: phases.{name}"
        if not isinstance(body, dict):
            raise ValidationError(f"{where} must be a mapping with commands")
        extra = sorted(set(body) - _PHASE_KEYS)
        if extra:
            raise ValidationError(f"{where}: unknown key {extra[0]!r}")
        on_failure = body.get("on-failure")
        if on_failure is not None and on_failure not in ON_FAILURE:
            raise ValidationError(f"{where}.on-failure {on_failure!r} is not supported here; "
                                  f"use {' or '.join(ON_FAILURE)}")
        for key in ("runtime-versions", "run-as"):
            if key in body:
                notes.append(f"phases.{name}.{key} ignored: the local tools and user are used")
        phases.append(Phase(name=name, commands=_commands(body.get("commands"), f"{where}.commands"),
                            finally_commands=_commands(body.get("finally"), f"{where}.finally"),
                            on_failure=on_failure))

    artifacts = data.get("artifacts") or {}
    if not isinstance(artifacts, dict):
        raise ValidationError(f"{source}: artifacts must be a mapping")
    artifact_files = _commands(artifacts.get("files"), f"{source}: artifacts.files")
    reports: dict[str, tuple[str, tuple[str, ...]]] = {}
    for name, report in (data.get("reports") or {}).items():
        if not isinstance(report, dict):
            raise ValidationError(f"{source}: reports.{name} must be a mapping with files")
        reports[str(name)] = (str(report.get("base-directory") or ""),
                              _commands(report.get("files"), f"{source}: reports.{name}.files"))
    return Buildspec(phases=tuple(phases), variables=variables, exported=tuple(exported),
                     artifact_files=artifact_files, artifact_base=str(artifacts.get("base-directory") or ""),
                     reports=reports, notes=tuple(notes))


def load_yaml(path: Path) -> Any:
    """A buildspec file's parsed YAML; ValidationError naming the file and line."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValidationError(f"{path} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None


def load_buildspec(path: Path) -> Buildspec:
    return parse_buildspec(load_yaml(path), str(path))


def continues_after_failure(phase: Phase) -> bool:
    """Whether the build goes on to the next phase after `phase` failed (pure)."""
    if phase.on_failure == "ABORT":
        return False
    if phase.on_failure == "CONTINUE":
        return True
    # CodeBuild's default transitions: post_build still runs after a failed build phase.
    return phase.name == "build"


def parse_env_pairs(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`--env K=V` options into a dict (pure)."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not _NAME.fullmatch(name):
            raise ValidationError(f"--env {pair!r} must look like NAME=VALUE")
        values[name] = value
    return values


class BashSession:
    """One persistent bash process that evaluates commands one at a time.

    Commands arrive NUL-terminated on a private pipe; bash `eval`s each in its own (top-level)
    context and writes the exit status to a second pipe. stdout and stderr are merged into one pipe
    and passed to `sink` as they arrive.
    """

    def __init__(self, env: Mapping[str, str], cwd: Path, sink: Callable[[bytes], None],
                 cancel: Any = None) -> None:
        self._cancel = cancel  # a threading.Event: set, the running command's shell is terminated
        self._stopping = False  # the build's process group got its one SIGTERM
        cmd_r, self._cmd_w = os.pipe()
        status_r, status_w = os.pipe()
        # The eval'd commands run with both private pipes closed, so a background process they
        # start cannot hold the status pipe open or read the command stream.
        script = (
            f'while IFS= read -r -d "" tfdeploy_cmd <&{cmd_r}; do '
            f'eval "$tfdeploy_cmd" {cmd_r}<&- {status_w}>&-; '
            f'printf "%s\\n" "$?" >&{status_w}; done'
        )
        try:
            self._proc = subprocess.Popen(
                ["bash", "--noprofile", "--norc", "-c", script], cwd=cwd, env=dict(env),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                pass_fds=(cmd_r, status_w), start_new_session=True,
            )
        except FileNotFoundError:
            os.close(self._cmd_w)
            os.close(status_r)
            raise TfdeployError("bash is not installed; buildspec run needs bash") from None
        finally:
            os.close(cmd_r)
            os.close(status_w)
        self._status = status_r
        self._out: int | None = self._proc.stdout.fileno() if self._proc.stdout else None
        self._sink = sink
        self.exit_code: int | None = None

    def _pump(self) -> None:
        assert self._out is not None
        data = os.read(self._out, 65536)
        if data:
            self._sink(data)
        else:
            self._out = None

    def _drain(self) -> None:
        while self._out is not None and select.select([self._out], [], [], 0)[0]:
            self._pump()

    def _shell_ended(self) -> None:
        self.exit_code = self._proc.wait()
        self._drain()

    def run(self, command: str) -> int | None:
        """Run one command; its exit status, or None when the shell itself has exited."""
        if self.exit_code is not None:
            return None
        payload = command.encode() + b"\0"
        try:
            while payload:
                written = os.write(self._cmd_w, payload)
                payload = payload[written:]
        except BrokenPipeError:
            self._shell_ended()
            return None
        status = b""
        while True:
            watched = [fd for fd in (self._out, self._status) if fd is not None]
            ready = select.select(watched, [], [], 0.2)[0]
            if self._out is not None and self._out in ready:
                self._pump()
            if self._status in ready:
                data = os.read(self._status, 4096)
                if not data:
                    self._shell_ended()
                    return None
                status += data
                if b"\n" in status:
                    # Everything the command wrote is already in the output pipe: drain it so
                    # the next log line comes after this command's output.
                    self._drain()
                    return int(status.split(b"\n", 1)[0])
            elif not ready and self._proc.poll() is not None:
                self._shell_ended()
                return None
            if self._cancel is not None and self._cancel.is_set() and self._proc.poll() is None:
                # Stopped from outside (a stopped batch): the shell and what it runs end; the
                # read above then sees the shell go.
                self._stop()

    def _signal_group(self, signum: int) -> None:
        try:
            os.killpg(self._proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _stop(self) -> None:
        """ONE SIGTERM to the build's process group. A tfdeploy in it forwards one interrupt to its
        Terraform; a second signal would become Terraform's "exit now, data loss may occur"."""
        if not self._stopping:
            self._stopping = True
            self._signal_group(signal.SIGTERM)

    def _drain_to_end(self, grace_s: float) -> None:
        """Read the output until every process of the build has closed it, or `grace_s` passed."""
        deadline = time.monotonic() + grace_s
        while self._out is not None and time.monotonic() < deadline:
            if select.select([self._out], [], [], min(0.5, max(0.0, deadline - time.monotonic())))[0]:
                self._pump()

    def close(self, kill: bool = False) -> None:
        try:
            os.close(self._cmd_w)  # bash's read loop ends: the shell exits
        except OSError:
            pass
        if kill and self._proc.poll() is None:
            self._stop()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self._proc.wait()
        if self._stopping:
            # What the stop reached may still be ending (a tfdeploy stopping its Terraform, then
            # recording): its output is read to the end, never cut, and it is not signalled again.
            self._drain_to_end(STOP_GRACE_S)
            self._signal_group(signal.SIGKILL)
        else:
            self._drain()
            # Background processes a command started end with the build, as the CodeBuild container does.
            self._signal_group(signal.SIGTERM)
        os.close(self._status)
        if self._proc.stdout:
            self._proc.stdout.close()


def _read_exported(shell: BashSession, names: tuple[str, ...]) -> dict[str, str] | None:
    """The exported variables' values in the shell (None when the shell is gone)."""
    if not names:
        return {}
    with tempfile.TemporaryDirectory(prefix="tfdeploy-buildspec-") as tmp:
        path = Path(tmp) / "exported"
        # Names were validated as identifiers; the path is quoted for the shell.
        fields = " ".join(f'"${{{name}-}}"' for name in names)
        quoted = "'" + str(path).replace("'", "'\\''") + "'"
        if shell.run(f"printf '%s\\0' {fields} > {quoted}") != 0:
            return None
        values = path.read_bytes().split(b"\0")
    return {name: values[i].decode("utf-8", "replace") for i, name in enumerate(names)}


def _check_artifacts(spec: Buildspec, src_dir: Path) -> tuple[Failure | None, list[str]]:
    notes = []
    base = src_dir / spec.artifact_base
    for index, pattern in enumerate(spec.artifact_files, 1):
        if not any(p.is_file() for p in base.glob(pattern)):
            return Failure("UPLOAD_ARTIFACTS", "artifacts", index,
                           f"{spec.artifact_base}/{pattern}" if spec.artifact_base else pattern, None), notes
    for name, (report_base, files) in spec.reports.items():
        for pattern in files:
            if not any(p.is_file() for p in (src_dir / report_base).glob(pattern)):
                notes.append(f"report {name}: no file matches {report_base}/{pattern}".replace("//", "/"))
    return None, notes


def build_environment(spec: Buildspec, base: Mapping[str, str], overrides: Mapping[str, str],
                      src_dir: Path) -> dict[str, str]:
    """The build's starting environment: calling env < env.variables < --env (pure)."""
    env = {**base, **spec.variables, **overrides}
    env["CODEBUILD_SRC_DIR"] = str(src_dir)
    env["CODEBUILD_BUILD_SUCCEEDING"] = "1"
    return env


def run_build(
    spec: Buildspec,
    src_dir: Path,
    *,
    overrides: Mapping[str, str] | None = None,
    skip_install: bool = False,
    sink: Callable[[bytes], None],
    base_env: Mapping[str, str] | None = None,
    cancel: Any = None,
) -> BuildResult:
    """Run the buildspec's phases in one bash shell; never raises for a failing command.
    `cancel` (a threading.Event): once set, the running command's shell is terminated and the build
    fails there (a stopped build)."""
    src_dir = src_dir.resolve()
    env = build_environment(spec, os.environ if base_env is None else base_env, overrides or {}, src_dir)

    def log(line: str) -> None:
        sink(f"[buildspec] {line}\n".encode())

    for note in spec.notes:
        log(f"note: {note}")
    notes = list(spec.notes)
    statuses: list[tuple[str, str]] = []
    failure: Failure | None = None
    stop = False
    shell = BashSession(env, src_dir, sink, cancel)
    try:
        for phase in spec.phases:
            if stop or shell.exit_code is not None:
                statuses.append((phase.name, "not run"))
                continue
            if skip_install and phase.name == "install":
                log("phase install skipped (--skip-install)")
                statuses.append((phase.name, "skipped"))
                continue
            log(f"phase {phase.name}")
            phase_failure = None
            # The first failing command ends its block; `finally` runs after `commands` either way.
            for block, commands in (("commands", phase.commands), ("finally", phase.finally_commands)):
                if shell.exit_code is not None:
                    break
                for index, command in enumerate(commands, 1):
                    log(f"{phase.name}{' finally' if block == 'finally' else ''} $ {_one_line(command)}")
                    code = shell.run(command)
                    if code == 0:
                        continue
                    if phase_failure is None:
                        exited = code is None
                        phase_failure = Failure(phase.name, block, index, command,
                                                shell.exit_code if exited else code, exited)
                    break
            if phase_failure is None:
                statuses.append((phase.name, "succeeded"))
                continue
            statuses.append((phase.name, "failed"))
            failure = failure or phase_failure
            if shell.exit_code is None:
                shell.run("export CODEBUILD_BUILD_SUCCEEDING=0")
            if not continues_after_failure(phase):
                log(f"phase {phase.name} failed; stopping the build"
                    + (" (on-failure: ABORT)" if phase.on_failure == "ABORT" else ""))
                stop = True
            else:
                log(f"phase {phase.name} failed; continuing"
                    + (" (on-failure: CONTINUE)" if phase.on_failure == "CONTINUE" else ""))
        exported = _read_exported(shell, spec.exported)
        if exported is None:
            notes.append("exported variables could not be read: the shell had exited")
            exported = {}
        if failure is None:
            failure, artifact_notes = _check_artifacts(spec, src_dir)
            notes.extend(artifact_notes)
            for note in artifact_notes:
                log(f"note: {note}")
        shell.close()
    except BaseException:
        shell.close(kill=True)
        raise
    return BuildResult(succeeded=failure is None, phases=tuple(statuses), failure=failure,
                       exported=exported, notes=tuple(notes))
