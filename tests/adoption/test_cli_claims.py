"""Documented claims about the command line (the docs site's Settings and CLI pages, which the
README links to), each checked the way a user would: the real `tfdeploy` script, its exit code and
its one error line."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from pathlib import Path

import pytest
from tfdeploy.model.settings import POLICY_SETTINGS, SETTING_NAMES

from tests.e2e.conftest import TFDEPLOY, make_repo, tag, tfdeploy

DOCS = Path(__file__).resolve().parents[2] / "docs"
SETTINGS_PAGE = DOCS / "reference" / "settings.md"  # the settings table (moved from the README)
CLI_PAGE = DOCS / "reference" / "cli.md"


def option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")  # what the Settings page promises for each setting


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{proc.stderr}"
    assert lines[0].startswith("tfdeploy: error: "), lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture
def example(tmp_path) -> Path:
    """The example infra repo (environments dev and qa), no AWS needed."""
    return make_repo(tmp_path / "infra")


# --- "each setting can be overridden ... by --set NAME=VALUE", documented once -------------------


def test_every_repo_command_takes_set_and_settings_lists_every_setting(example):
    for command in (["resolve"], ["plan"], ["bootstrap"], ["scan"], ["events", "pattern"]):
        help_text = tfdeploy(example, *command, "--help").stdout
        assert "--set NAME=VALUE" in help_text, f"tfdeploy {' '.join(command)} lacks --set"
        repeated = [option_flag(n) for n in SETTING_NAMES if re.search(rf"{option_flag(n)}(?![\w=-])", help_text)]
        assert not repeated, f"tfdeploy {' '.join(command)} --help still lists {repeated}"
    listed = {row["name"] for row in json.loads(tfdeploy(example, "settings", "--json").stdout)}
    assert listed == set(SETTING_NAMES)


def test_every_setting_is_in_the_settings_table():
    table = SETTINGS_PAGE.read_text(encoding="utf-8")
    missing = [n for n in SETTING_NAMES if not re.search(rf"^\| `{n}` \|", table, re.MULTILINE)]
    assert not missing, f"docs/reference/settings.md's settings table lacks {missing}"


def test_every_command_is_in_the_cli_pages_tables_once():
    """The hand-written "Commands by task" tables: every command (and subcommand of a group) has a
    row, none twice, and each table is one table (no blank line splitting it into raw text)."""
    from tfdeploy.cli.reference import cli

    page = CLI_PAGE.read_text(encoding="utf-8")
    by_task = page[page.index("## Commands by task"):page.index("## Every command and option")]
    rows = [line for line in by_task.splitlines() if line.startswith("| `")]
    firsts = [re.match(r"\| `([a-z]+(?: [a-z][a-z-]*)?)", row).group(1) for row in rows]
    for section in by_task.split("### ")[1:]:
        lines = section.splitlines()
        at = [i for i, line in enumerate(lines) if line.startswith("|")]
        table = lines[at[0]:at[-1] + 1]  # from its first row to its last: nothing else between
        assert all(line.startswith("|") for line in table), f"a table is split: {section[:200]}"
    # Every word of a row's first cell that is not an option or its value: the commands it names.
    documented = {word for row in rows for word in re.findall(r"(?<![-\w])[a-z]+(?![\w-])", row.split(" | ")[0])}
    commands = set(cli.commands)
    assert commands <= documented, f"docs/reference/cli.md lacks rows for {sorted(commands - documented)}"
    repeated = sorted({f for f in firsts if firsts.count(f) > 1} - {"apply", "plan"})
    assert not repeated, f"rows repeated in docs/reference/cli.md: {repeated}"


def test_setting_options_win_over_the_file(example):
    tag(example, "dev_us-east-1/research/1.0")
    # The file says environments = ["dev", "qa"] and default_branch main.
    proc = tfdeploy(example, "resolve", "--tag", "dev_us-east-1/research/1.0", "--json",
                    "--environments", "qa", check=False)
    assert proc.returncode == 2
    assert "--environments sets environments, which is policy" in one_error_line(proc)
    proc = tfdeploy(example, "resolve", "--tag", "dev_us-east-1/research/1.0", "--json",
                    "--set", "default_tags=env,version")
    assert json.loads(proc.stdout)["default_tags"] == {"tfdeploy:env": "dev", "tfdeploy:version": "1.0"}
    proc = tfdeploy(example, "resolve", "--tag", "dev_us-east-1/research/1.0", "--set", "session_name=CI",
                    "--set", "extra_regions=xx-test-1", "--set", "kms_key_id=k", "-v")
    assert "(--set session_name)" in proc.stderr and "(--set extra_regions)" in proc.stderr


# --- hints name the real env ----------------------------------------------------------------------


def test_missing_state_bucket_hint_names_the_env(repo):
    # No bootstrap: the state bucket does not exist.
    tag(repo, "qa_us-east-1/research/1.0")
    proc = tfdeploy(repo, "plan", "--tag", "qa_us-east-1/research/1.0", check=False)
    assert proc.returncode != 0
    line = proc.stderr.strip().splitlines()[-1]
    assert "tfdeploy bootstrap --env qa" in line, line
    assert "--env ENV" not in proc.stderr


def _texts(tree) -> list[tuple[int, str]]:
    """Every string the code can show: plain literals (implicit concatenation already joined) and
    f-strings with each placeholder as `{}`, whitespace folded, with their line numbers."""
    import ast
    import re

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
        else:
            continue
        found.append((node.lineno, re.sub(r"\s+", " ", text)))
    return found


def test_no_hint_tells_the_user_to_run_terraform_force_unlock():
    """README (stale state locks): a released lock is found with `tfdeploy locks` and released with
    `tfdeploy unlock`, which refuses while a run of the cell is alive here; raw `terraform
    force-unlock` has no such check. So no text tfdeploy can print names that command, in any
    wording (`run ...`, `once nothing runs: ...`, inside an f-string)."""
    import ast
    import re

    source = Path(__file__).resolve().parents[2] / "toolkit" / "tfdeploy"
    offenders = [f"{path.relative_to(source)}:{line}: {text}"
                 for path in sorted(source.rglob("*.py"))
                 for line, text in _texts(ast.parse(path.read_text(), str(path)))
                 if re.search(r"terraform force-unlock", text, re.IGNORECASE)]
    assert not offenders, "\n".join(offenders)
    assert "tfdeploy unlock --tag" in (source / "engine" / "terraform.py").read_text()


# --- usage errors are one line --------------------------------------------------------------------


@pytest.mark.parametrize("args, command", [
    (["plan"], "tfdeploy plan"),                                   # missing option
    (["--bogus"], "tfdeploy"),                                     # the group's own option
    (["nosuch"], "tfdeploy"),                                      # unknown command
    (["sandbox", "up", "--nope"], "tfdeploy sandbox up"),          # nested group
    (["plan", "--tag", "x", "--lock-timeout", "soon"], "tfdeploy plan"),  # bad value
    (["plan", "--tag", "x", "--lock", "redis"], "tfdeploy plan"),   # bad choice
])
def test_usage_errors_are_one_line_with_a_next_step(tmp_path, args, command):
    proc = subprocess.run([TFDEPLOY, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert line.endswith(f"; see {command} --help"), line


# --- events pattern refuses an env that is not configured ----------------------------------------


def test_events_pattern_refuses_an_env_that_is_not_configured(example):
    proc = tfdeploy(example, "events", "pattern", "--env", "staging", check=False)
    assert proc.returncode == 2
    line = one_error_line(proc)
    assert "staging" in line and "(dev, qa)" in line
    assert proc.stdout == ""
    pattern = json.loads(tfdeploy(example, "events", "pattern", "--env", "qa").stdout)
    assert pattern["detail"]["referenceName"] == [{"prefix": "qa_"}]


# --- a stale sandbox variable ---------------------------------------------------------------------


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed when the block ends: nothing listens there


def test_stale_sandbox_endpoint_is_one_line(example, tmp_path):
    tag(example, "dev_us-east-1/research/1.0")
    url = f"http://127.0.0.1:{_dead_port()}"
    env = {"TFDEPLOY_SANDBOX_ENDPOINT": url, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "TFDEPLOY_HOME": str(tmp_path / "home")}
    for args in (["bootstrap", "--env", "dev"], ["plan", "--tag", "dev_us-east-1/research/1.0"]):
        proc = tfdeploy(example, *args, check=False, env=env)
        assert proc.returncode != 0
        line = one_error_line(proc)
        assert f"the sandbox at {url}" in line and "is not running" in line, line
        assert "tfdeploy sandbox up" in line and "unset TFDEPLOY_SANDBOX_ENDPOINT" in line
