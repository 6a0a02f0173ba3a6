"""Helpers for tests/infra: load the repo's Terraform and envs/ with python-hcl2.

A plain module with a unique name (tests/infra has no __init__.py, and other test folders have
their own conftest.py), imported by the test modules and by this folder's conftest.py.
"""

from __future__ import annotations

import atexit
import functools
import ipaddress
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

REPO = Path(__file__).resolve().parents[2]
MODULES = REPO / "modules"
ENVS = REPO / "envs"

# What the reference pattern deploys and tfdeploy's settings list; tests fail if envs/ drifts.
ENVIRONMENTS = ("dev", "qa", "staging", "prod")
TEAMS = ("research", "risk")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$")
ACCOUNT_RE = re.compile(r"^[0-9]{12}$")

_OPTS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=False)


def parse_hcl(path: Path) -> dict[str, Any]:
    return hcl2.loads(path.read_text(encoding="utf-8"), serialization_options=_OPTS)


def unwrap(value: Any) -> Any:
    """python-hcl2 wraps some expressions in ${...} and not others; compare them bare."""
    if isinstance(value, str) and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return value


@dataclass
class TfDir:
    """One Terraform configuration directory (root, a module, or an example), all files merged."""

    path: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def rel(self) -> str:
        return str(self.path.relative_to(REPO)) or "."

    def blocks(self, kind: str) -> list[tuple[str, Any]]:
        """(file name, block) for every top-level block of `kind` in the directory."""
        return [(name, block) for name, parsed in self.files.items() for block in parsed.get(kind, [])]

    def named(self, kind: str) -> dict[str, dict[str, Any]]:
        """Labelled single-level blocks (variable, output, module) by name."""
        found: dict[str, dict[str, Any]] = {}
        for _, block in self.blocks(kind):
            for name, body in block.items():
                assert name not in found, f"{self.rel}: {kind} {name!r} declared twice"
                found[name] = body
        return found

    def typed(self, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
        """Doubly-labelled blocks (resource, data) by (type, name)."""
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for _, block in self.blocks(kind):
            for rtype, by_name in block.items():
                for name, body in by_name.items():
                    found[(rtype, name)] = body
        return found

    def locals(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for _, block in self.blocks("locals"):
            merged.update(block)
        return merged

    def text(self) -> str:
        return "\n".join((self.path / name).read_text(encoding="utf-8") for name in sorted(self.files))


@functools.lru_cache(maxsize=None)
def load_dir(path: Path) -> TfDir:
    """Parse a directory once per session (python-hcl2 is slow; the result is read-only)."""
    tf = TfDir(path)
    for file in sorted(path.glob("*.tf")):
        tf.files[file.name] = parse_hcl(file)
    return tf


def module_names() -> list[str]:
    return sorted(p.name for p in MODULES.iterdir() if p.is_dir())


def example_dirs() -> list[Path]:
    return sorted(p for p in MODULES.glob("*/examples/*") if p.is_dir())


def all_tf_dirs() -> list[Path]:
    return [REPO] + [MODULES / m for m in module_names()] + example_dirs()


@dataclass
class TeamEnv:
    env: str
    team: str
    variables: dict[str, Any]
    regions: dict[str, dict[str, Any]]  # <region>.tfvars by Region
    global_vars: dict[str, Any] | None
    path: Path

    @property
    def allowed_regions(self) -> list[str] | None:
        return self.variables.get("allowed_regions")

    def deployable_regions(self) -> list[str]:
        return list(self.allowed_regions) if self.allowed_regions else sorted(self.regions)


@functools.lru_cache(maxsize=None)
def load_envs() -> dict[tuple[str, str], TeamEnv]:
    found: dict[tuple[str, str], TeamEnv] = {}
    for variables in sorted(ENVS.glob("*/*/variables.tfvars")):
        team_dir = variables.parent
        env, team = team_dir.parent.name, team_dir.name
        regions = {p.stem: parse_hcl(p) for p in sorted(team_dir.glob("*.tfvars"))
                   if p.name not in ("variables.tfvars", "global.tfvars")}
        global_file = team_dir / "global.tfvars"
        found[(env, team)] = TeamEnv(env, team, parse_hcl(variables), regions,
                                     parse_hcl(global_file) if global_file.exists() else None, team_dir)
    return found


def tfdeploy_setting(name: str) -> Any:
    """A value from [tool.tfdeploy] in pyproject.toml (the toolkit's settings for this repo)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    return data["tool"]["tfdeploy"][name]


def networks_overlap(cidrs: dict[str, str]) -> list[tuple[str, str]]:
    """Pairs of labels whose IPv4 networks overlap."""
    nets = {label: ipaddress.ip_network(cidr) for label, cidr in cidrs.items()}
    labels = sorted(nets)
    return [(a, b) for i, a in enumerate(labels) for b in labels[i + 1:] if nets[a].overlaps(nets[b])]


@functools.lru_cache(maxsize=None)
def _empty_cli_config() -> str:
    handle, path = tempfile.mkstemp(prefix="tfdeploy-infra-", suffix=".tfrc")
    os.close(handle)
    atexit.register(os.unlink, path)
    return path


def run_terraform(terraform_bin: str, args: list[str], cwd: Path, stdin: str | None = None
                  ) -> subprocess.CompletedProcess[str]:
    """Run Terraform with an empty CLI config, so its output holds only what the config causes."""
    env = {**os.environ, "TF_CLI_CONFIG_FILE": _empty_cli_config(), "TF_IN_AUTOMATION": "1",
           "CHECKPOINT_DISABLE": "1"}
    env.pop("TF_LOG", None)
    return subprocess.run([terraform_bin, *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=120, check=False, env=env)


def attribute_source(path: Path, name: str) -> str:
    """The HCL text `name = <expression>` of an attribute (e.g. a local) as written in `path`.

    Brackets are balanced to find the end of a multi-line expression, so the exact source can be
    evaluated by the real Terraform (see console_eval).
    """
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^([ \t]*){re.escape(name)}\s*=", text, re.M)
    assert match, f"{name} not found in {path}"
    heredoc = re.match(r"\s*<<-?(\w+)\n", text[match.end():])
    if heredoc:
        end = re.compile(rf"^\s*{heredoc.group(1)}\s*$", re.M).search(text, match.end() + heredoc.end())
        assert end, f"unterminated heredoc for {name} in {path}"
        return text[match.start():end.end()].strip()
    depth, pos = 0, match.end()
    while pos < len(text):
        char = text[pos]
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "\n" and depth == 0 and text[match.end():pos].strip():
            break
        pos += 1
    return text[match.start():pos].strip()


def console_eval(terraform_bin: str, work: Path, locals_src: list[str], expression: str,
                 variables: dict[str, Any] | None = None) -> Any:
    """Evaluate `jsonencode(expression)` with the real Terraform over the given locals.

    Each variable becomes an untyped `variable` block set with -var, so the locals are evaluated
    exactly as in the module, without providers.
    """
    work.mkdir(parents=True, exist_ok=True)
    variables = variables or {}
    blocks = [f'variable "{name}" {{\n  default = null\n}}\n' for name in variables]
    blocks.append("locals {\n" + "\n".join(locals_src) + "\n}\n")
    (work / "main.tf").write_text("\n".join(blocks), encoding="utf-8")
    args = ["console"] + [f"-var={k}={v}" for k, v in variables.items()]
    proc = run_terraform(terraform_bin, args, work, stdin=f"jsonencode({expression})\n")
    assert proc.returncode == 0, proc.stderr
    # console prints the jsonencode() result as an HCL string literal; its quoting is JSON's.
    return json.loads(json.loads(proc.stdout.strip()))
