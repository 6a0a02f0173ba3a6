"""Run Terraform commands in a work dir (argv built by python-terraform), streaming output live.

Output is shown while Terraform runs and also kept, so failures can be explained in one line
(e.g. who holds the state lock).
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Mapping

from ..errors import ConfigError, TfdeployError


@dataclass(frozen=True)
class TerraformResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


_LOCK_FIELDS = ("ID", "Path", "Operation", "Who", "Created")

# Known Terraform errors -> what to do about them (appended to the one-line explanation).
_HINTS = (
    ("Failed to query available provider packages",
     "the provider registry is unreachable: point TF_CLI_CONFIG_FILE at a config with a "
     "provider_installation mirror, or pre-fill TF_PLUGIN_CACHE_DIR"),
    ("NoSuchBucket", "the state bucket does not exist: run tfdeploy bootstrap --env ENV"),
    ("ResourceNotFoundException", "the lock table does not exist: run tfdeploy bootstrap --env ENV"),
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


def explain_failure(command: str, result: TerraformResult, tag: str | None = None) -> str:
    """One line for a failed Terraform command (pure)."""
    holder = lock_holder(result.stderr)
    if holder is not None:
        return (
            f"terraform {command}: the state is locked by {holder.get('Who', 'someone')} "
            f"({holder.get('Operation', 'an operation')} since {holder.get('Created', '?')}, lock ID "
            f"{holder.get('ID', '?')}); wait for it to finish (--lock-timeout 5m), or if it died: "
            f"tfdeploy locks, then tfdeploy unlock --tag {tag or 'TAG'} --lock-id {holder.get('ID', 'LOCK_ID')}"
        )
    errors = re.findall(r"^(?:\u2577\n\u2502 )?Error: (.+)$", result.stderr, re.MULTILINE)
    errors += re.findall(r"\u2502 Error: (.+)$", result.stderr, re.MULTILINE)
    first = errors[0].strip() if errors else (result.stderr.strip().splitlines() or ["(no output)"])[-1]
    hint = next((text for needle, text in _HINTS if needle in result.stderr), None)
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
    """Environment for any Terraform run: automation mode, plugin cache, a usable CLI config."""
    env = dict(environ)
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
        self.tag: str | None = None  # the deployment tag, for hints in error lines
        # Where live output goes: stdout normally, stderr under --json, a buffer for the demo.
        self.sink = sink if sink is not None else sys.stdout
        self.err_sink = err_sink if err_sink is not None else sys.stderr

    def argv(self, command: str, *args: str, **options: Any) -> list[str]:
        """python-terraform's option convention: foo_bar=1 -> -foo-bar=1, flag=IsFlagged -> -flag."""
        return self._argv_builder.generate_cmd_string(command, *args, **options)

    def run(self, command: str, *args: str, stream: bool = True, **options: Any) -> TerraformResult:
        argv = self.argv(command, *args, **options)
        try:
            proc = subprocess.Popen(argv, cwd=self.workdir, env=self.env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, bufsize=1)
        except FileNotFoundError:
            raise TfdeployError(f"terraform executable {self.binary!r} not found; "
                                "pass --terraform PATH or run tfdeploy doctor") from None
        out: list[str] = []
        err: list[str] = []
        readers = [
            threading.Thread(target=_pump, args=(proc.stdout, out, self.sink if stream else None)),
            threading.Thread(target=_pump, args=(proc.stderr, err, self.err_sink if stream else None)),
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        proc.wait()
        return TerraformResult(tuple(argv), proc.returncode, "".join(out), "".join(err))

    def check(self, command: str, *args: str, ok: tuple[int, ...] = (0,), **options: Any) -> TerraformResult:
        result = self.run(command, *args, **options)
        if result.returncode not in ok:
            raise TfdeployError(explain_failure(command, result, self.tag))
        return result


def _pump(stream: IO[str], keep: list[str], echo: IO[str] | None) -> None:
    for line in stream:
        keep.append(line)
        if echo is not None:
            echo.write(line)
            echo.flush()
    stream.close()
