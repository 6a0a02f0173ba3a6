"""Promotion (issue 12, item 6): a commit reaches env N of `environments` only after it succeeded
in env N-1; `--skip-promotion-check --reason` overrides and is recorded; a refusal notifies;
`tfdeploy promote` tags the next env at the commit that succeeded.

The rule is unit-tested as the pure function it is; end to end, real Terraform, moto (S3 ledger,
SNS -> SQS) and real annotated tags, the CLI as a subprocess.
"""

from __future__ import annotations

import json
import os

import boto3
import pytest
from tfdeploy.errors import ValidationError
from tfdeploy.fleet.ledger import append, record_for
from tfdeploy.fleet.promotion import (
    OVERRIDE_VAR,
    PromotionRefused,
    check,
    override_reason,
    previous_env,
    previous_envs,
)
from tfdeploy.model.settings import Settings
from tfdeploy.model.tags import parse_tag

from tests.conftest import git
from tests.e2e.conftest import tag, tfdeploy
from tests.fleetstate.test_notify import _received, _topic_with_queue
from tests.statecheck import all_keys, state_keys, state_of

C1, C2 = "a" * 40, "b" * 40
SETTINGS = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"), lock="dynamodb")
QA_US, DEV_US = "qa_us-east-1/research/1.0", "dev_us-east-1/research/1.0"


def rec(tag_name: str, commit: str = C1, result: str = "succeeded", action: str = "apply", minute: int = 1):
    return record_for(parse_tag(tag_name), commit=commit, action=action, result=result, add=1, change=0,
                      destroy=0, caller="", started_at=f"2026-11-20T09:{minute:02d}:00.000Z",
                      finished_at=f"2026-11-20T09:{minute:02d}:30.000Z", plan_sha256="", tfdeploy_version="0",
                      build_id="")


# --- the rule, pure ----------------------------------------------------------------------------

def test_previous_env_follows_the_promotion_order():
    order = ("dev", "qa", "staging", "prod")
    assert [previous_env(e, order) for e in order] == [None, "dev", "qa", "staging"]
    assert previous_env("sandbox", order) is None  # not configured: check_env refuses it elsewhere
    # The working tree's order and the tagged commit's both apply: reordering in a commit lifts nothing.
    assert previous_envs("prod", [("dev", "qa", "prod"), ("dev", "prod")]) == ["qa", "dev"]
    assert previous_envs("dev", [("dev", "qa"), ("dev", "qa")]) == []


@pytest.mark.parametrize("records, same_scope, allowed", [
    ([rec("qa_us-east-1/research/1.2")], True, True),                       # same commit, same scope
    ([rec("qa_us-east-1/research/0.9")], True, True),                       # the commit counts, not the name
    ([rec("qa_us-east-1/research/1.2", commit=C2)], True, False),           # another commit
    ([rec("qa_us-east-1/research/1.2", result="failed")], True, False),     # it failed there
    ([rec("qa_us-east-1/research/1.2", action="destroy")], True, False),    # a destroy is no apply
    ([rec("qa_us-east-1/risk/1.2")], True, False),                          # another team
    ([rec("qa_eu-central-1/research/1.2")], True, False),                   # qa has the scope: must be it
    ([rec("qa_eu-central-1/research/1.2")], False, True),                   # qa lacks the scope: any
    ([rec("qa_global/research/1.2")], False, True),
    ([], False, False),
    ([rec("qa_us-east-1/research/1.2", result="failed", minute=2), rec("qa_us-east-1/research/1.2")], True, True),
])
def test_rule_needs_a_successful_apply_of_the_same_commit_for_the_team(records, same_scope, allowed):
    target = parse_tag("prod_us-east-1/research/1.2")
    if allowed:
        assert check(target, C1, "qa", records, same_scope=same_scope).commit == C1
    else:
        with pytest.raises(PromotionRefused) as refused:
            check(target, C1, "qa", records, same_scope=same_scope)
        line = str(refused.value)
        assert "\n" not in line and line.startswith(
            f"prod_us-east-1/research/1.2 (commit {C1[:12]}) has not been applied in qa for research")
        assert "--skip-promotion-check --reason TEXT" in line and "tfdeploy promote --from qa --to prod" in line


