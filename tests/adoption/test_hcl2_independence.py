"""No command depends on which `hcl2` module is importable (issue 10, item 5).

checkov's bc-python-hcl2 installs over python-hcl2's `hcl2` package. The same parse runs under
this interpreter (python-hcl2 8.x) and under one where bc-python-hcl2 owns `hcl2` (the checkov
venv that CI creates as `.venv-checkov`), with PYTHONPATH at the toolkit: both must give the same
values, refuse the same duplicate, and read the same deployment from the repo's own envs/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

TOOLKIT = REPO_ROOT / "toolkit"

SAMPLES = {
    "tfvars": (
        'account = "111111111111"\n'
        'allowed_regions = ["us-east-1", "eu-west-1"]\n'
        "count_of = 3\nratio = 1.5\nenabled = true\nnothing = null\n"
        'tags = { Owner = "research", "cost-center" = "42" }\n'
        'nested = [{ name = "a", ports = [80, 443] }]\n'
        '# a comment\nname = "x-${var.y}"  // trailing\nexpr = var.q\n'
    ),
    "tf": (
        'terraform {\n  required_version = ">= 1.11"\n  required_providers {\n'
        '    aws = { source = "hashicorp/aws", version = "~> 5.0" }\n  }\n  backend "s3" {}\n}\n'
        'variable "env" {\n  type = string\n}\n'
        'module "regional" {\n  source = "./modules/regional"\n  count  = var.region == "global" ? 0 : 1\n'
        '  env    = var.env\n}\n'
        'resource "aws_s3_bucket" "b" {\n  bucket = "x-${var.env}"\n}\n'
        'resource "terraform_data" "t" {\n  input = { a = 1 }\n}\n'
        'data "aws_caller_identity" "me" {}\n'
        'output "id" {\n  value = terraform_data.t.id\n}\n'
    ),
}

PROBE = r"""
import json, sys
from pathlib import Path
from tfdeploy.errors import ConfigError
from tfdeploy.model import hcl
from tfdeploy.model.envs import load_team
from tfdeploy.engine.provider import uses_aws_provider

samples, repo, roots = json.loads(sys.stdin.read())
out = {"flavor": hcl.flavor(), "values": {}, "errors": {}, "teams": {}, "aws": {}}
for name, text in samples.items():
    out["values"][name] = hcl.loads(text, name)
for name, text in {"dup": 'a = "1"\nb = 2\na = "3"\n',
                   "dup_in_block": 'resource "x" "y" {\n  k = 1\n  k = 2\n}\n',
                   "invalid": 'a = \n'}.items():
    try:
        hcl.loads(text, name + ".tfvars")
        out["errors"][name] = None
    except ConfigError as exc:
        out["errors"][name] = str(exc).split(" (")[0] if name == "invalid" else str(exc)
for env, team, scope in (("dev", "research", "us-east-1"), ("prod", "risk", "eu-central-1")):
    try:
        cfg = load_team(Path(repo), env, team, scope)
        out["teams"][f"{env}/{team}"] = [cfg.account, cfg.allowed_regions, list(cfg.var_files)]
    except ConfigError as exc:
        out["teams"][f"{env}/{team}"] = str(exc)
for root in roots:
    out["aws"][root] = uses_aws_provider(Path(root))
