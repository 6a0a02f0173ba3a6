"""Finding external tools: env var, then PATH, then the fallback shipped with tfdeploy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from tfdeploy.errors import ConfigError, ToolMissingError
from tfdeploy.gates.tools import find_tool, require_tool, tool_version


def fake_tool(directory: Path, name: str, version: str = "1.2.3") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(f"#!/bin/sh\necho '{name} version {version}'\n")
    path.chmod(0o755)
    return path


def test_env_var_wins_over_path(tmp_path):
    explicit = fake_tool(tmp_path / "explicit", "tflint")
    on_path = fake_tool(tmp_path / "path", "tflint")
    environ = {"TFDEPLOY_TFLINT": str(explicit), "PATH": str(on_path.parent)}
    assert find_tool("tflint", environ) == str(explicit)
    assert find_tool("tflint", {"PATH": str(on_path.parent)}) == str(on_path)


def test_env_var_pointing_nowhere_is_a_config_error_not_a_fallback(tmp_path):
    fake_tool(tmp_path / "path", "tflint")
    with pytest.raises(ConfigError, match="TFDEPLOY_TFLINT=/nope/tflint is not an executable"):
        find_tool("tflint", {"TFDEPLOY_TFLINT": "/nope/tflint", "PATH": str(tmp_path / "path")})


def test_checkov_falls_back_to_the_repo_venv(tmp_path):
    repo = tmp_path / "repo"
    venv_checkov = fake_tool(repo / ".venv-checkov" / "bin", "checkov")
    assert find_tool("checkov", {"PATH": str(tmp_path / "empty")}, repo) == str(venv_checkov)


def test_terraform_falls_back_to_the_embedded_console_script(tmp_path):
    embedded = Path(sys.executable).parent / "tfdeploy-terraform"
    assert find_tool("terraform", {"PATH": str(tmp_path)}) == str(embedded)


def test_missing_tflint_is_one_line_saying_how_to_install(tmp_path):
    assert find_tool("tflint", {"PATH": str(tmp_path)}) is None
    with pytest.raises(ToolMissingError) as info:
        require_tool("tflint", {"PATH": str(tmp_path)})
    message = str(info.value)
    assert "\n" not in message and info.value.exit_code == 3
    assert "https://github.com/terraform-linters/tflint#installation" in message
    assert "--allow-missing tflint" in message


def test_tool_version_reads_the_first_version(tmp_path):
    assert tool_version(str(fake_tool(tmp_path, "tflint", "0.53.0"))) == "0.53.0"
    assert tool_version(str(tmp_path / "absent")) == "unknown"
