"""Getting started's walk-through (docs/getting-started.md, "A first multi-Region release"), run
as written: its commands are read from the page, in order, and run in the demo's example repo
against the tests' moto (the fixture stands in for `tfdeploy demo`, `sandbox up` and the eval);
what they print is checked against what the page shows."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import TFDEPLOY, tag

PAGE = Path(__file__).resolve().parents[2] / "docs" / "getting-started.md"
# Set up by the fixtures here, as the page's first step does on a laptop.
FIXTURE_DOES = ("tfdeploy demo", "cd ", "tfdeploy sandbox up", "eval ", "tfdeploy sandbox down")


def walkthrough() -> list[tuple[str, list[str]]]:
    """(command, the lines the page shows it printing), for each command of the walk-through."""
    text = PAGE.read_text(encoding="utf-8")
    section = text[text.index("## A first multi-Region release"):]
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```(?:bash|console)\n(.*?)```", section, re.DOTALL):
        lines = block.splitlines()
        console = any(line.startswith("$ ") for line in lines)
        for line in lines:
            if console and line.startswith("$ "):
                steps.append((line[2:], []))
            elif console:
                steps[-1][1].append(line)
            elif line.strip():
                steps.append((line.split("  #")[0].strip(), []))
    return [(command, shown) for command, shown in steps if not command.startswith(FIXTURE_DOES)]


def shown_as_pattern(line: str) -> str:
    """A line the page shows, as a pattern for what a run prints: `…` elides anything; commits,
    times, durations, run ids, the caller, paths and column padding differ from run to run."""
    varying = [
        (r"…", r".*?"),
        (r"\b[0-9a-f]{12}\b", r"[0-9a-f]{12}"),
        (r"\d{4}-\d\d-\d\d \d\d:\d\dZ", r"\d{4}-\d\d-\d\d\s+\d\d:\d\dZ"),
        (r"\(\d+\.\d+s\)", r"\(\d+\.\ds\)"),
        (r"\d{8}T\d{6}\.\d+Z-\d+", r"\d{8}T\d{6}\.\d+Z-\d+"),
        (r"user/moto", r"\S+"),
        (r"/tmp/demo/infra/", r"\S*/infra/"),
    ]
    found = re.compile("|".join(f"({shown})" for shown, _ in varying))
    parts, at = [], 0
    for match in found.finditer(line):
        parts += [re.escape(line[at:match.start()]), varying[match.lastindex - 1][1]]
        at = match.end()
    parts.append(re.escape(line[at:]))
    return re.sub(r"(?:\\ )+", r"\\s+", "".join(parts).strip())


@pytest.fixture
def demo_repo(tmp_path, sandbox_env):
    """The repo `tfdeploy demo` leaves (its own code makes it, with the tags release and promote
    made), and what `tfdeploy sandbox up` adds to a fresh sandbox: the ledger's signing key."""
    from tfdeploy.adopt.demo import DEMO_REGIONS, TEAM, VERSION, create_repo
    from tfdeploy.aws.signingkey import ensure_signing_key

    repo = tmp_path / "infra"
    repo.mkdir()
    create_repo(repo, "dynamodb")
    for env in ("dev", "qa"):
        for scope in ("global", *DEMO_REGIONS):
            tag(repo, f"{env}_{scope}/{TEAM}/{VERSION}")
    ensure_signing_key(os.environ["TFDEPLOY_SANDBOX_ENDPOINT"], os.environ)
    return repo


def test_the_walkthrough_is_what_the_page_says(demo_repo, tmp_path):
    repo = demo_repo
    steps = walkthrough()
    commands = [command for command, _ in steps]
    assert "tfdeploy apply --tag 'dev_*/research/1.1' --auto-approve" in commands
    assert "tfdeploy status" in commands and any(c.startswith("tfdeploy release") for c in commands)
    env = {**os.environ, "PATH": f"{Path(TFDEPLOY).parent}{os.pathsep}{os.environ['PATH']}",
           "GIT_AUTHOR_NAME": "Docs", "GIT_AUTHOR_EMAIL": "docs@example.com",
           "GIT_COMMITTER_NAME": "Docs", "GIT_COMMITTER_EMAIL": "docs@example.com"}
    # The fixture's repo carries the demo's 1.0 tags; the page starts from a fresh sandbox.
    for command, shown in steps:
        proc = subprocess.run(["bash", "-c", command], cwd=repo, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"{command}\n{proc.stdout}\n{proc.stderr}"
        out = proc.stdout + proc.stderr
        for line in shown:
            if line.strip() in ("", "…"):
                continue
            assert re.search(shown_as_pattern(line), out), f"{command}: the page shows\n{line}\nbut it printed\n{out}"
    status = subprocess.run([TFDEPLOY, "status", "--env", "dev", "--team", "research", "--json"], cwd=repo,
                            env=env, capture_output=True, text=True, check=True)
    cells = {c["scope"]: c["version"] for c in json.loads(status.stdout)["cells"]}
    scopes = ("global", "ap-southeast-2", "eu-central-1", "eu-west-1", "us-east-1")
    assert cells == {scope: "1.1" for scope in scopes}
    qa = subprocess.run(shlex.split("git tag -l 'qa_*/*/1.1'"), cwd=repo, capture_output=True, text=True).stdout
    assert sorted(qa.split()) == sorted(f"qa_{scope}/research/1.1" for scope in scopes)
    status = subprocess.run([TFDEPLOY, "status", "--env", "qa", "--team", "research", "--json"], cwd=repo,
                            env=env, capture_output=True, text=True, check=True)
    assert {c["scope"]: c["version"] for c in json.loads(status.stdout)["cells"]} == {s: "1.1" for s in scopes}
