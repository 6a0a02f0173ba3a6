"""`tfdeploy tags list` over a real git repo with real annotated and lightweight tags."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from tfdeploy.cli import cli
from tfdeploy.engine.tagindex import parse_for_each_ref

from tests.conftest import git


@pytest.fixture
def tagged_repo(tmp_path):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "README").write_text("x")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "init")
    # creatordate has 1 s resolution: set dates explicitly to get a stable newest-first order.
    tags = [("dev_us-east-1/research/1.0", "2026-01-01T10:00:00"), ("dev_global/research/1.0", "2026-01-02T10:00:00"),
            ("qa_eu-central-1/risk/2.0", "2026-01-03T10:00:00"), ("not-a-deploy-tag", "2026-01-04T10:00:00")]
    for name, date in tags:
        env = {"GIT_COMMITTER_DATE": date}
        import os
        import subprocess
        subprocess.run(["git", "tag", "-a", name, "-m", name], cwd=tmp_path, check=True,
                       env={**os.environ, **env, "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@e"})
    git(tmp_path, "tag", "dev_us-east-1/research/0.9")  # lightweight
    return tmp_path


def test_lists_parsed_tags_newest_first_with_malformed_marked(tagged_repo):
    result = CliRunner().invoke(cli, ["tags", "list", "--json", "--repo", str(tagged_repo)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    names = [d["name"] for d in data]
    assert names.index("not-a-deploy-tag") < names.index("qa_eu-central-1/risk/2.0") < \
        names.index("dev_global/research/1.0") < names.index("dev_us-east-1/research/1.0")
    bad = next(d for d in data if d["name"] == "not-a-deploy-tag")
    assert bad["valid"] is False and "'/'-separated" in bad["error"]
    light = next(d for d in data if d["name"] == "dev_us-east-1/research/0.9")
    assert light["annotated"] is False
    ann = next(d for d in data if d["name"] == "dev_global/research/1.0")
    assert ann["annotated"] is True and ann["scope"] == "global" and len(ann["commit"]) == 40
    head = tagged_repo.joinpath(".git/HEAD")  # every tag points at the one commit
    assert all(d["commit"] == data[0]["commit"] for d in data) and head.exists()


def test_filters_and_human_table(tagged_repo):
    result = CliRunner().invoke(cli, ["tags", "list", "--env", "dev", "--team", "research",
                                      "--repo", str(tagged_repo)])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[0].split()[:5] == ["TAG", "ENV", "SCOPE", "TEAM", "VERSION"]
    assert {l.split()[0] for l in lines[1:]} == {"dev_us-east-1/research/1.0", "dev_global/research/1.0",
                                                 "dev_us-east-1/research/0.9"}
    everything = CliRunner().invoke(cli, ["tags", "list", "--repo", str(tagged_repo)])
    assert "MALFORMED" in everything.output


def test_outside_a_repo_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(cli, ["tags", "list", "--repo", str(tmp_path)])
    assert result.exit_code == 2
    assert "not inside a git repository" in result.output


def test_parser_handles_empty_output():
    assert parse_for_each_ref("") == []
