"""A scaffolded repo reaches prod untouched (issue 23, item 4).

`tfdeploy scaffold` into an existing git repo, commit, annotated tags, then dev -> qa -> prod on
the sandbox (moto) with real Terraform and real checkov (its own venv): prod is protected, so its
apply scans the tagged commit, and its promotion needs signed ledger evidence. Nothing in the
scaffolded files is edited, no check is skipped.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy
from tests.statecheck import state_of

pytestmark = pytest.mark.slow

VERSION = "0.1"


def _cell(env: str) -> str:
    return f"{env}_us-east-1/research/{VERSION}"


def test_a_scaffolded_repo_goes_dev_qa_prod_untouched(tmp_path, sandbox_env, ledger_key, checkov_bin):
    infra = tmp_path / "infra"
    infra.mkdir()
    git(infra, "init", "-q", "-b", "main")
    (infra / "README.md").write_text("# our infra\n")
    git(infra, "add", "-A")
    git(infra, "commit", "-qm", "an existing repo")

    made = tfdeploy(infra, "scaffold", ".", "--force", "--backend-prefix", "acme-tf", "--team", "research",
                    "--env", "dev", "--env", "qa", "--env", "prod", "--region", "us-east-1")
    steps = made.stdout.split("Next steps:")[1]
    # In an existing git repo, here: no `cd .`, no second `git init`.
    assert "cd " not in steps and "git init" not in steps, steps
    assert "git add -A && git commit" in steps

    git(infra, "add", "-A")
    git(infra, "commit", "-qm", "infra repo from tfdeploy scaffold")
    checkov = {"TFDEPLOY_CHECKOV": checkov_bin}
    for env in ("dev", "qa", "prod"):
        tfdeploy(infra, "bootstrap", "--env", env)
    for env in ("dev", "qa", "prod"):
        tag(infra, _cell(env))
        applied = tfdeploy(infra, "apply", "--tag", _cell(env), "--auto-approve", env=checkov)
        assert "Traceback" not in applied.stderr
    assert "protected env prod: checkov scan of commit" in applied.stderr and "passed" in applied.stderr
    assert "succeeded in qa-us-east-1-research" in applied.stderr
    assert f"evidence signed by {ledger_key}" in applied.stderr

    # prod ran the protected scan of its commit and verified signed evidence from qa.
    regional = state_of("acme-tf-prod", "research/prod-us-east-1/terraform.tfstate")
    assert {r["module"] for r in regional["resources"]} == {"module.regional"}
    history = json.loads(tfdeploy(infra, "history", "--tag", _cell("prod"), "--json").stdout)
    (record,) = history["records"]
    assert record["result"] == "succeeded" and record["version"] == VERSION
    assert not record.get("promotion_override")

    # The pipeline's checkov stage (`scan --tag`) passes under prod's hard-fail policy too.
    scanned = tfdeploy(infra, "scan", "--tag", _cell("prod"), env=checkov)
    assert "\nscan passed: " in "\n" + scanned.stdout
