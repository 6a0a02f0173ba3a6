"""`tfdeploy scaffold` (issue 10, item 4): a ready infra repo, checked by the real commands."""

from __future__ import annotations

import pytest

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy
from tests.statecheck import state_keys, state_of


def _scaffold(tmp_path, *args: str, check: bool = True):
    return tfdeploy(tmp_path, "scaffold", *args, check=check)


def test_scaffolded_repo_lints_resolves_and_deploys_both_namespaces(tmp_path, sandbox_env):
    infra = tmp_path / "infra"
    _scaffold(tmp_path, str(infra), "--backend-prefix", "acme-tf", "--team", "research",
              "--env", "dev", "--env", "prod", "--region", "us-east-1", "--region", "eu-west-1")
    git(infra, "init", "-q", "-b", "main")
    git(infra, "add", "-A")
    git(infra, "commit", "-qm", "scaffold")
    tag(infra, "dev_eu-west-1/research/0.1")
    tag(infra, "dev_global/research/0.1")

    tfdeploy(infra, "lint", "--dir", ".", "--allow-missing", "tflint")
    linted = tfdeploy(infra, "lint", "--tag", "dev_eu-west-1/research/0.1", "--allow-missing", "tflint", "--exports")
    assert "VALIDATE_STATUS=passed" in linted.stdout and "FMT_UNFORMATTED=0" in linted.stdout
    resolved = tfdeploy(infra, "resolve", "--tag", "dev_eu-west-1/research/0.1")
    assert "s3://acme-tf-dev/research/dev-eu-west-1/terraform.tfstate" in resolved.stdout
    assert "envs/dev/research/eu-west-1.tfvars" in resolved.stdout
    tfdeploy(infra, "buildspec", "generate", "--check")

    tfdeploy(infra, "bootstrap", "--env", "dev")
    tfdeploy(infra, "apply", "--tag", "dev_eu-west-1/research/0.1", "--auto-approve")
    tfdeploy(infra, "apply", "--tag", "dev_global/research/0.1", "--auto-approve")
    assert state_keys("acme-tf-dev") == ["research/dev-eu-west-1/terraform.tfstate",
                                         "research/dev-global/terraform.tfstate"]
    regional = state_of("acme-tf-dev", "research/dev-eu-west-1/terraform.tfstate")
    assert {r["module"] for r in regional["resources"]} == {"module.regional"}

    # A new tag of the same code changes nothing: the version lives only in outputs.
    tag(infra, "dev_eu-west-1/research/0.2")
    planned = tfdeploy(infra, "plan", "--tag", "dev_eu-west-1/research/0.2")
    assert "+0 ~0 -0" in planned.stdout


def test_non_empty_dir_is_refused_and_nothing_is_written(tmp_path):
    target = tmp_path / "existing"
    target.mkdir()
    (target / "main.tf").write_text("# mine\n")
    proc = _scaffold(tmp_path, str(target), "--backend-prefix", "acme-tf", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("tfdeploy: error: ")
    assert len(proc.stderr.strip().splitlines()) == 1 and "--force" in proc.stderr
    # --force into it still never overwrites: main.tf exists
    proc = _scaffold(tmp_path, str(target), "--backend-prefix", "acme-tf", "--force", check=False)
    assert proc.returncode == 2 and "never overwrites" in proc.stderr
    assert sorted(p.name for p in target.iterdir()) == ["main.tf"]
    assert (target / "main.tf").read_text() == "# mine\n"


@pytest.mark.parametrize("args, expected", [
    (["--backend-prefix", "Acme"], "backend_prefix"),
    (["--backend-prefix", "acme", "--env", "dev_x"], "--env"),
    (["--backend-prefix", "acme", "--team", "Research"], "--team"),
    (["--backend-prefix", "acme", "--region", "us-east-9"], "--region"),
    (["--backend-prefix", "acme", "--region", "global"], "--region"),
])
def test_bad_names_are_one_line_and_write_nothing(tmp_path, args, expected):
    proc = _scaffold(tmp_path, str(tmp_path / "new"), *args, check=False)
    assert proc.returncode == 2 and expected in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "new").exists()