print(json.dumps(out, sort_keys=True))
"""


def _bc_python() -> str:
    """A Python where bc-python-hcl2 owns `hcl2`: the checkov venv (CI's `.venv-checkov`)."""
    candidates = [REPO_ROOT / ".venv-checkov" / "bin" / "python",
                  Path("/work/main/.venv-checkov/bin/python")]
    checkov = os.environ.get("TFDEPLOY_CHECKOV")
    if checkov:
        candidates.insert(0, Path(checkov).parent / "python")
    for candidate in candidates:
        if candidate.exists():
            return str(candidate)
    pytest.skip(reason="no checkov venv with bc-python-hcl2 (.ci/run creates .venv-checkov)")


def _probe(python: str, repo: Path, roots: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": str(TOOLKIT)}
    proc = subprocess.run([python, "-c", PROBE], input=json.dumps([SAMPLES, str(repo), roots]),
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    from tfdeploy.adopt.example import write_example_repo

    example = tmp_path_factory.mktemp("hcl") / "infra"
    write_example_repo(example)
    # This repo's own envs/ (dev/research, prod/risk) and .tf files, and the example repo's.
    repo = REPO_ROOT
    roots = [str(REPO_ROOT), str(REPO_ROOT / "modules"), str(example)]
    return _probe(sys.executable, repo, roots), _probe(_bc_python(), repo, roots)


def test_each_interpreter_has_the_library_it_claims(both):
    mine, bc = both
    assert mine["flavor"] == "python-hcl2"
    assert bc["flavor"] == "bc-python-hcl2"


def test_tfvars_read_the_same_with_either_hcl2(both):
    mine, bc = both
    assert mine["values"]["tfvars"] == bc["values"]["tfvars"]
    values = bc["values"]["tfvars"]
    assert values["account"] == "111111111111"
    assert values["allowed_regions"] == ["us-east-1", "eu-west-1"]
    assert values["count_of"] == 3 and values["ratio"] == 1.5 and values["enabled"] is True
    assert values["nothing"] is None
    assert values["tags"] == {"Owner": "research", "cost-center": "42"}
    assert values["name"] == "x-${var.y}" and values["expr"] == "${var.q}"


def test_tf_blocks_read_the_same_with_either_hcl2(both):
    mine, bc = both
    assert mine["values"]["tf"] == bc["values"]["tf"]
    tf = bc["values"]["tf"]
    assert tf["terraform"][0]["backend"] == [{"s3": {}}]
    assert tf["resource"][0]["aws_s3_bucket"]["b"]["bucket"] == "x-${var.env}"
    assert tf["module"][0]["regional"]["source"] == "./modules/regional"


def test_duplicates_and_invalid_hcl_are_refused_the_same_way(both):
    mine, bc = both
    assert mine["errors"] == bc["errors"]
    assert bc["errors"]["dup"] == ("dup.tfvars: line 3: attribute 'a' is already set on line 1 "
                                   "(Terraform: Attribute redefined); keep one of them")
    assert "line 3: attribute 'k' is already set on line 2" in bc["errors"]["dup_in_block"]
    assert bc["errors"]["invalid"] == "invalid.tfvars: not valid HCL"


def test_team_config_and_provider_detection_the_same_with_either_hcl2(both):
    mine, bc = both
    assert mine["teams"] == bc["teams"]
    assert bc["teams"]["dev/research"][0] == "111111111111"
    assert mine["aws"] == bc["aws"]
    assert bc["aws"][str(REPO_ROOT)] is True  # this repo's root uses the AWS provider


def test_tfvars_read_in_parallel_threads_are_each_read_right():
    """A fan-out's cells read their tfvars at once (seen in a full run of the suite: a cell failed
    with account '"111111111111"' is not a 12-digit AWS account id). python-hcl2 8.x serialises every value with
    one shared default SerializationContext that a `${...}` flips while it is serialised, so a
    string serialised meanwhile in another thread kept its quotes. Every text is new (no parse cache)."""
    from concurrent.futures import ThreadPoolExecutor

    from tfdeploy.model import hcl

    def read(i: int) -> tuple[str, str]:
        text = (f'# cell {i}\naccount = "111111111111"\n'
                + "".join(f'n{k} = "x-${{var.y{k}}}-{i}"\n' for k in range(30)) + 'region = "us-east-1"\n')
        values = hcl.loads(text, f"cell-{i}.tfvars")
        return values["account"], values["region"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(read, range(400)))
    wrong = [r for r in results if r != ("111111111111", "us-east-1")]
    assert not wrong, f"{len(wrong)} of {len(results)} reads wrong, e.g. {wrong[:3]}"
