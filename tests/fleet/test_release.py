"""`tfdeploy release`: the annotated tags of a release at one commit, all or none (real git)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tfdeploy.errors import ValidationError
from tfdeploy.fleet.release import ReleaseRequest, deploy_hint, parse_regions, plan_release
from tfdeploy.model.envs import TeamConfig
from tfdeploy.model.settings import Settings

from tests.conftest import git
from tests.e2e.conftest import make_repo, tag, tfdeploy

IDENTITY = {"GIT_COMMITTER_NAME": "Rel Ease", "GIT_COMMITTER_EMAIL": "release@example.com",
            "GIT_AUTHOR_NAME": "Rel Ease", "GIT_AUTHOR_EMAIL": "release@example.com"}
RESEARCH = ["dev_global/research/1.1", "dev_eu-central-1/research/1.1", "dev_us-east-1/research/1.1"]


def tags_of(repo: Path) -> list[str]:
    return sorted(git(repo, "tag", "-l").split())


def release(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return tfdeploy(repo, "release", *args, check=check, env=IDENTITY)


def refused(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfdeploy: error: "), proc.stderr
    return lines[0]


@pytest.fixture
def infra(tmp_path) -> Path:
    """The example repo with a second Region's tfvars for research in dev."""
    repo = make_repo(tmp_path / "infra")
    (repo / "envs/dev/research/eu-central-1.tfvars").write_text('greeting = "hallo"\n')
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "eu-central-1 for research")
    return repo


# --- pure planning ----------------------------------------------------------------------------

TEAM = TeamConfig(account="111111111111", allowed_regions=("us-east-1", "eu-central-1"),
                  var_files=("envs/dev/research/variables.tfvars",))


def test_regions_option_parses_all_a_list_and_refuses_global():
    assert parse_regions("all") is None
    assert parse_regions("us-east-1, eu-central-1,us-east-1") == ("us-east-1", "eu-central-1")
    assert parse_regions(None) == ()
    with pytest.raises(ValidationError, match="--global"):
        parse_regions("global,us-east-1")
    with pytest.raises(ValidationError, match="stands alone"):
        parse_regions("all,us-east-1")


def test_plan_orders_global_first_and_names_every_problem_at_once():
    all_ = ReleaseRequest("dev", "research", "1.1", None, True)
    tags = plan_release(all_, Settings(), TEAM, ["us-east-1", "eu-central-1"], [])
    assert [t.name for t in tags] == RESEARCH
    bad = ReleaseRequest("dev", "research", "1.1", ("us-west-2", "ap-south-1", "us-east-1"), False)
    with pytest.raises(ValidationError) as info:
        plan_release(bad, Settings(), TEAM, ["us-east-1", "ap-south-1"], ["dev_us-east-1/research/1.1"])
    text = str(info.value)
    assert "us-west-2 has no envs/dev/research/us-west-2.tfvars" in text
    assert "ap-south-1 is outside allowed_regions" in text
    assert "dev_us-east-1/research/1.1 already exists" in text and "nothing tagged" in text


def test_deploy_hint_is_the_glob_unless_it_selects_other_tags():
    request = ReleaseRequest("dev", "research", "1.1", ("us-east-1",), False)
    tags = plan_release(request, Settings(), TEAM, ["us-east-1", "eu-central-1"], [])
    assert deploy_hint(request, tags, []) == "tfdeploy apply --tag 'dev_*/research/1.1' --auto-approve"
    assert deploy_hint(request, tags, ["dev_eu-central-1/research/1.1"]) == (
        "tfdeploy apply --tag dev_us-east-1/research/1.1 --auto-approve")


# --- the command, real git --------------------------------------------------------------------

def test_release_creates_annotated_tags_at_the_tip_of_main(infra):
    main = git(infra, "rev-parse", "main").strip()
    git(infra, "checkout", "-qb", "elsewhere")  # the default is main's tip, not HEAD
    (infra / "wip.tf").write_text("# not merged\n")
    git(infra, "add", ".")
    git(infra, "commit", "-qm", "wip")

    dry = release(infra, "--env", "dev", "--team", "research", "--version", "1.1", "--scope", "all",
                  "--global", "--dry-run")
    assert "would create 3 tag(s)" in dry.stdout and tags_of(infra) == []

    proc = release(infra, "--env", "dev", "--team", "research", "--version", "1.1", "--scope", "all",
                   "--global")
    assert [line.strip() for line in proc.stdout.splitlines()[1:4]] == RESEARCH
    assert "deploy: tfdeploy apply --tag 'dev_*/research/1.1' --auto-approve" in proc.stdout
    assert tags_of(infra) == sorted(RESEARCH)
    for name in RESEARCH:
        assert git(infra, "cat-file", "-t", name).strip() == "tag"
        assert git(infra, "rev-parse", f"{name}^{{commit}}").strip() == main
        body = git(infra, "cat-file", "tag", name)
        assert "tagger Rel Ease <release@example.com>" in body
        assert "release dev/research/1.1 (global, eu-central-1, us-east-1)" in body

    # A release is made once; every tag of a second attempt is refused, none is made.
    again = release(infra, "--env", "dev", "--team", "research", "--version", "1.1",
                    "--scope", "us-east-1", "--json", check=False)
    assert "dev_us-east-1/research/1.1 already exists" in refused(again)


