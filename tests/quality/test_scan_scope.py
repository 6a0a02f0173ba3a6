"""A tag's scan covers what its cell deploys (issue 23, item 4; gates/scope.py).

The root module's own files and the target namespace's module graph are scanned; the other
namespace and folders no root loads (a `pipeline/` root, examples) are not. Unit tests of the
scope, then real checkov on a tree, then the real paths (the protected apply of a prod cell, one
tag and fan-out, and `scan --tag`) on the example repo with moto and annotated tags.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import git
from tests.e2e.conftest import make_repo, sandbox_env, tag, tfdeploy  # noqa: F401

OPEN_BUCKET = 'resource "aws_s3_bucket" "{name}" {{\n  bucket = "{name}-open-data"\n}}\n'
SKIP = ("--skip-promotion-check", "--reason", "first prod release, approved in CHG-1")
MIRROR = Path(os.environ.get("TFDEPLOY_TEST_PROVIDER_MIRROR", "/opt/tf-plugins"))


def _tree(root: Path) -> Path:
    """root -> module.regional (-> ../shared) and module.global; pipeline/ and examples/ are
    other roots. Open buckets in modules/global, pipeline/ and examples/ only."""
    files = {
        "main.tf": 'module "regional" {\n  source = "./modules/regional"\n}\n\n'
                   'module "global" {\n  source = "./modules/global"\n}\n',
        "terraform.tfvars": "",
        "modules/regional/main.tf": 'module "shared" {\n  source = "../shared"\n}\n\n'
                                    'resource "terraform_data" "cell" {}\n',
        "modules/shared/main.tf": 'resource "terraform_data" "shared" {}\n',
        "modules/global/main.tf": OPEN_BUCKET.format(name="global"),
        "pipeline/main.tf": OPEN_BUCKET.format(name="pipeline"),
        "examples/open/main.tf": OPEN_BUCKET.format(name="example"),
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_the_scope_is_the_root_and_the_target_module_graph(tmp_path):
    from tfdeploy.gates.scope import scan_scope

    tree = _tree(tmp_path)
    regional = scan_scope(tree, "module.regional")
    assert regional.dirs == (".", "modules/regional", "modules/shared")
    assert set(regional.files) == {"main.tf", "terraform.tfvars", "modules/regional/main.tf",
                                   "modules/shared/main.tf"}
    assert regional.left_out == ("examples/open", "modules/global", "pipeline")
    assert regional.note() == ("scanned what module.regional deploys: the root module and modules/regional, "
                               "modules/shared; left out (not loaded by module.regional): examples/open, "
                               "modules/global, pipeline")
    glob = scan_scope(tree, "module.global")
    assert glob.dirs == (".", "modules/global")
    assert "modules/regional" in glob.left_out and "modules/shared" in glob.left_out


def test_a_call_leaving_the_tree_or_a_remote_source_is_not_followed(tmp_path):
    from tfdeploy.gates.scope import scan_scope

    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/main.tf").write_text('resource "terraform_data" "x" {}\n')
    (tmp_path / "root/main.tf").write_text(
        'module "regional" {\n  source = "../outside"\n}\n\n'
        'module "global" {\n  source  = "terraform-aws-modules/s3-bucket/aws"\n  version = "4.0.0"\n}\n')
    assert scan_scope(tmp_path / "root", "module.regional").dirs == (".",)
    assert scan_scope(tmp_path / "root", "module.global").dirs == (".",)


def test_checkov_sees_only_the_scope(tmp_path, checkov_bin):
    from tfdeploy.gates.scan import run_scan
    from tfdeploy.results import FAILED, PASSED

    tree = _tree(tmp_path / "tree")
    environ = {**os.environ, "TFDEPLOY_CHECKOV": checkov_bin}
    regional = run_scan(tree, target="module.regional", env="prod", environ=environ,
                        results_dir=tmp_path / "r1")
    assert regional.status == PASSED, regional.findings
    assert regional.notes[0].startswith("scanned what module.regional deploys")
    glob = run_scan(tree, target="module.global", env="prod", environ=environ, results_dir=tmp_path / "r2")
    assert glob.status == FAILED
    assert {f.file for f in glob.findings} == {"modules/global/main.tf"}
    whole = run_scan(tree, env="prod", environ=environ, results_dir=tmp_path / "r3")  # `scan --dir`: all
    assert {f.file for f in whole.findings} == {"modules/global/main.tf", "pipeline/main.tf",
                                                "examples/open/main.tf"}


def _add_prod_env(repo: Path) -> None:
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["dev", "qa"]', '["dev", "qa", "prod"]'))
    (repo / "envs/prod/research").mkdir(parents=True)
    (repo / "envs/prod/research/variables.tfvars").write_text('account = "333333333333"\n')
    (repo / "envs/prod/research/us-east-1.tfvars").write_text('greeting = "hello prod"\n')


@pytest.fixture
def infra(tmp_path, sandbox_env):
    return make_repo(tmp_path / "infra", lock="dynamodb")


@pytest.mark.slow
@pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no hashicorp/aws mirror at {MIRROR} (the registry is "
                                                 "unreachable here); set TFDEPLOY_TEST_PROVIDER_MIRROR")
def test_findings_outside_the_cell_do_not_block_its_prod_apply(infra, checkov_bin, monkeypatch):
    """A prod regional cell is applied although another root (pipeline/) and the global namespace
    have findings; the global cell of the same commit is refused for its own; one tag and the
    fan-out alike, and `scan --tag` (the pipeline's checkov stage) says the same. The global
    bucket makes every cell's init load hashicorp/aws: from the machine's filesystem mirror."""
    monkeypatch.setenv("TFDEPLOY_PROVIDER_MIRROR", str(MIRROR))
    _add_prod_env(infra)
    (infra / "pipeline").mkdir()
    (infra / "pipeline/main.tf").write_text(OPEN_BUCKET.format(name="pipeline"))
    (infra / "modules/global/open.tf").write_text(OPEN_BUCKET.format(name="global"))
    git(infra, "add", "-A")
    git(infra, "commit", "-qm", "prod, a pipeline root and an open bucket in the global namespace")
    tag(infra, "prod_us-east-1/research/1.0")
    tag(infra, "prod_global/research/1.0")
    tfdeploy(infra, "bootstrap", "--env", "prod")
    checkov = {"TFDEPLOY_CHECKOV": checkov_bin}

    scanned = tfdeploy(infra, "scan", "--tag", "prod_us-east-1/research/1.0", env=checkov)
    assert "\nscan passed: " in "\n" + scanned.stdout
    refused_scan = tfdeploy(infra, "scan", "--tag", "prod_global/research/1.0", check=False, env=checkov)
    assert refused_scan.returncode == 1 and "modules/global/open.tf" in refused_scan.stdout

    applied = tfdeploy(infra, "apply", "--tag", "prod_us-east-1/research/1.0", "--auto-approve", *SKIP, env=checkov)
    assert "protected env prod: checkov scan of commit" in applied.stderr
    refused = tfdeploy(infra, "apply", "--tag", "prod_global/research/1.0", "--auto-approve", *SKIP,
                       check=False, env=checkov)
    assert refused.returncode == 1
    assert "env prod is protected (protected_envs): the checkov scan of prod_global/research/1.0" in refused.stderr

    # The fan-out: the same gate, by the same code, per cell.
    tag(infra, "prod_us-east-1/research/1.1")
    fan = tfdeploy(infra, "apply", "--tag", "prod_us-*/research/1.1", "--auto-approve", *SKIP, "--json",
                   env=checkov)
    assert [(c["tag"], c["result"]) for c in json.loads(fan.stdout)["cells"]] == [
        ("prod_us-east-1/research/1.1", "applied")]
