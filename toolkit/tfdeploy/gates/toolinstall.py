"""Managed tool installs: checkov in a venv of its own under the user state dir.

checkov pins an older boto3 and ships bc-python-hcl2, which installs over python-hcl2's `hcl2`
package; tfdeploy copes with either `hcl2` (model/hcl.py), but checkov breaks when python-hcl2 is
installed after it. A venv of its own avoids both. `tfdeploy tools install checkov` creates it at
`<user state dir>/tools/checkov` (`TFDEPLOY_HOME` moves it), and `find_tool("checkov")` looks
there after `TFDEPLOY_CHECKOV`, PATH and the repo's `.venv-checkov`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Mapping

from ..errors import TfdeployError, ValidationError
from ..paths import user_state_dir

CHECKOV_REQUIREMENT = "checkov>=3.2,<4"  # the range tfdeploy's report parsing is tested with
MANAGED = {"checkov": CHECKOV_REQUIREMENT}


def managed_dir(name: str, environ: Mapping[str, str] = os.environ) -> Path:
    """The venv of a managed tool (it may not exist)."""
    return user_state_dir(environ) / "tools" / name


def managed_executable(name: str, environ: Mapping[str, str] = os.environ) -> Path:
    return managed_dir(name, environ) / "bin" / name


def _run(argv: list[str], what: str, environ: Mapping[str, str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(environ))
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        raise TfdeployError(f"{what} failed (exit {proc.returncode}): "
                            f"{lines[-1].strip() if lines else '(no output)'}; fix that and run it again")


def install(name: str, requirement: str | None = None, environ: Mapping[str, str] = os.environ,
            python: str = sys.executable, say: Callable[[str], None] = lambda _: None) -> Path:
    """Create (or replace) the tool's managed venv and pip-install `requirement` into it.

    Built in a temporary sibling and swapped in only when the tool runs, so a failed install
    leaves the previous one working. Returns the executable.
    """
    if name not in MANAGED:
        raise ValidationError(f"tfdeploy manages only {', '.join(MANAGED)}; install {name} yourself")
    requirement = requirement or MANAGED[name]
    target = managed_dir(name, environ)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A venv's scripts name its python by absolute path, so it is built where it will live; the
    # previous install waits beside it and comes back if this one fails.
    old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=target.parent))
    if target.exists():
        target.rename(old / name)
    try:
        say(f"creating a venv for {name} at {target}")
        _run([python, "-m", "venv", str(target)], f"python -m venv {target}", environ)
        say(f"pip install {requirement} (from your pip index; takes a minute)")
        _run([str(target / "bin" / "python"), "-m", "pip", "install", "--quiet",
              "--disable-pip-version-check", requirement], f"pip install {requirement}", environ)
        _run([str(target / "bin" / name), "--version"], f"{name} --version", environ)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        if (old / name).exists():
            (old / name).rename(target)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return managed_executable(name, environ)
