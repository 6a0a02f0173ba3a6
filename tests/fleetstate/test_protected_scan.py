"""Protected envs (issue 12, item 7): an apply in an env of `protected_envs` (default prod) needs a
passing checkov scan of the commit it applies, under that env's policy, whatever the flags.

Real checkov (its own venv, TFDEPLOY_CHECKOV), real Terraform, moto, real annotated tags.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy
from tests.statecheck import state_of

PROD_KEY = "research/prod-us-east-1/terraform.tfstate"
OPEN_BUCKET = 'resource "aws_s3_bucket" "open" {\n  bucket = "research-open-data"\n}\n'
MIRROR = Path(os.environ.get("TFDEPLOY_TEST_PROVIDER_MIRROR", "/opt/tf-plugins"))
SKIP = ("--skip-promotion-check", "--reason", "first prod release, approved in CHG-1")


def _last(proc) -> str:
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr.strip().splitlines()[-1]


def _prod_state_exists() -> bool:
    import boto3

    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(Bucket="demo-tfstate-prod", Prefix=PROD_KEY)
    return any(o["Key"] == PROD_KEY for o in listed.get("Contents", []))


def _add_prod_env(repo) -> None:
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["dev", "qa"]', '["dev", "qa", "prod"]'))
    (repo / "envs/prod/research").mkdir(parents=True)
    (repo / "envs/prod/research/variables.tfvars").write_text('account = "333333333333"\n')
    (repo / "envs/prod/research/us-east-1.tfvars").write_text('greeting = "hello prod"\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "prod env")


def _commit_open_bucket(repo, present: bool) -> None:
    bucket = repo / "modules/regional/bucket.tf"
    if present:
        bucket.write_text(OPEN_BUCKET)
    else:
        bucket.unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "an open bucket" if present else "no open bucket")


def test_a_prod_apply_needs_a_passing_scan_of_its_commit_whatever_the_flags(repo, checkov_bin):
    _add_prod_env(repo)
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
    _commit_open_bucket(repo, True)
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


def test_the_scan_is_of_the_tagged_commit_not_the_working_tree(repo, checkov_bin):
    """The tag and the working tree's HEAD differ both ways: a clean tag under a HEAD with
    findings is applied, a tag with findings under a HEAD that fixed them is refused; by
    `apply --auto-approve` and by `plan` then `apply` of the saved plan alike. A scan of the wrong
    tree gets both backwards."""
    checkov = {"TFDEPLOY_CHECKOV": checkov_bin}
    _add_prod_env(repo)
    tag(repo, "prod_us-east-1/research/1.0")  # clean
    _commit_open_bucket(repo, True)
    tag(repo, "prod_us-east-1/research/1.1")  # findings
    _commit_open_bucket(repo, False)  # HEAD: fixed, and not tagged
    tfdeploy(repo, "bootstrap", "--env", "prod")

    # Tagged commit with findings, HEAD clean: refused on both paths, state never written.
    refused = tfdeploy(repo, "apply", "--tag", "prod_us-east-1/research/1.1", "--auto-approve", *SKIP,
                       check=False, env=checkov)
    assert refused.returncode == 1, refused.stderr
    assert _last(refused).startswith("tfdeploy: error: env prod is protected (protected_envs): the checkov "
                                     "scan of prod_us-east-1/research/1.1 (commit "), refused.stderr
    assert not _prod_state_exists()

    # HEAD with findings, tagged commit clean: the scan passes and the apply goes on (both paths).
    _commit_open_bucket(repo, True)
    head = git(repo, "rev-parse", "HEAD").strip()
    tagged = git(repo, "rev-parse", "prod_us-east-1/research/1.0^{commit}").strip()
    assert head != tagged
    auto = tfdeploy(repo, "apply", "--tag", "prod_us-east-1/research/1.0", "--auto-approve", *SKIP, env=checkov)
    assert f"protected env prod: checkov scan of commit {tagged[:12]} passed" in auto.stderr
    first = state_of("demo-tfstate-prod", PROD_KEY)
    assert first["resources"]

    tfdeploy(repo, "plan", "--tag", "prod_us-east-1/research/1.0", env=checkov)
    saved = tfdeploy(repo, "apply", "--tag", "prod_us-east-1/research/1.0", *SKIP, env=checkov)
    assert f"protected env prod: checkov scan of commit {tagged[:12]} passed" in saved.stderr
    assert "already used" not in saved.stderr


@pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no hashicorp/aws mirror at {MIRROR} (the registry is "
                                                 "unreachable here); set TFDEPLOY_TEST_PROVIDER_MIRROR")
def test_a_saved_plan_of_a_commit_with_findings_is_refused_at_apply_under_a_clean_head(repo, checkov_bin,
                                                                                         monkeypatch):
    """plan-then-apply with findings in the tag only: `plan` may run (it changes nothing), the
    apply of its saved plan scans the planned commit and refuses; HEAD (clean) is not what counts.
    The plan needs hashicorp/aws for the bucket: from the machine's filesystem mirror."""
    monkeypatch.setenv("TFDEPLOY_PROVIDER_MIRROR", str(MIRROR))
    checkov = {"TFDEPLOY_CHECKOV": checkov_bin}
    _add_prod_env(repo)
    _commit_open_bucket(repo, True)
    tag(repo, "prod_us-east-1/research/1.1")
    _commit_open_bucket(repo, False)
    tfdeploy(repo, "bootstrap", "--env", "prod")
    tfdeploy(repo, "plan", "--tag", "prod_us-east-1/research/1.1", env=checkov)
    refused = tfdeploy(repo, "apply", "--tag", "prod_us-east-1/research/1.1", *SKIP, check=False, env=checkov)
    assert refused.returncode == 1, refused.stderr
    line = _last(refused)
    assert line.startswith("tfdeploy: error: env prod is protected (protected_envs): the checkov scan of "
                           "prod_us-east-1/research/1.1 (commit ") and "CKV_AWS_" in line, line
    assert not _prod_state_exists()


