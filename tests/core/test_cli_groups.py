"""The command line reads as groups: --help by task, the setting overrides documented once
(--set NAME=VALUE and `tfdeploy settings`), one way to name cells. Through the installed script,
as a user runs it."""

from __future__ import annotations

import json
import re

import pytest
from tfdeploy.model.settings import POLICY_SETTINGS, SETTING_NAMES

from tests.e2e.conftest import make_repo, tag, tfdeploy

HEADINGS = ("Deploy commands:", "Fleet commands:", "State commands:", "Pipeline commands:", "Set-up commands:")


@pytest.fixture
def example(tmp_path):
    return make_repo(tmp_path / "infra")


def _sections(help_text: str) -> dict[str, list[str]]:
    """heading -> the command names listed under it."""
    found: dict[str, list[str]] = {}
    current = None
    for line in help_text.splitlines():
        if re.fullmatch(r"[A-Z][\w-]* commands:", line):
            current = line
            found[current] = []
        elif current and line.startswith("  ") and line.strip():
            found[current].append(line.split()[0])
        elif not line.strip():
            current = None
    return found


def test_help_lists_commands_under_task_headings(example):
    from tfdeploy.cli import LAZY_COMMANDS

    text = tfdeploy(example, "--help").stdout
    sections = _sections(text)
    assert list(sections) == list(HEADINGS), text
    assert sections["Deploy commands:"][:3] == ["resolve", "plan", "apply"]
    assert "status" in sections["Fleet commands:"] and "bootstrap" in sections["State commands:"]
    assert "ci" in sections["Pipeline commands:"] and "settings" in sections["Set-up commands:"]
    listed = [name for names in sections.values() for name in names]
    assert sorted(listed) == sorted({*LAZY_COMMANDS, "resolve", "tags"})  # each once, none under Other


def test_setting_options_are_one_set_option_in_help(example):
    text = tfdeploy(example, "plan", "--help").stdout
    assert "--set NAME=VALUE" in text
    shown = [f"--{n.replace('_', '-')}" for n in SETTING_NAMES if f"--{n.replace('_', '-')} " in text]
    assert shown == [], f"per-setting options still in plan --help: {shown}"


def test_set_overrides_a_setting_and_settings_says_where_from(example):
    tag(example, "dev_us-east-1/research/1.0")
    proc = tfdeploy(example, "resolve", "--tag", "dev_us-east-1/research/1.0", "--json",
                    "--set", "default_tags=env,version", "--set", "session-name=CI")
    doc = json.loads(proc.stdout)
    assert doc["default_tags"] == {"tfdeploy:env": "dev", "tfdeploy:version": "1.0"}
    assert doc["session_name"] == "CI"
    rows = {r["name"]: r for r in json.loads(tfdeploy(example, "settings", "--json", "--set", "lock=dynamodb").stdout)}
    assert set(rows) == set(SETTING_NAMES)
    assert rows["lock"]["value"] == "dynamodb" and rows["lock"]["from"] == "--set lock"
    assert rows["backend_prefix"]["from"] == "pyproject.toml" and rows["role_name"]["from"] == "default"
    assert {n for n, r in rows.items() if r["policy"]} == set(POLICY_SETTINGS)
    text = tfdeploy(example, "settings", env={"TFDEPLOY_SESSION_NAME": "FROMENV"}).stdout
    assert re.search(r"^session_name\s+FROMENV\s+TFDEPLOY_SESSION_NAME$", text, re.MULTILINE), text


@pytest.mark.parametrize("name", POLICY_SETTINGS)
def test_a_policy_setting_is_refused_through_set_too(example, name):
    proc = tfdeploy(example, "settings", "--set", f"{name}=x", check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tfdeploy: error: --set {name} sets {name}, which is policy")


@pytest.mark.parametrize("pair, said", [("foo=1", "'foo' is not a setting"), ("lock", "is not NAME=VALUE")])
def test_a_bad_set_is_one_line(example, pair, said):
    proc = tfdeploy(example, "settings", "--set", pair, check=False)
    assert proc.returncode == 2 and said in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_old_setting_options_work_hidden_with_a_deprecation_note(example):
    tag(example, "dev_us-east-1/research/1.0")
    proc = tfdeploy(example, "resolve", "--tag", "dev_us-east-1/research/1.0", "--json", "--session-name", "CI")
    assert json.loads(proc.stdout)["session_name"] == "CI"
    assert "--session-name is deprecated; use --set session_name=CI" in proc.stderr
    proc = tfdeploy(example, "resolve", "--tag", "dev_us-east-1/research/1.0", "--environments", "qa", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1  # policy: refused, nothing before it


# --- one way to name cells --------------------------------------------------------------------


def _release(example, *args: str, check: bool = True):
    return tfdeploy(example, "release", "--env", "dev", "--team", "research", "--version", "1.1", "--dry-run",
                    "--json", *args, check=check)


def _tags(proc) -> list[str]:
    return [t["tag"] for t in json.loads(proc.stdout)]


def test_release_names_scopes_with_scope_and_global_includes_the_global_cell(example):
    every = _tags(_release(example, "--scope", "all", "--global"))
    assert every[0] == "dev_global/research/1.1" and "dev_us-east-1/research/1.1" in every
    assert _tags(_release(example, "--scope", "all")) == every[1:]
    assert _tags(_release(example, "--scope", "global")) == ["dev_global/research/1.1"]
    assert _tags(_release(example, "--scope", "us-east-1", "--global")) == ["dev_global/research/1.1",
                                                                           "dev_us-east-1/research/1.1"]
    old = _release(example, "--regions", "all", "--global")  # the deprecated alias, hidden from --help
    assert _tags(old) == every and "--regions is deprecated; use --scope all" in old.stderr
    assert "--regions" not in tfdeploy(example, "release", "--help").stdout
    bad = _release(example, "--scope", "all,us-east-1", check=False)
    assert bad.returncode == 2 and "--scope all stands alone" in bad.stderr


def test_promote_global_alone_is_refused_naming_the_new_form(example):
    proc = tfdeploy(example, "promote", "--from", "dev", "--to", "qa", "--team", "research", "--version", "1.0",
                    "--global", check=False)
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("tfdeploy: error: promote --global alone no longer means only the global cell: "
                           "pass --scope global")
    assert "--regions" not in tfdeploy(example, "promote", "--help").stdout


def test_global_means_include_the_global_cell_in_every_command_that_has_it(example):
    from tfdeploy.cli import LAZY_COMMANDS

    for name in sorted({*LAZY_COMMANDS, "resolve", "tags"}):
        text = tfdeploy(example, name, "--help").stdout
        if "--global" in text:
            line = next(line for line in text.splitlines() if re.match(r"  --global\s", line))  # the option
            assert "Include the global cell" in line, (name, line)


@pytest.mark.parametrize("command", [("status",), ("drift",), ("locks",),
                                     ("release", "--env", "dev", "--team", "research", "--version", "1.9"),
                                     ("promote", "--from", "dev", "--to", "qa", "--team", "research",
                                      "--version", "1.0")])
def test_a_mistyped_scope_is_one_line_before_anything_is_read(example, command):
    """A Region typo is not a filter that silently matches no cell (or a tag never made): every
    command that takes --scope refuses it in one line, before any AWS call (none is set up here)."""
    proc = tfdeploy(example, *command, "--scope", "us-est-1", check=False)
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("tfdeploy: error: --scope us-est-1: not a known AWS Region; name a Region (us-east-1), "
                           "global or all")