def test_release_refuses_before_creating_any_tag(infra):
    base = ["--env", "dev", "--team", "research"]
    # The commit's envs/, not the working tree's: an uncommitted us-west-2.tfvars does not count.
    (infra / "envs/dev/research/us-west-2.tfvars").write_text('greeting = "howdy"\n')
    cases = {
        ("--version", "1.2", "--scope", "us-west-2,us-east-1"): "us-west-2 has no envs/dev/research/us-west-2.tfvars",
        ("--version", "v1.2", "--scope", "all"): "drop the leading 'v'",
        ("--version", "1.2", "--scope", "us-north-1"): "not a known AWS Region",
    }
    for args, expected in cases.items():
        assert expected in refused(release(infra, *base, *args, check=False)), args
    git(infra, "add", ".")
    git(infra, "commit", "-qm", "us-west-2 tfvars, not allowed")
    assert "us-west-2 is outside allowed_regions in envs/dev/research/variables.tfvars" in refused(
        release(infra, *base, "--version", "1.2", "--scope", "all", check=False))
    assert "env 'staging' is not one of the configured environments" in refused(
        release(infra, "--env", "staging", "--team", "research", "--version", "1.2", "--global", check=False))
    assert "team 'nobody' is not set up" in refused(
        release(infra, "--env", "dev", "--team", "nobody", "--version", "1.2", "--global", check=False))
    git(infra, "checkout", "-qb", "feature")
    git(infra, "commit", "-q", "--allow-empty", "-m", "unmerged")
    feature = git(infra, "rev-parse", "HEAD").strip()
    assert "is not on main" in refused(
        release(infra, *base, "--version", "1.2", "--global", "--ref", feature, check=False))
    assert "names no commit" in refused(
        release(infra, *base, "--version", "1.2", "--global", "--ref", "nope", check=False))
    assert tags_of(infra) == []

    # An older commit of main is fine, and its envs/ decide: eu-central-1 had no tfvars yet.
    first = git(infra, "rev-list", "--max-parents=0", "main").strip()
    proc = release(infra, *base, "--version", "1.0", "--scope", "all", "--ref", first, "--json")
    listed = json.loads(proc.stdout)
    assert [t["tag"] for t in listed] == ["dev_us-east-1/research/1.0"]
    assert listed[0]["commit"] == first and listed[0]["cell"] == "dev-us-east-1-research"


def test_a_tag_that_cannot_be_created_undoes_the_ones_before_it(infra):
    # A concurrent git holding the ref lock of the second tag: creating it fails.
    lock = infra / ".git/refs/tags/dev_eu-central-1/research/1.1.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    line = refused(release(infra, "--env", "dev", "--team", "research", "--version", "1.1",
                           "--scope", "all", "--global", check=False))
    assert "creating tag dev_eu-central-1/research/1.1 failed" in line
    assert "deleted the 1 tag(s) this run had created (dev_global/research/1.1; never pushed)" in line
    assert tags_of(infra) == []
    lock.unlink()
    release(infra, "--env", "dev", "--team", "research", "--version", "1.1", "--scope", "all", "--global")
    assert tags_of(infra) == sorted(RESEARCH)


def test_push_sends_exactly_the_release_tags(infra, tmp_path):
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(infra, "remote", "add", "origin", str(remote))
    git(infra, "push", "-q", "origin", "main")
    tag(infra, "dev_us-east-1/risk/0.9")  # another local tag: never pushed by a release
    proc = release(infra, "--env", "dev", "--team", "research", "--version", "1.1", "--scope", "all",
                   "--global", "--push")
    assert "pushed to origin (atomic)" in proc.stdout
    on_remote = sorted(line.split("refs/tags/")[1] for line in git(remote, "show-ref", "--tags").splitlines())
    assert on_remote == sorted(RESEARCH)
    assert all(git(remote, "cat-file", "-t", name).strip() == "tag" for name in RESEARCH)

    # A tag already on the remote (pushed by someone else) refuses the release before any tag.
    git(remote, "tag", "-a", "dev_us-east-1/research/1.2", "main", "-m", "someone else's")
    line = refused(release(infra, "--env", "dev", "--team", "research", "--version", "1.2",
                           "--scope", "all", "--push", check=False))
    assert "remote origin already has dev_us-east-1/research/1.2" in line
    assert "dev_eu-central-1/research/1.2" not in tags_of(infra)

    # A remote without atomic pushes still gets them, one by one, and says so.
    git(remote, "config", "receive.advertiseAtomic", "false")
    proc = release(infra, "--env", "dev", "--team", "research", "--version", "1.3", "--scope", "all",
                   "--push")
    assert "pushed to origin (one by one" in proc.stdout
    assert "dev_eu-central-1/research/1.3" in git(remote, "tag", "-l")