def test_refusal_says_what_runs_there_instead():
    refused = pytest.raises(PromotionRefused, check, parse_tag("prod_us-east-1/research/1.2"), C1, "qa",
                            [rec("qa_us-east-1/research/1.1", commit=C2)], same_scope=True)
    assert f"in qa-us-east-1-research (it last ran 1.1 at commit {C2[:12]})" in str(refused.value)


def test_override_needs_a_reason_and_comes_from_the_flag_or_the_variable():
    assert override_reason(True, "  hotfix\n CHG-7 ", {}) == "hotfix CHG-7"
    assert override_reason(False, None, {OVERRIDE_VAR: "pipeline override CHG-8"}) == "pipeline override CHG-8"
    assert override_reason(False, None, {}) == ""
    for skip, reason, said in ((True, None, "needs --reason"), (True, "  ", "needs --reason"),
                               (False, "why", "goes with --skip-promotion-check"),
                               (True, "x" * 501, "at most 500")):
        with pytest.raises(ValidationError, match=said):
            override_reason(skip, reason, {})


# --- end to end ----------------------------------------------------------------------------------

def _one_error(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and lines, proc.stderr
    assert lines[-1].startswith("tfdeploy: error: "), proc.stderr
    return lines[-1]


def test_qa_apply_needs_the_commit_applied_in_dev_first_and_an_override_is_recorded(repo):
    c1 = git(repo, "rev-parse", "HEAD").strip()
    tag(repo, QA_US)
    tag(repo, "qa_global/research/1.0")
    for env in ("dev", "qa"):
        tfdeploy(repo, "bootstrap", "--env", env)
    topic, queue = _topic_with_queue()
    notify = {"TFDEPLOY_NOTIFY_TOPIC_ARN": topic}

    # Refused before Terraform: one line, exit 2, no state, no ledger record, a notification.
    refused = tfdeploy(repo, "apply", "--tag", QA_US, "--auto-approve", check=False, env=notify)
    assert refused.returncode == 2
    line = _one_error(refused)
    assert line.startswith(f"tfdeploy: error: {QA_US} (commit {c1[:12]}) has not been applied in dev for "
                           f"research: no successful apply of commit {c1[:12]} in dev-us-east-1-research;")
    assert line.endswith("or pass --skip-promotion-check --reason TEXT")
    assert all_keys("demo-tfstate-qa") == [] and state_keys("demo-tfstate-dev") == []
    (envelope,) = _received(queue, 1)
    message = json.loads(envelope["Message"])
    assert envelope["Subject"] == f"tfdeploy: promotion refused: {QA_US}"
    assert (message["event"], message["tag"], message["commit"]) == ("promotion-refused", QA_US, c1)
    assert message["error"] == line.removeprefix("tfdeploy: error: ")

    # An override needs its reason.
    bare = tfdeploy(repo, "apply", "--tag", QA_US, "--auto-approve", "--skip-promotion-check", check=False)
    assert bare.returncode == 2 and "--skip-promotion-check needs --reason TEXT" in _one_error(bare)

    # Fan-out: each refused cell fails alone, with the line in the matrix and its log; nothing applied.
    fan = tfdeploy(repo, "apply", "--tag", "qa_*/research/1.0", "--auto-approve", "--json", check=False)
    assert fan.returncode == 1
    cells = {c["cell"]: c for c in json.loads(fan.stdout)["cells"]}
    assert cells["qa-global-research"]["result"] == "failed"
    assert cells["qa-us-east-1-research"]["result"] in ("failed", "skipped")  # after a failed global
    with open(cells["qa-global-research"]["log"]) as log:
        assert "has not been applied in dev for research" in log.read()
    assert all_keys("demo-tfstate-qa") == []

    # `plan` is never blocked; after dev succeeded, the saved plan applies in qa.
    tfdeploy(repo, "plan", "--tag", QA_US)
    tag(repo, DEV_US)
    tfdeploy(repo, "apply", "--tag", DEV_US, "--auto-approve")
    applied = tfdeploy(repo, "apply", "--tag", QA_US)
    assert f"promotion check: commit {c1[:12]} succeeded in dev-us-east-1-research" in applied.stderr
    assert state_of("demo-tfstate-qa", "research/qa-us-east-1/terraform.tfstate")["resources"]

    # A new commit not yet in dev: the override applies it and the ledger says why.
    (repo / "envs/qa/research/us-east-1.tfvars").write_text('greeting = "hello again"\n')
    git(repo, "commit", "-qam", "qa greeting")
    tag(repo, "qa_us-east-1/research/1.1")
    forced = tfdeploy(repo, "apply", "--tag", "qa_us-east-1/research/1.1", "--auto-approve",
                      "--skip-promotion-check", "--reason", "hotfix approved in CHG-7")
    assert "promotion check skipped for qa_us-east-1/research/1.1" in forced.stderr
    records = json.loads(tfdeploy(repo, "history", "--tag", QA_US, "--json").stdout)["records"]
    assert [(r["version"], r["result"], r["override"]) for r in records] == [
        ("1.1", "succeeded", "hotfix approved in CHG-7"), ("1.0", "succeeded", "")]


def _seed(tag_name: str, commit: str, result: str = "succeeded", minute: int = 1) -> None:
    append(rec(tag_name, commit=commit, result=result, minute=minute), SETTINGS, dict(os.environ))


def _commit_of(repo, name: str) -> str:
    return git(repo, "rev-parse", f"refs/tags/{name}^{{commit}}").strip()


def test_promote_tags_the_next_env_at_the_commit_that_succeeded(repo):
    c1 = git(repo, "rev-parse", "HEAD").strip()
    for scope in ("us-east-1", "global", "eu-central-1"):
        tag(repo, f"dev_{scope}/research/1.0")
    (repo / "README.md").write_text("later work\n")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "later work on main")
    tfdeploy(repo, "bootstrap", "--env", "dev")
    # The ledger as dev's applies left it: us-east-1 and global succeeded, eu-central-1 failed.
    _seed("dev_us-east-1/research/1.0", c1)
    _seed("dev_global/research/1.0", c1)
    _seed("dev_eu-central-1/research/1.0", c1, result="failed")
    tag(repo, "qa_global/research/1.0", ref=c1)  # made before: skipped, said

    def promote(*args: str, check: bool = True):
        return tfdeploy(repo, "promote", "--team", "research", *args, check=check)

    for args, said in ((("--from", "qa", "--to", "dev", "--version", "1.0"), "qa is not right before dev"),
                       (("--from", "dev", "--to", "qa", "--version", "2.0"), "no successful apply of 2.0 in dev"),
                       (("--from", "dev", "--to", "qa", "--version", "1.0", "--scope", "eu-central-1"),
                        "eu-central-1: no successful apply of 1.0 in dev-eu-central-1-research")):
        bad = promote(*args, check=False)
        assert bad.returncode == 2 and said in _one_error(bad), bad.stderr
    assert not git(repo, "tag", "-l", "qa_us-east-1/*").strip()

    made = promote("--from", "dev", "--to", "qa", "--version", "1.0", "--json")
    assert json.loads(made.stdout) == [
        {"tag": "qa_global/research/1.0", "scope": "global", "commit": c1, "created": False, "skipped": "exists",
         "pushed": False},
        {"tag": "qa_us-east-1/research/1.0", "scope": "us-east-1", "commit": c1, "created": True, "skipped": "",
         "pushed": False}]
    assert _commit_of(repo, "qa_us-east-1/research/1.0") == c1
    assert git(repo, "cat-file", "-t", "refs/tags/qa_us-east-1/research/1.0").strip() == "tag"  # annotated
    again = promote("--from", "dev", "--to", "qa", "--version", "1.0")
    assert "skipped qa_us-east-1/research/1.0 (exists)" in again.stdout and "created 0 tag(s)" in again.stdout

    # A scope the next env has no tfvars for is refused, naming the file; nothing tagged.
    _seed("dev_eu-central-1/research/1.0", c1, minute=2)
    missing = promote("--from", "dev", "--to", "qa", "--version", "1.0", check=False)
    assert missing.returncode == 2 and "eu-central-1 has no envs/qa/research/eu-central-1.tfvars" in _one_error(missing)
    assert not git(repo, "tag", "-l", "qa_eu-central-1/*").strip()
