"""Locate the external executables tfdeploy drives (terraform, tflint, checkov) and their versions.

Lookup order per tool: its `TFDEPLOY_<TOOL>` environment variable, then PATH, then a fallback
that ships with tfdeploy's own install: the embedded `tfdeploy-terraform` next to the running
Python; for checkov the repo's `.venv-checkov`, then the managed install that `tfdeploy tools
install checkov` makes under the user state dir (gates/toolinstall.py). checkov may also live in
tfdeploy's own environment (found on PATH): tfdeploy reads HCL with either `hcl2` module.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping

from ..errors import ConfigError, TfdeployError, ToolMissingError

TOOLS = ("terraform", "tflint", "checkov")

ENV_VARS = {name: f"TFDEPLOY_{name.upper()}" for name in TOOLS}

INSTALL_HINTS = {
    "terraform": "install Terraform (https://developer.hashicorp.com/terraform/install), or "
                 "reinstall tfdeploy to get the embedded tfdeploy-terraform, or set TFDEPLOY_TERRAFORM",
    "tflint": "install tflint (https://github.com/terraform-linters/tflint#installation) or pass "
              "--allow-missing tflint",
    "checkov": "run `tfdeploy tools install checkov` (its own venv under the user state dir), "
               "or pip install 'checkov>=3.2,<4' anywhere and set TFDEPLOY_CHECKOV (or --checkov), "
               "or pass --allow-missing checkov",
}

_VERSION_RE = re.compile(r"v?(\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.-]+)?)")


def _executable(path: str | os.PathLike[str]) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _fallbacks(name: str, repo_root: Path | None, environ: Mapping[str, str]) -> list[Path]:
    if name == "terraform":
        return [Path(sys.executable).parent / "tfdeploy-terraform"]
    if name == "checkov":
        from .toolinstall import managed_executable

        repo_venv = [Path(repo_root) / ".venv-checkov" / "bin" / "checkov"] if repo_root is not None else []
        return [*repo_venv, managed_executable("checkov", environ)]
    return []


def find_tool(name: str, environ: Mapping[str, str] = os.environ,
              repo_root: Path | None = None) -> str | None:
    """The executable to run for `name`, or None when it is not installed anywhere we look.

    An explicit `TFDEPLOY_<TOOL>` that points nowhere is a configuration error, not "missing":
    falling back to PATH would silently run a different tool than the one the user chose.
    """
    if name not in TOOLS:
        raise ValueError(f"unknown tool {name!r}")
    var = ENV_VARS[name]
    explicit = environ.get(var)
    if explicit:
        resolved = explicit if os.sep in explicit else shutil.which(explicit, path=environ.get("PATH"))
        if resolved and _executable(resolved):
            return str(resolved)
        raise ConfigError(f"{var}={explicit} is not an executable file; point it at {name} or unset it")
    on_path = shutil.which(name, path=environ.get("PATH", ""))
    if on_path:
        return on_path
    for candidate in _fallbacks(name, repo_root, environ):
        if _executable(candidate):
            return str(candidate)
    return None


def require_tool(name: str, environ: Mapping[str, str] = os.environ,
                 repo_root: Path | None = None) -> str:
    """Like find_tool, but a missing tool is a ToolMissingError (exit 3) saying how to install it."""
    path = find_tool(name, environ, repo_root)
    if path is None:
        raise ToolMissingError(f"{name} not found (looked at ${ENV_VARS[name]}, PATH"
                               f"{fallback_text(name, environ)}); {INSTALL_HINTS[name]}")
    return path


def fallback_text(name: str, environ: Mapping[str, str] = os.environ) -> str:
    if name == "terraform":
        return ", tfdeploy-terraform next to python"
    if name == "checkov":
        from .toolinstall import managed_executable

        return f", <repo>/.venv-checkov/bin/checkov, {managed_executable('checkov', environ)}"
    return ""


def parse_version(text: str) -> str:
    """The first version number in a tool's `--version` output ("unknown" if none) (pure)."""
    for line in text.splitlines():
        match = _VERSION_RE.search(line)
        if match:
            return match.group(1)
    return "unknown"


_VERSIONS: dict[str, str] = {}


def tool_version(path: str, environ: Mapping[str, str] | None = None) -> str:
    """`<path> --version`, reduced to the version number; cached per path for the process.

    Never raises: a version is reported for the record, it must not fail a stage. (checkov takes
    seconds to start, so the scan stage reads checkov's version from its JSON report instead.)
    """
    if path not in _VERSIONS:
        try:
            proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60,
                                  env=None if environ is None else dict(environ))
            out = proc.stdout if proc.stdout.strip() else proc.stderr
            _VERSIONS[path] = parse_version(out)
        except (OSError, subprocess.SubprocessError):
            return "unknown"
    return _VERSIONS[path]


def run_tool(argv: list[str], cwd: Path, environ: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a tool to completion, capturing its output (stages parse it; nothing streams)."""
    try:
        return subprocess.run(argv, cwd=cwd, env=dict(environ), capture_output=True, text=True)
    except OSError as exc:
        raise TfdeployError(f"could not run {argv[0]}: {exc.strerror or exc}; check the executable") from None
