"""`tfdeploy buildspec run`: CodeBuild's semantics, reproduced in one real bash shell."""

from __future__ import annotations

import json
import os
import textwrap
import time
from pathlib import Path

import pytest
from tfdeploy.delivery.buildspec_runner import (
    Phase,
    continues_after_failure,
    load_buildspec,
    parse_buildspec,
    parse_env_pairs,
    run_build,
)
from tfdeploy.errors import ValidationError

from tests.delivery.conftest import invoke


def write(tmp_path: Path, text: str, name: str = "buildspec.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def build(tmp_path: Path, text: str, **kwargs):
    out = bytearray()
    result = run_build(load_buildspec(write(tmp_path, text)), tmp_path, sink=out.extend, **kwargs)
    return result, out.decode()


def test_one_shell_export_and_cd_carry_across_phases(tmp_path):
    (tmp_path / "sub").mkdir()
    result, out = build(tmp_path, """\
        version: 0.2
        env:
          exported-variables: [SEEN, WHERE, PLAIN]
        phases:
          install:
            commands:
              - export FROM_INSTALL=yes
              - cd sub
          pre_build:
            commands:
              - PLAIN="set without export"
          build:
            commands:
              - export SEEN="$FROM_INSTALL"
              - export WHERE="$(basename "$PWD")"
        """)
    assert result.succeeded, out
    assert result.exported == {"SEEN": "yes", "WHERE": "sub", "PLAIN": "set without export"}
    assert [status for _, status in result.phases] == ["succeeded"] * 3


def test_abort_stops_the_build_but_finally_runs(tmp_path):
    result, out = build(tmp_path, """\
        version: 0.2
        phases:
          pre_build:
            on-failure: ABORT
            commands:
              - echo first
              - exit_code_7() { return 7; }; exit_code_7
              - touch never-runs
            finally:
              - touch finally-ran
          build:
            commands:
              - touch build-ran
        """)
    assert not result.succeeded
    assert (tmp_path / "finally-ran").exists()
    assert not (tmp_path / "never-runs").exists() and not (tmp_path / "build-ran").exists()
    assert result.phases == (("pre_build", "failed"), ("build", "not run"))
    failure = result.failure
    assert (failure.phase, failure.block, failure.index, failure.exit_code) == ("pre_build", "commands", 2, 7)
    assert "phase pre_build, command 2" in failure.describe()
    # The command's output comes between the runner's lines, in order.
    assert out.index("pre_build $ echo first") < out.index("first\n") < out.index("pre_build finally $")


def test_continue_goes_on_and_the_build_still_fails(tmp_path):
    result, _ = build(tmp_path, """\
        version: 0.2
        phases:
          install:
            on-failure: CONTINUE
            commands: ["false"]
          build:
            commands: ["touch build-ran"]
        """)
    assert (tmp_path / "build-ran").exists()
    assert not result.succeeded and result.failure.phase == "install"


def test_default_transitions_post_build_runs_after_a_failed_build(tmp_path):
    result, _ = build(tmp_path, """\
        version: 0.2
        env:
          exported-variables: [SUCCEEDING]
        phases:
          build:
            commands: ["false"]
          post_build:
            commands: ['export SUCCEEDING="$CODEBUILD_BUILD_SUCCEEDING"']
        """)
    assert result.phases == (("build", "failed"), ("post_build", "succeeded"))
    assert result.exported == {"SUCCEEDING": "0"}
    assert not result.succeeded


def test_variables_overrides_and_source_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("FROM_CALLER", "caller")
    monkeypatch.setenv("SHADOWED", "caller")
    src = tmp_path / "src"
    src.mkdir()
    path = write(tmp_path, """\
        version: 0.2
        env:
          variables:
            SHADOWED: buildspec
            OVERRIDDEN: buildspec
            NUMBER: 3.12
          exported-variables: [OUT]
        phases:
          build:
            commands:
              - export OUT="$FROM_CALLER $SHADOWED $OVERRIDDEN $NUMBER $CODEBUILD_SRC_DIR $PWD"
        """)
    result = run_build(load_buildspec(path), src, overrides={"OVERRIDDEN": "cli"}, sink=lambda b: None)
    assert result.exported["OUT"] == f"caller buildspec cli 3.12 {src} {src}"


def test_skip_install_and_exported_through_the_cli(tmp_path):
    path = write(tmp_path, """\
        version: 0.2
        env:
          exported-variables: [A, B]
        phases:
          install:
            commands: ["touch installed"]
          build:
            commands: ['export A="$GREETING"', "export B=2"]
        """)
    result = invoke(["buildspec", "run", str(path), "--skip-install", "--src-dir", str(tmp_path),
                     "--env", "GREETING=hi there", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["status"] == "succeeded"
    assert doc["exported_variables"] == {"A": "hi there", "B": "2"}
    assert doc["phases"][0] == {"name": "install", "status": "skipped"}
    assert not (tmp_path / "installed").exists()
    assert "install skipped" in result.stderr  # build output goes to stderr with --json

    plain = invoke(["buildspec", "run", str(path), "--src-dir", str(tmp_path), "--env", "GREETING=x"])
    assert plain.exit_code == 0
    assert "A=x\nB=2\n" in plain.stdout
    assert (tmp_path / "installed").exists()


def test_cli_failure_is_one_line_naming_phase_and_command(tmp_path):
    path = write(tmp_path, """\
        version: 0.2
        phases:
          build:
            on-failure: ABORT
            commands:
              - "true"
              - ls /definitely/not/here
        """)
    result = invoke(["buildspec", "run", str(path), "--src-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "tfdeploy: error: build failed: phase build, command 2 (`ls /definitely/not/here`) failed with exit code 2"
    ]


def test_a_command_that_exits_the_shell(tmp_path):
    result, _ = build(tmp_path, """\
        version: 0.2
        phases:
          build:
            commands: ["exit 3", "touch after"]
            finally: ["touch finally"]
          post_build:
            commands: ["touch post"]
        """)
    assert result.failure.shell_exited and result.failure.exit_code == 3
    assert "ended the shell" in result.failure.describe()
    assert not any((tmp_path / name).exists() for name in ("after", "finally", "post"))
    assert result.phases == (("build", "failed"), ("post_build", "not run"))


def test_artifacts_must_match_and_missing_reports_are_noted(tmp_path):
    spec = """\
        version: 0.2
        phases:
          build:
            commands: ["mkdir -p out/deep && echo x > out/deep/file"]
        artifacts:
          base-directory: out
          files: ["**/*"]
        reports:
          unit:
            base-directory: reports
            files: [junit.xml]
        """
    result, _ = build(tmp_path, spec)
    assert result.succeeded
    assert any("report unit" in note for note in result.notes)
    result, _ = build(tmp_path, spec.replace('"**/*"', "missing.bin"))
    assert not result.succeeded
    assert result.failure.describe() == "artifacts: no file matches 'out/missing.bin'"


def test_large_output_does_not_block(tmp_path):
    result, out = build(tmp_path, """\
        version: 0.2
        phases:
          build:
            commands: ["head -c 300000 /dev/zero | tr '\\\\0' x; echo", "echo done"]
        """)
    assert result.succeeded
    assert out.count("x") >= 300000 and "done\n" in out


def test_parse_errors_are_clear(tmp_path):
    with pytest.raises(ValidationError, match="version"):
        parse_buildspec({"version": 0.1, "phases": {"build": {"commands": ["x"]}}})
    with pytest.raises(ValidationError, match="unknown phase 'deploy'"):
        parse_buildspec({"version": 0.2, "phases": {"deploy": {"commands": ["x"]}}})
    with pytest.raises(ValidationError, match="quote it"):
        parse_buildspec({"version": 0.2, "phases": {"build": {"commands": [{"echo a": "b"}]}}})
    with pytest.raises(ValidationError, match="on-failure"):
        parse_buildspec({"version": 0.2, "phases": {"build": {"on-failure": "RETRY", "commands": ["x"]}}})
    bad = write(tmp_path, "version: 0.2\nphases: [\n")
    result = invoke(["buildspec", "run", str(bad)])
    assert result.exit_code == 2
    assert "is not valid YAML at line" in result.stderr
    with pytest.raises(ValidationError):
        parse_env_pairs(["NOEQUALS"])
    assert parse_env_pairs(["A=b=c", "E="]) == {"A": "b=c", "E": ""}


def test_unsupported_keys_become_notes():
    spec = parse_buildspec({"version": 0.2, "env": {"parameter-store": {"TOKEN": "/x"}},
                            "phases": {"install": {"runtime-versions": {"python": 3.12}, "commands": ["x"]}}})
    assert any("parameter-store" in n and "--env" in n for n in spec.notes)
    assert any("runtime-versions" in n for n in spec.notes)


@pytest.mark.parametrize("name,on_failure,expected", [
    ("install", None, False), ("pre_build", None, False), ("build", None, True),
    ("post_build", None, False), ("build", "ABORT", False), ("install", "CONTINUE", True),
])
def test_transitions_table(name, on_failure, expected):
    assert continues_after_failure(Phase(name, ("x",), on_failure=on_failure)) is expected


def test_background_processes_end_with_the_build(tmp_path):
    result, _ = build(tmp_path, """\
        version: 0.2
        phases:
          build:
            commands: ["(sleep 30; touch late) & echo $! > bg.pid"]
        """)
    assert result.succeeded
    pid = int((tmp_path / "bg.pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the background process outlived the build")
