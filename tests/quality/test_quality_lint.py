"""Lint stage: real terraform fmt/validate; tflint via tests/quality/tflint_test_double.py.

tflint itself cannot be installed here, so everything about tflint below proves how tfdeploy
calls it and reads its JSON, not what real tflint rules report.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from tfdeploy.errors import ToolMissingError
from tfdeploy.gates.lint import VALIDATE_SKIPPED, run_lint

from .conftest import export_lines, invoke, make_repo


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo", "misformatted", "hardened_bucket", "validate_error")


def test_fmt_finding_names_the_unformatted_file(repo, tool_env, tflint_double):
    env = tflint_double.env(tool_env, TFLINT_DOUBLE_OUTPUT=str(_empty_report(repo)))
    result = run_lint(repo / "misformatted", repo_root=repo, environ=env)
    assert result.status == "failed"
    [finding] = result.findings
    assert (finding.tool, finding.rule, finding.file) == ("terraform-fmt", "unformatted", "main.tf")
    assert result.counts["fmt_unformatted"] == 1 and result.exports["FMT_UNFORMATTED"] == "1"


def test_tflint_double_arguments_and_findings_in_the_table(repo, tool_env, tflint_double):
    result = invoke(["lint", "--exports", "--dir", str(repo / "hardened_bucket")], tflint_double.env(tool_env))
    assert result.exit_code == 1, result.output

    init, run = tflint_double.calls()[-2:]
    config = str((repo / ".tflint.hcl").resolve())
    assert init["argv"] == ["--init", "--config", config]
    assert run["argv"] == ["--recursive", "--format", "json", "--config", config]
    assert run["cwd"] == str((repo / "hardened_bucket").resolve())

    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("TOOL"))
    assert lines[header].split() == ["TOOL", "RULE", "SEVERITY", "FILE:LINE", "MESSAGE"]
    rows = lines[header + 1: header + 3]
    assert rows[0].split()[:4] == ["tflint", "terraform_unused_declarations", "warning", "main.tf:3"]
    assert rows[1].split()[:4] == ["tflint", "aws_instance_invalid_type", "error", "modules/app/main.tf:7"]
    assert "lint failed:" in result.output
    exports = export_lines(result.output)
    assert exports["TFLINT_ISSUES"] == "2" and exports["TFLINT_STATUS"] == "failed"
    assert exports["LINT_STATUS"] == "failed" and exports["FMT_UNFORMATTED"] == "0"


def test_clean_lint_passes_and_says_validate_was_skipped(repo, tool_env, tflint_double, tmp_path):
    env = tflint_double.env(tool_env, TFLINT_DOUBLE_OUTPUT=str(_empty_report(repo)))
    result = invoke(["lint", "--exports", "--dir", str(repo / "hardened_bucket")], env)
    assert result.exit_code == 0, result.output
    assert f"note: {VALIDATE_SKIPPED}" in result.output
    exports = export_lines(result.output)
    assert exports["LINT_STATUS"] == "passed" and exports["TFLINT_ISSUES"] == "0"
    assert exports["VALIDATE_STATUS"] == "skipped" and "VALIDATE_ERRORS" not in exports


def test_validate_runs_when_initialised(repo, tool_env, tflint_double):
    workdir = repo / "validate_error"
    # terraform init of a config without providers creates no .terraform/; a work dir the
    # lead's init prepared always has one, so stand in for it.
    (workdir / ".terraform").mkdir()
    env = tflint_double.env(tool_env, TFLINT_DOUBLE_OUTPUT=str(_empty_report(repo)))
    result = run_lint(workdir, repo_root=repo, environ=env)
    assert result.status == "failed"
    [finding] = result.findings
    assert (finding.tool, finding.location) == ("terraform-validate", "main.tf:3")
    assert finding.rule == "Reference to undeclared input variable"
    assert result.exports["VALIDATE_STATUS"] == "failed" and result.exports["VALIDATE_ERRORS"] == "1"


def test_missing_tflint_exits_3_with_one_line(repo, no_tflint_env):
    result = invoke(["lint", "--exports", "--dir", str(repo / "hardened_bucket")],
                    {**no_tflint_env, "TFDEPLOY_TFLINT": None})
    assert result.exit_code == 3
    assert result.output.count("\n") == 1
    assert result.output.startswith("tfdeploy: error: tflint not found")
    assert "--allow-missing tflint" in result.output
    # A result is still written, so a pipeline step reading it finds the failure.
    saved = json.loads((repo / "hardened_bucket" / ".tfdeploy-results" / "lint.result.json").read_text())
    assert saved["status"] == "failed" and saved["tools"]["tflint"] == "missing"


def test_missing_tflint_raises_from_the_library_too(repo, no_tflint_env):
    with pytest.raises(ToolMissingError):
        run_lint(repo / "hardened_bucket", repo_root=repo, environ=no_tflint_env)


def test_allow_missing_tflint_is_a_visible_skip(repo, no_tflint_env):
    result = invoke(["lint", "--exports", "--dir", str(repo / "hardened_bucket"), "--allow-missing", "tflint"],
                    {**no_tflint_env, "TFDEPLOY_TFLINT": None})
    assert result.exit_code == 0, result.output
    assert "note: tflint skipped: not installed (--allow-missing tflint)" in result.output
    exports = export_lines(result.output)
    assert exports["TFLINT_STATUS"] == "skipped" and "TFLINT_ISSUES" not in exports
    saved = json.loads((repo / "hardened_bucket" / ".tfdeploy-results" / "lint.result.json").read_text())
    assert saved["counts"]["skipped"] == 2  # tflint and validate
    assert any("tflint skipped" in note for note in saved["notes"])


def test_tflint_init_failure_fails_the_stage(repo, tool_env, tflint_double):
    result = run_lint(repo / "hardened_bucket", repo_root=repo,
                      environ=tflint_double.env(tool_env, TFLINT_DOUBLE_INIT_FAIL="1"))
    assert result.status == "failed"
    [finding] = result.findings
    assert finding.rule == "tflint-init" and "could not reach github.com" in finding.message
    assert [c["argv"][0] for c in tflint_double.calls()] == ["--version", "--init"]


def test_junit_and_result_file(repo, tool_env, tflint_double, tmp_path):
    junit, results = tmp_path / "reports" / "lint.xml", tmp_path / "results"
    result = invoke(["lint", "--exports", "--dir", str(repo / "misformatted"), "--junit", str(junit),
                     "--results-dir", str(results), "--json"], tflint_double.env(tool_env))
    assert result.exit_code == 1
    document = json.loads(result.output[result.output.index("{"):])
    assert document["result_file"] == str(results / "lint.result.json")

    saved = json.loads((results / "lint.result.json").read_text())
    assert saved["stage"] == "lint" and saved["status"] == "failed"
    assert saved["counts"]["fmt_unformatted"] == 1 and saved["counts"]["tflint_issues"] == 2
    assert saved["duration_s"] > 0
    assert saved["tools"]["tflint"] == "0.0.0-test-double" and saved["tools"]["terraform"][0].isdigit()

    root = ET.parse(junit).getroot()
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"terraform-fmt", "terraform-validate", "tflint"}
    assert suites["terraform-fmt"].get("failures") == "1"
    assert suites["terraform-validate"].get("skipped") == "1"
    names = [case.get("name") for case in suites["tflint"]]
    assert names == ["[terraform_unused_declarations] main.tf:3",
                     "[aws_instance_invalid_type] modules/app/main.tf:7"]


def _empty_report(repo):
    path = repo / "tflint-empty.json"
    path.write_text('{"issues": [], "errors": []}')
    return path
