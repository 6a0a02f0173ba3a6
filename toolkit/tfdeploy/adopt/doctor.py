"""`tfdeploy doctor`: what tfdeploy would use on this machine, each item ok or missing with the fix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

from .. import __version__

OK, MISSING, WARN = "ok", "missing", "warning"


@dataclass(frozen=True)
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""
    required: bool = True

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _tool(name: str, environ: Mapping[str, str], repo_root: Path | None, required: bool) -> Check:
    from ..errors import ConfigError
    from ..gates.tools import INSTALL_HINTS, find_tool, tool_version

    try:
        path = find_tool(name, environ, repo_root)
    except ConfigError as exc:
        return Check(name, MISSING, str(exc), "fix or unset the variable", required)
    if path is None:
        return Check(name, MISSING if required else WARN, "not found", INSTALL_HINTS[name], required)
    return Check(name, OK, f"{path} (version {tool_version(path, environ)})", required=required)


def _hcl2() -> Check:
    """Which `hcl2` module tfdeploy reads HCL with: either works; say which, and what it means for
    a checkov in the same environment."""
    from ..errors import ConfigError
    from ..model import hcl

    try:
        kind = hcl.flavor()
    except ConfigError as exc:
        return Check("hcl2", MISSING, str(exc), "pip install --force-reinstall 'python-hcl2>=8,<9'")
    detail = hcl.describe()
    if kind == hcl.BC_PYTHON_HCL2:
        detail += "; checkov's fork owns the hcl2 module here, tfdeploy reads HCL with it"
    return Check("hcl2", OK, detail, required=False)


def _git() -> Check:
    path = shutil.which("git")
    if path is None:
        return Check("git", MISSING, "not found", "install git (apt-get install git)")
    version = subprocess.run([path, "--version"], capture_output=True, text=True).stdout.strip()
    return Check("git", OK, f"{path} ({version})")


def _aws(environ: Mapping[str, str]) -> Check:
    from ..aws.sandbox import active_endpoint
    from ..engine.stages import has_aws_credentials
    from ..errors import TfdeployError

    try:
        endpoint = active_endpoint(environ)
    except TfdeployError as exc:  # a stale TFDEPLOY_SANDBOX_ENDPOINT: report it, do not stop
        what, _, todo = str(exc).partition(": run ")
        return Check("aws", MISSING, what, "run " + todo if todo else "")
    if endpoint:
        return Check("aws", OK, f"local sandbox at {endpoint} (moto); nothing goes to AWS")
    if has_aws_credentials(environ):
        where = environ.get("AWS_PROFILE") and f"profile {environ['AWS_PROFILE']}" or "default chain"
        return Check("aws", OK, f"AWS credentials found ({where}); commands talk to real AWS")
    return Check("aws", MISSING, "no sandbox and no AWS credentials",
                 'tfdeploy sandbox up && eval "$(tfdeploy sandbox env)", or configure AWS credentials')


def _providers(environ: Mapping[str, str]) -> Check:
    from ..engine.terraform import MIRROR_VAR, mirror_providers

    mirror = environ.get(MIRROR_VAR)
    if not mirror:
        return Check("providers", OK, "from their registries (needs network); set TFDEPLOY_PROVIDER_MIRROR "
                                      "to install from a local mirror", required=False)
    found = mirror_providers(Path(mirror)) if Path(mirror).is_dir() else []
    if not found:
        return Check("providers", MISSING, f"{MIRROR_VAR}={mirror} holds no providers",
                     "point it at a filesystem mirror (<host>/<namespace>/<type>/<version>/<os_arch>/)")
    return Check("providers", OK, f"mirror {mirror}: {', '.join(found)}", required=False)


def _settings(repo_root: Path | None, environ: Mapping[str, str]) -> Check:
    from ..errors import TfdeployError
    from ..model.settings import load_settings

    if repo_root is None:
        return Check("repo", WARN, "not inside a git repository", "cd into the infra repo or pass --repo",
                     required=False)
    try:
        settings = load_settings(repo_root, environ)
        prefix = settings.require_backend_prefix()
    except TfdeployError as exc:
        return Check("repo", MISSING, str(exc), "fix [tool.tfdeploy] in pyproject.toml")
    return Check("repo", OK, f"{repo_root}: backend_prefix={prefix}, lock={settings.lock}, "
                             f"state_layout={settings.state_layout}, environments={','.join(settings.environments)}")


def run_checks(repo_root: Path | None, environ: Mapping[str, str]) -> list[Check]:
    return [
        Check("tfdeploy", OK, f"{__version__} on Python {sys.version.split()[0]}"),
        _tool("terraform", environ, repo_root, required=True),
        _tool("checkov", environ, repo_root, required=False),
        _tool("tflint", environ, repo_root, required=False),
        _hcl2(),
        _providers(environ),
        _git(),
        _aws(environ),
        _settings(repo_root, environ),
    ]
