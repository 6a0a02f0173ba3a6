"""Pure parsers and renderers: captured tool output in, Findings / policy / XML out. No I/O."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from tfdeploy.errors import ConfigError
from tfdeploy.gates.findings import (
    CHECKOV,
    FMT,
    TFLINT,
    VALIDATE,
    CheckovReport,
    CheckRecord,
    apply_baseline,
    cases_for_checks,
    cases_for_findings,
    findings_table,
    junit_xml,
    parse_baseline,
    parse_checkov_json,
    parse_fmt_list,
    parse_terraform_diagnostics,
    parse_tflint_json,
    parse_validate_json,
    render_result,
    unreasoned_skips,
)
from tfdeploy.gates.lint import fails_lint
from tfdeploy.gates.scan import evaluate_scan, policy_for
from tfdeploy.gates.tools import parse_version
from tfdeploy.results import Finding, StageResult

# Captured from terraform 1.15.5 (`fmt -check -recursive -list=true -no-color` on a syntax error).
FMT_SYNTAX_STDERR = """\
There are some problems with the CLI configuration:
\u2577
\u2502 Warning: Unable to open CLI configuration file
\u2502
\u2502 The CLI configuration file at "/root/.terraformrc" does not exist.
\u2575

\u2577
\u2502 Error: Invalid expression
\u2502
\u2502   on s.tf line 2, in resource "x":
\u2502    2:   a =
\u2502
\u2502 Expected the start of an expression, but found an invalid expression token.
\u2575
"""

# Captured from terraform 1.15.5 `validate -json` (trimmed snippet).
VALIDATE_JSON = json.dumps({
    "format_version": "1.0", "valid": False, "error_count": 1, "warning_count": 1,
    "diagnostics": [
        {"severity": "error", "summary": "Reference to undeclared input variable",
         "detail": "An input variable with the name \"missing\" has not been declared.",
         "range": {"filename": "main.tf", "start": {"line": 2, "column": 11, "byte": 42},
                   "end": {"line": 2, "column": 22, "byte": 53}}},
        {"severity": "warning", "summary": "Deprecated attribute",
         "detail": "The attribute \"name\" is deprecated.",
         "range": {"filename": "modules/x/main.tf", "start": {"line": 9, "column": 1}}},
    ],
})

TFLINT_JSON = json.dumps({
    "issues": [
        {"rule": {"name": "terraform_unused_declarations", "severity": "warning", "link": "https://x"},
         "message": "variable \"unused\" is declared but not used",
         "range": {"filename": "main.tf", "start": {"line": 3, "column": 1}, "end": {"line": 3}},
         "callers": []},
        {"rule": {"name": "terraform_comment_syntax", "severity": "notice", "link": ""},
         "message": "Single line comments should begin with #",
         "range": {"filename": "modules/a/b.tf", "start": {"line": 1, "column": 1}}},
    ],
    "errors": [{"message": "Failed to load configurations; main.tf:1,1-2: Argument or block definition required",
                "severity": "error"}],
})


def checkov_raw(check_id: str, resource: str, result: str, line: int = 1, **extra) -> dict:
    raw = {"check_id": check_id, "check_name": f"name of {check_id}", "resource": resource,
           "file_path": "/main.tf", "file_line_range": [line, line + 2],
           "check_result": {"result": result.upper()}}
    raw["check_result"].update(extra)
    return raw


CHECKOV_JSON = {
    "check_type": "terraform",
    "results": {
        "passed_checks": [checkov_raw("CKV_AWS_93", "aws_s3_bucket.a", "passed")],
        "failed_checks": [checkov_raw("CKV_AWS_20", "aws_s3_bucket.a", "failed"),
                          checkov_raw("CKV_AWS_53", "aws_s3_bucket_public_access_block.a", "failed", 5)],
        "skipped_checks": [checkov_raw("CKV_AWS_18", "aws_s3_bucket.a", "skipped",
                                       suppress_comment="logs go elsewhere")],
        "parsing_errors": ["/broken.tf"],
    },
    "summary": {"passed": 1, "failed": 2, "skipped": 1, "parsing_errors": 1, "checkov_version": "3.3.30"},
}


# --- terraform ---

def test_fmt_list_names_each_file():
    findings = parse_fmt_list("bad.tf\nsub/bad2.tf\n\n")
    assert [f.file for f in findings] == ["bad.tf", "sub/bad2.tf"]
    assert all(f.tool == FMT and f.rule == "unformatted" and f.severity == "error" for f in findings)
    assert "terraform fmt" in findings[0].message


def test_fmt_syntax_error_is_one_finding_and_config_warning_is_ignored():
    findings = parse_terraform_diagnostics(FMT_SYNTAX_STDERR)
    assert findings == [Finding(FMT, "Invalid expression", "error", "s.tf", 2,
                                "Expected the start of an expression, but found an invalid expression token.")]


def test_validate_diagnostics_keep_file_line_and_severity():
    error, warning = parse_validate_json(VALIDATE_JSON)
    assert (error.tool, error.severity, error.location) == (VALIDATE, "error", "main.tf:2")
    assert error.rule == "Reference to undeclared input variable"
    assert "missing" in error.message
    assert (warning.severity, warning.location) == ("warning", "modules/x/main.tf:9")
    assert fails_lint(error) and not fails_lint(warning)


def test_validate_without_json_is_an_error():
    with pytest.raises(ValueError):
        parse_validate_json("Error: something\n")


# --- tflint ---

def test_tflint_issues_and_errors():
    unused, notice, error = parse_tflint_json(TFLINT_JSON)
    assert (unused.tool, unused.rule, unused.severity, unused.location) == (
        TFLINT, "terraform_unused_declarations", "warning", "main.tf:3")
    assert (notice.severity, notice.location) == ("notice", "modules/a/b.tf:1")
    assert (error.rule, error.severity, error.file) == ("tflint-error", "error", "")
    assert "Failed to load configurations" in error.message
    # tflint warnings fail the stage (tflint's own default); notices are only reported.
    assert fails_lint(unused) and fails_lint(error) and not fails_lint(notice)


def test_tflint_empty_report():
    assert parse_tflint_json('{"issues":[],"errors":[]}') == []


# --- checkov ---

def test_checkov_report_counts_and_paths():
    report = parse_checkov_json(CHECKOV_JSON)
    assert report.counts == {"passed": 1, "failed": 2, "skipped": 1}
    assert report.version == "3.3.30"
    assert report.parsing_errors == ("/broken.tf",)
    skipped = report.with_result("skipped")[0]
    assert (skipped.file, skipped.line, skipped.comment) == ("main.tf", 1, "logs go elsewhere")


def test_checkov_report_list_and_empty_forms():
    both = parse_checkov_json([CHECKOV_JSON, CHECKOV_JSON])
    assert both.counts["failed"] == 4
    # checkov prints only a summary when it found nothing to check.
    empty = parse_checkov_json({"passed": 0, "failed": 0, "skipped": 0, "parsing_errors": 0,
                                "resource_count": 0, "checkov_version": "3.3.30"})
    assert empty.checks == () and empty.version == "3.3.30"


def test_baseline_moves_only_known_failures_to_skipped():
    baseline = {"failed_checks": [{"file": "/main.tf", "findings": [
        {"resource": "aws_s3_bucket.a", "check_ids": ["CKV_AWS_20", "CKV_AWS_21"]}]}]}
    known = parse_baseline(baseline)
    assert known == {("aws_s3_bucket.a", "CKV_AWS_20"), ("aws_s3_bucket.a", "CKV_AWS_21")}
    report = apply_baseline(parse_checkov_json(CHECKOV_JSON), known)
    assert [c.check_id for c in report.with_result("failed")] == ["CKV_AWS_53"]
    assert ("CKV_AWS_20", "baseline") in [(c.check_id, c.comment) for c in report.with_result("skipped")]
    assert report.counts["passed"] == 1  # passes survive, unlike checkov's own --baseline


def test_bad_baseline_is_a_config_error():
    with pytest.raises(ConfigError, match="create-baseline"):
        parse_baseline({"nope": []}, "x.baseline")


@pytest.mark.parametrize("line, problem", [
    ("  #checkov:skip=CKV_AWS_18:logs are shipped by CloudTrail", None),
    ("  # checkov:skip=CKV_AWS_18,CKV_AWS_21:archive bucket, written once", None),
    ("  # checkov:skip=CKV_AWS_18", "has no reason"),
    ("  #checkov:skip=CKV_AWS_18:   ", "has no reason"),
    ("  // bridgecrew:skip=CKV_AWS_18", "has no reason"),
    ("  #checkov:skip=", "names no check"),
])
def test_inline_skip_needs_a_reason(line, problem):
    findings = unreasoned_skips(f'resource "x" "y" {{\n{line}\n}}\n', "main.tf")
    if problem is None:
        assert findings == []
    else:
        [finding] = findings
        assert (finding.rule, finding.location, finding.severity) == ("skip-without-reason", "main.tf:2", "error")
        assert problem in finding.message and ":<why" in finding.message


# --- policy ---

def _report(failed: int = 1, parsing_errors: tuple[str, ...] = ()) -> CheckovReport:
    checks = [CheckRecord("CKV_AWS_93", "ok", "aws_s3_bucket.a", "main.tf", 1, "passed")]
    checks += [CheckRecord(f"CKV_AWS_{20 + i}", "bad", "aws_s3_bucket.a", "main.tf", 1, "failed")
               for i in range(failed)]
    return CheckovReport(tuple(checks), parsing_errors, "3.3.30")


def test_policy_soft_only_in_listed_envs():
    assert policy_for("dev", ["dev"]) == "soft_fail"
    assert policy_for("prod", ["dev"]) == "hard_fail"
    assert policy_for(None, ["dev"]) == "hard_fail"


def test_soft_fail_passes_with_findings_as_warnings_and_a_note():
    result = evaluate_scan("scan", _report(2), env="dev", soft_fail_envs=["dev"])
    assert result.status == "passed"
    assert [f.severity for f in result.findings] == ["warning", "warning"]
    assert result.exports["CHECKOV_FAILED"] == "2" and result.exports["CHECKOV_POLICY"] == "soft_fail"
    assert any("soft fail in env dev" in n for n in result.notes)


def test_hard_fail_fails():
    result = evaluate_scan("scan", _report(1), env="prod", soft_fail_envs=["dev"])
    assert result.status == "failed" and result.exports["SCAN_STATUS"] == "failed"


def test_unreasoned_skip_and_parse_error_fail_even_when_soft():
    skip = Finding(CHECKOV, "skip-without-reason", "error", "main.tf", 2, "no reason")
    assert evaluate_scan("scan", _report(0), env="dev", soft_fail_envs=["dev"],
                         extra_findings=[skip]).status == "failed"
    assert evaluate_scan("scan", _report(0, ("/x.tf",)), env="dev",
                         soft_fail_envs=["dev"]).status == "failed"


def test_clean_report_passes_everywhere():
    assert evaluate_scan("scan", _report(0), env="prod", soft_fail_envs=()).status == "passed"


def test_nothing_checked_is_said_out_loud():
    result = evaluate_scan("scan", CheckovReport(), env="prod", soft_fail_envs=())
    assert result.status == "passed" and any("checked nothing" in n for n in result.notes)


# --- rendering ---

def test_table_and_render_show_file_line_and_exports():
    findings = parse_tflint_json(TFLINT_JSON)
    table = findings_table(findings)
    assert table.splitlines()[0].split() == ["TOOL", "RULE", "SEVERITY", "FILE:LINE", "MESSAGE"]
    assert "main.tf:3" in table and "modules/a/b.tf:1" in table
    result = StageResult("lint", "failed", 1.25, {"findings": 3}, findings=tuple(findings),
                         exports={"LINT_STATUS": "failed", "TFLINT_ISSUES": "3"}, notes=("a note",))
    text = render_result(result)
    assert "note: a note" in text and "lint failed: findings 3 (1.2s)" in text
    assert text.splitlines()[-2:] == ["LINT_STATUS=failed", "TFLINT_ISSUES=3"]


def test_junit_one_suite_per_tool_one_case_per_finding():
    findings = parse_tflint_json(TFLINT_JSON)
    cases = (cases_for_findings(FMT, [])  # a clean tool is one passing case
             + cases_for_findings(VALIDATE, [], skipped_reason="validate skipped: not initialised")
             + cases_for_findings(TFLINT, findings)
             + cases_for_checks(parse_checkov_json(CHECKOV_JSON)))
    root = ET.fromstring(junit_xml(cases))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert list(suites) == [FMT, VALIDATE, TFLINT, CHECKOV]
    assert suites[FMT].get("tests") == "1" and suites[FMT].get("failures") == "0"
    assert suites[VALIDATE].get("skipped") == "1"
    assert suites[TFLINT].get("failures") == "3"
    assert [c.get("name") for c in suites[TFLINT]] == [
        "[terraform_unused_declarations] main.tf:3", "[terraform_comment_syntax] modules/a/b.tf:1",
        "[tflint-error] -"]
    checkov = suites[CHECKOV]
    assert (checkov.get("tests"), checkov.get("failures"), checkov.get("skipped")) == ("4", "2", "1")
    assert root.get("tests") == "9"


def test_version_parsing():
    assert parse_version("TFLint version 0.53.0\n+ ruleset.terraform (0.9.1-bundled)\n") == "0.53.0"
    assert parse_version("Terraform v1.15.5\non linux_amd64\n") == "1.15.5"
    assert parse_version("3.3.30\n") == "3.3.30"
    assert parse_version("no digits") == "unknown"
