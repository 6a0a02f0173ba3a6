"""The toolkit's name on PyPI is its own (`tfdeploy-toolkit`: PyPI's `tfdeploy` is an unrelated
2017 TensorFlow project), the core install carries no sandbox (moto, Flask), and every install
written anywhere names it. `toolkit_spec` decides what the generated buildspecs install."""

from __future__ import annotations

import re
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml
from tfdeploy import DISTRIBUTION, __version__
from tfdeploy.errors import ConfigError
from tfdeploy.model.settings import merge_settings

from tests.adoption.toolkit_wheel import build_wheel
from tests.conftest import REPO_ROOT, git
from tests.e2e.conftest import tfdeploy

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def test_distribution_name_is_its_own_and_commands_stay_tfdeploy():
    project = PYPROJECT["project"]
    assert project["name"] == "tfdeploy-toolkit" == DISTRIBUTION
    assert project["scripts"] == {"tfdeploy": "tfdeploy.entry:main",
                                  "tfdeploy-terraform": "tfdeploy.engine.embedded_terraform:main"}


def test_core_install_has_no_sandbox_dependencies():
    core = " ".join(PYPROJECT["project"]["dependencies"]).lower()
    assert "moto" not in core and "flask" not in core
    assert any(d.startswith("moto[server]") for d in PYPROJECT["project"]["optional-dependencies"]["sandbox"])


def test_wheel_metadata(tmp_path):
    wheel = build_wheel(tmp_path / "wheels")
    assert wheel.name == f"tfdeploy_toolkit-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(info).decode()
        entry_points = archive.read(info.replace("METADATA", "entry_points.txt")).decode()
    assert re.search(r"^Name: tfdeploy-toolkit$", metadata, re.M)
    requires = re.findall(r"^Requires-Dist: (.*)$", metadata, re.M)
    moto = [r for r in requires if r.startswith("moto")]
    assert moto and all('extra == "sandbox"' in r for r in moto), requires
    assert "tfdeploy = tfdeploy.entry:main" in entry_points
    assert "tfdeploy-terraform = tfdeploy.engine.embedded_terraform:main" in entry_points
    # Only the toolkit: no infra code (envs/, modules/, main.tf) and no tests in the wheel.
    assert {n.split("/")[0] for n in names} == {"tfdeploy", info.split("/")[0]}


# `pip install tfdeploy` (or `"tfdeploy==..."`, `tfdeploy[...]`) installs the wrong project.
# Up to the end of the command (a backtick, `;`, `&`, `|` or `)` ends it).
_WRONG_INSTALL = re.compile(r"pip3? install\b[^\n`;&|)]*?(?<![\w./@-])['\"]?tfdeploy(?![\w-])")


def _install_texts() -> list[Path]:
    files = [REPO_ROOT / "README.md", REPO_ROOT / ".ci" / "run", REPO_ROOT / "pyproject.toml"]
    files += sorted((REPO_ROOT / "buildspecs").glob("*.yml"))
    files += sorted((REPO_ROOT / "toolkit").rglob("*.py"))
    files += sorted((REPO_ROOT / "modules").rglob("*.md"))
    files += sorted((REPO_ROOT / "docs").rglob("*.md"))  # the docs site, where the README's depth moved
    return files


def test_the_wrong_install_is_recognised():
    assert _WRONG_INSTALL.search("run: pip install tfdeploy")
    assert _WRONG_INSTALL.search("pip install --quiet 'tfdeploy==0.1.0'")
    assert _WRONG_INSTALL.search('pip install "tfdeploy[sandbox]"')
    assert not _WRONG_INSTALL.search("pip install tfdeploy-toolkit")
    assert not _WRONG_INSTALL.search("pip install 'tfdeploy-toolkit[sandbox]'")
    assert not _WRONG_INSTALL.search("pip install -e '.[test,sandbox]'")
    assert not _WRONG_INSTALL.search("(`pip install tfdeploy-toolkit`): PyPI's `tfdeploy` is unrelated")


def test_no_install_instruction_names_the_wrong_project():
    wrong = []
    for path in _install_texts():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if _WRONG_INSTALL.search(line):
                wrong.append(f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}")
    assert not wrong, "\n".join(wrong)


