"""checkov beside the toolkit (issue 10, item 5): in the same venv, in its own, or not at all.

`pip install <toolkit> checkov` into one venv (what most users do) lets checkov's bc-python-hcl2
own the `hcl2` module; every command that reads tfvars used to die with `AttributeError: module
'hcl2' has no attribute 'SerializationOptions'`. The venv here is real (pip from the usual index,
cached per session); the repo, tags, moto and the embedded Terraform are the e2e fixtures'.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.e2e.conftest import tag, tfdeploy
from tests.quality.test_quality_tools import fake_tool
from tests.statecheck import state_keys


def _pip_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TFDEPLOY_CHECKOV")}


@pytest.fixture(scope="session")
def one_venv(tmp_path_factory) -> Path:
    """A venv with this worktree's toolkit AND checkov installed together (in that order)."""
    venv = tmp_path_factory.mktemp("both") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
                           "--disable-pip-version-check", "-e", str(REPO_ROOT), "checkov>=3.2,<4"],
                          capture_output=True, text=True, env=_pip_env(), timeout=900)
    # A failed install is the very failure this file exists to catch (e.g. a pin of the toolkit's
    # that checkov's own pins contradict): it fails the test, never skips it.
    assert proc.returncode == 0, f"pip could not install the toolkit and checkov together:\n{proc.stderr.strip()[-2000:]}"
    return venv


def _run(venv: Path, repo: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**_pip_env(), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    return subprocess.run([str(venv / "bin" / "tfdeploy"), *args], cwd=repo, capture_output=True,
                          text=True, env=env, timeout=600)


def test_toolkit_and_checkov_in_one_venv(one_venv, repo):
    python = str(one_venv / "bin" / "python")
    owner = subprocess.run([python, "-c", "from tfdeploy.model.hcl import flavor; print(flavor())"],
                           capture_output=True, text=True, env=_pip_env()).stdout.strip()
    assert owner == "bc-python-hcl2"  # the situation users end up in

    tag(repo, "dev_us-east-1/research/1.0")
    resolved = _run(one_venv, repo, "resolve", "--tag", "dev_us-east-1/research/1.0")
    assert resolved.returncode == 0, resolved.stderr
    assert "111111111111" in resolved.stdout

    assert _run(one_venv, repo, "bootstrap", "--env", "dev").returncode == 0
    applied = _run(one_venv, repo, "apply", "--tag", "dev_us-east-1/research/1.0", "--auto-approve")
    assert applied.returncode == 0, applied.stderr
    assert state_keys("demo-tfstate-dev") == ["research/dev-us-east-1/terraform.tfstate"]

    scanned = _run(one_venv, repo, "scan", "--tag", "dev_us-east-1/research/1.0", "--exports")
    assert scanned.returncode == 0, scanned.stdout + scanned.stderr
    assert "SCAN_STATUS=passed" in scanned.stdout
    result = json.loads((repo / ".tfdeploy" / "work" / "dev-us-east-1-research" / ".tfdeploy-results"
                         / "scan.result.json").read_text())
    assert result["tools"]["checkov"].startswith("3.")  # checkov ran (its own report's version)


def test_no_checkov_anywhere_is_one_line_naming_tools_install(repo, tmp_path):
    env = {"TFDEPLOY_CHECKOV": "", "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
           "TFDEPLOY_HOME": str(tmp_path / "home")}
    proc = tfdeploy(repo, "scan", "--dir", ".", "--env", "dev", check=False, env=env)
    assert proc.returncode == 3
    error = [line for line in proc.stderr.splitlines() if line.startswith("tfdeploy: error:")]
    assert len(error) == 1 and "Traceback" not in proc.stderr
    assert "tfdeploy tools install checkov" in error[0]
    assert str(tmp_path / "home" / "tools" / "checkov" / "bin" / "checkov") in error[0]


def test_scan_uses_the_managed_install(tmp_path):
    from tfdeploy.gates.tools import find_tool

    home = tmp_path / "home"
    managed = fake_tool(home / "tools" / "checkov" / "bin", "checkov")
    environ = {"PATH": str(tmp_path / "empty"), "TFDEPLOY_HOME": str(home)}
    assert find_tool("checkov", environ, tmp_path / "repo") == str(managed)
    on_path = fake_tool(tmp_path / "onpath", "checkov")  # PATH comes first
    assert find_tool("checkov", {**environ, "PATH": str(on_path.parent)}) == str(on_path)


def test_tools_install_checkov_into_a_temp_home(tmp_path, repo):
    """Uses the pip index (PyPI); the installed checkov then scans the repo."""
    home = tmp_path / "home"
    env = {**_pip_env(), "TFDEPLOY_HOME": str(home), "TFDEPLOY_CHECKOV": "",
           "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    proc = subprocess.run([str(Path(sys.executable).parent / "tfdeploy"), "tools", "install", "checkov"],
                          capture_output=True, text=True, env={**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
                          timeout=900)
    assert proc.returncode == 0, proc.stderr
    checkov = home / "tools" / "checkov" / "bin" / "checkov"
    assert f"installed checkov: {checkov}" in proc.stdout
    scanned = tfdeploy(repo, "scan", "--dir", ".", "--env", "dev", "--json", check=False, env=env)
    assert scanned.returncode == 0, scanned.stderr
    assert '"checkov": "3.' in scanned.stdout