@pytest.mark.skipif(not MIRROR.is_dir(), reason=f"no hashicorp/aws mirror at {MIRROR} (the registry is "
                                                 "unreachable here); set TFDEPLOY_TEST_PROVIDER_MIRROR")
def test_run_auto_approve_cannot_soften_the_protected_scan_from_the_working_tree(repo, checkov_bin, monkeypatch):
    """`tfdeploy run --auto-approve`: its scan stage reads the working tree's policy, where a later
    commit made prod soft-fail. That scan passes (soft), but the protected gate is the stricter of
    the tagged commit's and the working tree's policy: the findings still refuse the apply."""
    monkeypatch.setenv("TFDEPLOY_PROVIDER_MIRROR", str(MIRROR))  # the plan stage plans the bucket
    pyproject = repo / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('["dev", "qa"]', '["prod"]'))  # prod first: no promotion
    (repo / "envs/prod/research").mkdir(parents=True)
    (repo / "envs/prod/research/variables.tfvars").write_text('account = "333333333333"\n')
    (repo / "envs/prod/research/us-east-1.tfvars").write_text('greeting = "hello prod"\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "prod env")
    _commit_open_bucket(repo, True)
    tag(repo, "prod_us-east-1/research/1.1")
    pyproject.write_text(pyproject.read_text() + 'scan_soft_fail_envs = ["prod"]\n')  # HEAD only
    git(repo, "commit", "-qam", "prod soft-fails (not in the tag)")
    tfdeploy(repo, "bootstrap", "--env", "prod")

    run = tfdeploy(repo, "run", "--tag", "prod_us-east-1/research/1.1", "--auto-approve", "--allow-missing",
                   "tflint", check=False, env={"TFDEPLOY_CHECKOV": checkov_bin})
    out = run.stdout + run.stderr
    assert run.returncode == 1, out[-3000:]
    assert "env prod is protected (protected_envs): the checkov scan of prod_us-east-1/research/1.1" in out
    assert "Traceback" not in out
    assert not _prod_state_exists()
