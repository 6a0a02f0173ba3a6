"""Fixtures for the quality-gate stages: fixture modules copied into throwaway git repos, the
real terraform and checkov, and a clearly named test double for tflint (which cannot be installed
on these machines)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
DOUBLE = HERE / "tflint_test_double.py"

TFLINT_HCL = """\
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "recommended"
}
"""


def copy_fixture(name: str, dest: Path) -> Path:
    """Copy fixtures/<name> to dest, turning *.tf.fixture back into *.tf (see fixtures/README.md)."""
    dest.mkdir(parents=True, exist_ok=True)
    for source in (FIXTURES / name).iterdir():
        target = dest / (source.name[: -len(".fixture")] if source.name.endswith(".fixture") else source.name)
        shutil.copyfile(source, target)
    return dest


def make_repo(root: Path, *fixtures: str, tflint_hcl: bool = True) -> Path:
    """A git repo holding the named fixtures as sub-directories."""
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    if tflint_hcl:
        (root / ".tflint.hcl").write_text(TFLINT_HCL)
    for name in fixtures:
        copy_fixture(name, root / name)
    return root


def cli_group():
    """The commands inside tfdeploy's error-handling group, as the real CLI registers them."""
    from tfdeploy.cli.common import TfdeployGroup
    from tfdeploy.cli.quality import lint, scan

    group = TfdeployGroup(name="tfdeploy")
    group.add_command(lint)
    group.add_command(scan)
    return group


def invoke(args: list[str], env: dict[str, str | None]):
    return CliRunner().invoke(cli_group(), args, env=env, catch_exceptions=False)


def export_lines(output: str) -> dict[str, str]:
    pairs = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isupper() and key.replace("_", "").isalnum():
            pairs[key] = value
    return pairs


@pytest.fixture(scope="session")
def tool_env(terraform_bin, checkov_bin) -> dict[str, str]:
    """The environment the stages run with: the real terraform and checkov, named explicitly so a
    terraform or checkov elsewhere on PATH cannot change the outcome."""
    return {**os.environ, "TFDEPLOY_TERRAFORM": terraform_bin, "TFDEPLOY_CHECKOV": checkov_bin}


@dataclass
class TflintDouble:
    bin_dir: Path
    log: Path

    def calls(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def env(self, base: dict[str, str], **extra: str) -> dict[str, str]:
        return {**base, "PATH": f"{self.bin_dir}{os.pathsep}{base.get('PATH', '')}",
                "TFLINT_DOUBLE_LOG": str(self.log), **extra}


@pytest.fixture
def tflint_double(tmp_path) -> TflintDouble:
    """`tflint` on PATH is tests/quality/tflint_test_double.py (a TEST DOUBLE, not tflint)."""
    bin_dir = tmp_path / "double-bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "tflint"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{DOUBLE}" "$@"\n')
    wrapper.chmod(0o755)
    return TflintDouble(bin_dir, tmp_path / "tflint-calls.jsonl")


@pytest.fixture
def no_tflint_env(tool_env, tmp_path) -> dict[str, str]:
    """PATH holds no tflint at all (an empty directory), and TFDEPLOY_TFLINT is unset."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    env = {k: v for k, v in tool_env.items() if k != "TFDEPLOY_TFLINT"}
    env["PATH"] = str(empty)
    return env