def test_buildspecs_install_the_toolkit_not_the_repo():
    for path in sorted((REPO_ROOT / "buildspecs").glob("*.yml")):
        spec = yaml.safe_load(path.read_text())
        assert spec["env"]["variables"]["TFDEPLOY_TOOLKIT_SPEC"] == f"tfdeploy-toolkit=={__version__}", path
        installs = [c for c in spec["phases"]["install"]["commands"] if "pip install" in c]
        assert installs and not any(re.search(r"pip install[^\n]* ['\"]?\.['\"]?( |$)", c) for c in installs)
        # Lean stages: the toolkit's core only, never the sandbox extra.
        assert not any("[sandbox]" in c or "moto" in c for c in installs), path


QUICKSTART = ("python3 -m venv .venv && .venv/bin/pip install -e '.[sandbox]' && .venv/bin/tfdeploy demo",
              "bash .ci/run")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:end if end != -1 else len(text)]


def test_quickstart_install_line_gives_a_working_demo():
    """The demo needs the sandbox (moto): the quickstart installs the extra. The two commands are
    the same in the README, the docs' home page and Getting started."""
    pages = {"README.md": "## Quickstart", "docs/index.md": "## Two commands",
             "docs/getting-started.md": "## Install and run the demo"}
    for path, heading in pages.items():
        quickstart = _section((REPO_ROOT / path).read_text(), heading)
        line = next(line for line in quickstart.splitlines() if "tfdeploy demo" in line and "pip install" in line)
        assert "[sandbox]" in line, (path, line)
        commands = [line for line in quickstart.splitlines() if line and not line.startswith(("#", "`"))]
        assert all(command in commands for command in QUICKSTART), (path, commands)


@pytest.mark.parametrize("spec", [
    "tfdeploy-toolkit==0.1.0", "tfdeploy-toolkit>=0.1,<0.2", "tfdeploy-toolkit[sandbox]==0.1.0",
    "acme-tfdeploy==2.0", "tfdeploy-toolkit @ https://pkgs.example.com/tfdeploy_toolkit-0.1.0-py3-none-any.whl",
])
def test_toolkit_spec_accepts_one_requirement(spec):
    assert merge_settings({"toolkit_spec": spec}, {}, {}).toolkit_spec == spec


@pytest.mark.parametrize("spec", [
    ".", "-e .", "tfdeploy-toolkit==0.1.0 --index-url http://evil", "tfdeploy-toolkit; rm -rf /",
    "tfdeploy-toolkit==$(id)", "tfdeploy-toolkit==0.1.0\n", "a b", "tfdeploy-toolkit; python_version>'3'",
    "git+https://example.com/x.git", "",
])
def test_toolkit_spec_refuses_anything_else_in_one_line(spec):
    with pytest.raises(ConfigError) as caught:
        merge_settings({"toolkit_spec": spec}, {}, {})
    message = str(caught.value)
    assert "\n" not in message and "must be one pip requirement" in message


def test_default_toolkit_spec_is_the_pinned_distribution():
    assert merge_settings({}, {}, {}).toolkit_spec == f"tfdeploy-toolkit=={__version__}"


def test_generate_check_compares_with_the_toolkit_spec(tmp_path):
    repo = tmp_path / "infra"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "pyproject.toml").write_text('[tool.tfdeploy]\nbackend_prefix = "acme"\n'
                                         'toolkit_spec = "tfdeploy-toolkit[sandbox]==0.1.0"\n')
    tfdeploy(repo, "buildspec", "generate")
    plan = yaml.safe_load((repo / "buildspecs" / "plan.yml").read_text())
    assert plan["env"]["variables"]["TFDEPLOY_TOOLKIT_SPEC"] == "tfdeploy-toolkit[sandbox]==0.1.0"
    assert tfdeploy(repo, "buildspec", "generate", "--check").returncode == 0

    (repo / "pyproject.toml").write_text('[tool.tfdeploy]\nbackend_prefix = "acme"\n')
    stale = tfdeploy(repo, "buildspec", "generate", "--check", check=False)
    assert stale.returncode == 1
    assert stale.stderr.strip().splitlines() == [
        "tfdeploy: error: 5 buildspec file(s) out of date; run: tfdeploy buildspec generate, and commit the result"]
    overridden = tfdeploy(repo, "buildspec", "generate", "--check",
                          "--set", "toolkit_spec=tfdeploy-toolkit[sandbox]==0.1.0")
    assert overridden.returncode == 0

    bad = tfdeploy(repo, "buildspec", "generate", "--set", "toolkit_spec=-e .", check=False)
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "must be one pip requirement" in bad.stderr
