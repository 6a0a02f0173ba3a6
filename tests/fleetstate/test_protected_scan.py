"""Protected envs (issue 12, item 7): an apply in an env of `protected_envs` (default prod) needs a
passing checkov scan of the commit it applies, under that env's policy, whatever the flags.

Real checkov (its own venv, TFDEPLOY_CHECKOV), real Terraform, moto, real annotated tags.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy
from tests.statecheck import state_of

PROD_KEY = "research/prod-us-east-1/terraform.tfstate"
OPEN_BUCKET = 'resource "aws_s3_bucket" "open" {\n  bucket = "research-open-data"\n}\n'
SKIP = ("--skip-promotion-check", "--reason", "first prod release, approved in CHG-1")


def _last(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def test_a_prod_apply_needs_a_passing_scan_of_its_commit_whatever_the_flags(repo, checkov_bin):
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["dev", "qa"]', '["dev", "qa", "prod"]'))
    (repo / "envs/prod/research").mkdir(parents=True)
    (repo / "envs/prod/research/variables.tfvars").write_text('account = "333333333333"\n')
    (repo / "envs/prod/research/us-east-1.tfvars").write_text('greeting = "hello prod"\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "prod env")
    tag(repo, "prod_us-east-1/research/1.0")
    tfdeploy(repo, "bootstrap", "--env", "prod")
    checkov = {"TFDEPLOY_CHECKOV": checkov_bin}

    # Clean code: the scan passes and the apply goes on (promotion skipped on purpose, said).
    ok = tfdeploy(repo, "apply", "--tag", "prod_us-east-1/research/1.0", "--auto-approve", *SKIP, env=checkov)
    assert "protected env prod: checkov scan of commit" in ok.stderr and "passed" in ok.stderr
    applied = state_of("demo-tfstate-prod", PROD_KEY)
    assert applied["resources"]

    # A commit with hard-fail findings: refused before Terraform, even with --auto-approve and the
    # promotion override; state untouched, nothing recorded.
    (repo / "modules/regional/bucket.tf").write_text(OPEN_BUCKET)
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "an open bucket")
    tag(repo, "prod_us-east-1/research/1.1")
    refused = tfdeploy(repo, "apply", "--tag", "prod_us-east-1/research/1.1", "--auto-approve", *SKIP,
                       check=False, env=checkov)
    assert refused.returncode == 1
    line = _last(refused)
    assert line.startswith("tfdeploy: error: env prod is protected (protected_envs): the checkov scan of "
                           "prod_us-east-1/research/1.1 (commit ") and "CKV_AWS_" in line
    assert line.endswith("nothing applied; fix them and tag a new version "
                         "(tfdeploy scan --tag prod_us-east-1/research/1.1 lists them)")
    assert state_of("demo-tfstate-prod", PROD_KEY) == applied
    history = json.loads(tfdeploy(repo, "history", "--tag", "prod_us-east-1/research/1.0", "--json").stdout)
    assert [r["version"] for r in history["records"]] == ["1.0"]

    # The fan-out path refuses the cell alone, the line in its log.
    fan = tfdeploy(repo, "apply", "--tag", "prod_us-east-1/research/1.1", "--auto-approve", "--retry", "1",
                   *SKIP, "--json", check=False, env=checkov)
    (cell,) = json.loads(fan.stdout)["cells"]
    assert fan.returncode == 1 and cell["result"] == "failed"
    with open(cell["log"]) as log:
        assert "env prod is protected (protected_envs): the checkov scan" in log.read()

    # No checkov: a refusal in a protected env, never a skip.
    missing = tfdeploy(repo, "apply", "--tag", "prod_us-east-1/research/1.1", "--auto-approve", *SKIP,
                       check=False, env={"TFDEPLOY_CHECKOV": ""})
    assert missing.returncode == 3
    assert _last(missing).endswith("checkov is not installed; install it with tfdeploy tools install checkov "
                                   "or set TFDEPLOY_CHECKOV; nothing applied")
    assert state_of("demo-tfstate-prod", PROD_KEY) == applied


@pytest.mark.parametrize("protected, soft, env, expect", [
    (("prod",), ("dev",), "prod", True),
    (("prod",), ("dev",), "dev", False),
])
def test_protection_and_policy_come_from_both_settings(protected, soft, env, expect):
    from tfdeploy.gates.protected import is_protected, soft_fail_envs
    from tfdeploy.model.settings import Settings

    here = Settings(protected_envs=protected, scan_soft_fail_envs=soft)
    tagged = Settings(protected_envs=(), scan_soft_fail_envs=(*soft, "prod"))  # a commit tries to lift it
    assert is_protected(env, [here, tagged]) is expect
    assert soft_fail_envs([here, tagged]) == frozenset(soft)


def test_the_apply_buildspec_installs_checkov_only_where_the_apply_scans(tmp_path):
    from tfdeploy.delivery.buildspec import buildspec_data
    from tfdeploy.delivery.ci import stage_needs_checkov

    (tmp_path / "pyproject.toml").write_text('[tool.tfdeploy]\nenvironments = ["dev", "prod"]\n')
    src = {"CODEBUILD_SRC_DIR": str(tmp_path)}
    assert stage_needs_checkov("apply", {**src, "ENV": "prod"}) is True
    assert stage_needs_checkov("apply", {**src, "ENV": "dev"}) is False
    assert stage_needs_checkov("checkov", src) is True and stage_needs_checkov("plan", {**src, "ENV": "prod"}) is False
    install = buildspec_data("apply")["phases"]["install"]["commands"]
    assert install[-1].startswith("if tfdeploy ci apply --needs-checkov; then ") and "TFDEPLOY_CHECKOV=" in install[-1]
