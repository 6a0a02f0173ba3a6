"""Normalise tool outputs into Findings, render them, and write JUnit XML for CodeBuild reports.

Everything here is pure (text or parsed JSON in, values out) except `write_junit`, so each parser
is tested against captured tool output without running the tool.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ConfigError
from ..results import Finding, StageResult, write_atomic

FMT, VALIDATE, TFLINT, CHECKOV = "terraform-fmt", "terraform-validate", "tflint", "checkov"

# Stage outputs (result JSON, checkov's raw reports) go here unless told otherwise. A dot-folder:
# terraform fmt -recursive and checkov skip it, and it is easy to git-ignore.
from ..engine.workdir import RESULTS_DIR as RESULTS_DIRNAME  # one name for the results folder


def default_results_dir(workdir: Path) -> Path:
    return Path(workdir) / RESULTS_DIRNAME


# Checkov's own pattern for suppression comments (checkov/common/comment/enum.py, 3.3.x).
_SKIP_RE = re.compile(r"(?:checkov|bridgecrew|cortex):skip= *([A-Za-z_\d-]+(?:,[A-Za-z_\d-]+)*)?(:[^\n]*)?")
_DIAG_HEAD_RE = re.compile(r"^(Error|Warning): (.+)$")
_DIAG_LOC_RE = re.compile(r"^\s*on (.+?) line (\d+)")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# --- terraform ------------------------------------------------------------------------------

def parse_fmt_list(stdout: str) -> list[Finding]:
    """`terraform fmt -check -list=true` prints one unformatted file per line."""
    return [
        Finding(FMT, "unformatted", "error", line.strip(), 0,
                "not in canonical format; run: terraform fmt -recursive")
        for line in stdout.splitlines() if line.strip()
    ]


def parse_terraform_diagnostics(stderr: str, tool: str = FMT) -> list[Finding]:
    """Terraform's human diagnostics (run with -no-color), e.g. fmt's syntax errors.

    Only errors become findings; warnings such as a missing ~/.terraformrc are noise here.
    """
    findings: list[Finding] = []
    blocks = re.split(r"^\u2577\s*$", stderr, flags=re.MULTILINE)
    for block in blocks:
        lines = [re.sub(r"^[\u2502\u2575]\s?", "", line).rstrip() for line in block.splitlines()]
        head = next((m for m in map(_DIAG_HEAD_RE.match, lines) if m), None)
        if head is None or head.group(1) != "Error":
            continue
        loc = next((m for m in map(_DIAG_LOC_RE.match, lines) if m), None)
        # The detail is the last prose line; the lines between are the source snippet.
        prose = [line for line in lines if line.strip() and not _DIAG_LOC_RE.match(line)
                 and not re.match(r"^\s*\d+:", line) and not _DIAG_HEAD_RE.match(line)]
        detail = prose[-1].strip() if prose else ""
        findings.append(Finding(
            tool, head.group(2).strip(), "error",
            loc.group(1) if loc else "", int(loc.group(2)) if loc else 0,
            _one_line(detail) or head.group(2).strip(),
        ))
    return findings


def parse_validate_json(text: str) -> list[Finding]:
    """`terraform validate -json`: each diagnostic becomes a Finding (errors and warnings)."""
    data = _load_json(text, "terraform validate -json")
    findings = []
    for diag in data.get("diagnostics") or []:
        rng = diag.get("range") or {}
        summary = _one_line(diag.get("summary", "")) or "diagnostic"
        severity = "error" if diag.get("severity") == "error" else "warning"
        findings.append(Finding(VALIDATE, summary, severity, rng.get("filename", ""),
                                int((rng.get("start") or {}).get("line") or 0),
                                _one_line(diag.get("detail") or summary)))
    return findings


# --- tflint ---------------------------------------------------------------------------------

def parse_tflint_json(text: str) -> list[Finding]:
    """`tflint --format json`: {"issues": [...], "errors": [...]}.

    Issue severities are tflint's own (error | warning | notice); entries under "errors" (bad
    config, a plugin that failed) are errors of tflint itself and always fail the stage.
    """
    data = _load_json(text, "tflint --format json")
    findings = []
    for issue in data.get("issues") or []:
        rule = issue.get("rule") or {}
        rng = issue.get("range") or {}
        severity = str(rule.get("severity") or "warning").lower()
        if severity not in ("error", "warning", "notice"):
            severity = "warning"
        findings.append(Finding(TFLINT, rule.get("name") or "unknown", severity,
                                rng.get("filename") or "", int((rng.get("start") or {}).get("line") or 0),
                                _one_line(issue.get("message") or "")))
    for error in data.get("errors") or []:
        rng = error.get("range") or {}
        message = _one_line(error.get("message") or error.get("summary") or "tflint error")
        findings.append(Finding(TFLINT, "tflint-error", "error", rng.get("filename") or "",
                                int((rng.get("start") or {}).get("line") or 0), message))
    return findings


# --- checkov --------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckRecord:
    """One checkov check on one resource."""

    check_id: str
    name: str
    resource: str
    file: str
    line: int
    result: str  # passed | failed | skipped
    comment: str = ""  # why it was skipped (inline reason, or "baseline")
    severity: str = ""


@dataclass(frozen=True)
class CheckovReport:
    checks: tuple[CheckRecord, ...] = ()
    parsing_errors: tuple[str, ...] = ()
    version: str = "unknown"

    def with_result(self, result: str) -> list[CheckRecord]:
        return [c for c in self.checks if c.result == result]

    @property
    def counts(self) -> dict[str, int]:
        return {name: len(self.with_result(name)) for name in ("passed", "failed", "skipped")}


def _record(raw: Mapping[str, Any], result: str) -> CheckRecord:
    line_range = raw.get("file_line_range") or [0]
    check_result = raw.get("check_result") or {}
    return CheckRecord(
        check_id=str(raw.get("check_id") or "unknown"),
        name=_one_line(raw.get("check_name") or ""),
        resource=str(raw.get("resource") or ""),
        # checkov reports paths relative to the scanned root with a leading "/".
        file=str(raw.get("file_path") or "").lstrip("/"),
        line=int(line_range[0] or 0),
        result=result,
        comment=_one_line(check_result.get("suppress_comment") or "") if result == "skipped" else "",
        severity=str(raw.get("severity") or "").lower(),
    )


def parse_checkov_json(data: Any) -> CheckovReport:
    """checkov `-o json`: one report object per framework (a list when several ran).

    A scan that found nothing to check is only a summary object without "results".
    """
    reports = data if isinstance(data, list) else [data]
    checks: list[CheckRecord] = []
    parsing_errors: list[str] = []
    version = "unknown"
    for report in reports:
        if not isinstance(report, Mapping):
            raise ValueError("checkov JSON report has an unexpected shape")
        summary = report.get("summary", report)
        version = str(summary.get("checkov_version") or version)
        results = report.get("results") or {}
        for key, result in (("passed_checks", "passed"), ("failed_checks", "failed"),
                            ("skipped_checks", "skipped")):
            checks.extend(_record(raw, result) for raw in results.get(key) or [])
        parsing_errors.extend(str(p) for p in results.get("parsing_errors") or [])
    return CheckovReport(tuple(checks), tuple(parsing_errors), version)


def parse_baseline(data: Any, source: str = "baseline") -> frozenset[tuple[str, str]]:
    """A `.checkov.baseline` file (checkov --create-baseline) -> {(resource, check_id)}.

    checkov matches baseline entries on resource and check id only, not the file, so we do too.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("failed_checks"), list):
        raise ConfigError(f"{source}: not a checkov baseline (expected {{\"failed_checks\": [...]}}); "
                          "create one with: checkov -d DIR --create-baseline")
    known = set()
    for entry in data["failed_checks"]:
        for finding in (entry or {}).get("findings") or []:
            for check_id in finding.get("check_ids") or []:
                known.add((str(finding.get("resource")), str(check_id)))
    return frozenset(known)


def apply_baseline(report: CheckovReport, known: frozenset[tuple[str, str]]) -> CheckovReport:
    """Failures listed in the baseline become skipped checks with comment "baseline".

    Done here rather than with checkov's --baseline because checkov 3.3 then also drops every
    passed and inline-skipped check from its report, which would make the counts lie.
    """
    checks = tuple(
        replace(c, result="skipped", comment="baseline")
        if c.result == "failed" and (c.resource, c.check_id) in known else c
        for c in report.checks
    )
    return replace(report, checks=checks)


def checkov_findings(report: CheckovReport) -> list[Finding]:
    findings = [Finding(CHECKOV, c.check_id, "error", c.file, c.line,
                        f"{c.name} ({c.resource})" if c.resource else c.name)
                for c in report.with_result("failed")]
    findings += [Finding(CHECKOV, "parsing-error", "error", path.lstrip("/"), 0,
                         "checkov could not parse this file, so it was not checked; fix its syntax")
                 for path in report.parsing_errors]
    return findings


def unreasoned_skips(text: str, file: str) -> list[Finding]:
    """Inline `checkov:skip=` comments without a `:reason` (or naming no check)."""
    findings = []
    for number, line in enumerate(text.splitlines(), start=1):
        for match in _SKIP_RE.finditer(line):
            ids, reason = match.group(1), (match.group(2) or "")[1:].strip()
            if ids and reason:
                continue
            what = f"checkov:skip={ids}" if ids else "checkov:skip="
            problem = "names no check" if not ids else "has no reason"
            findings.append(Finding(
                CHECKOV, "skip-without-reason", "error", file, number,
                f"{what} {problem}; write #checkov:skip={ids or 'CKV_ID'}:<why this is acceptable>",
            ))
    return findings


# --- rendering ------------------------------------------------------------------------------

def findings_table(findings: Sequence[Finding], max_message: int = 110) -> str:
    from ..cli.report import table

    rows = []
    for f in findings:
        message = f.message if len(f.message) <= max_message else f.message[: max_message - 3] + "..."
        rows.append([f.tool, f.rule, f.severity, f.location or "-", message])
    return table(rows, ["TOOL", "RULE", "SEVERITY", "FILE:LINE", "MESSAGE"])


def summary_line(result: StageResult) -> str:
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.counts.items())
    return f"{result.stage} {result.status}: {counts} ({result.duration_s:.1f}s)"


def render_result(result: StageResult, exports: bool = True) -> str:
    """What a person reads: findings table, notices, one summary line, then (with `exports`, the
    CLI's --exports) the KEY=VALUE lines scripts read."""
    parts = []
    if result.findings:
        parts.append(findings_table(result.findings))
    parts += [f"note: {note}" for note in result.notes]
    parts.append(summary_line(result))
    if exports and result.exports:
        parts.append(result.export_lines())
    return "\n".join(parts)


# --- JUnit ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class JUnitCase:
    suite: str  # one <testsuite> per tool
    name: str
    classname: str
    file: str = ""
    line: int = 0
    failure: str | None = None
    skipped: str | None = None


def cases_for_findings(tool: str, findings: Iterable[Finding], *, ran: bool = True,
                       skipped_reason: str | None = None) -> list[JUnitCase]:
    """One failing case per finding; a tool that found nothing still shows up as one passing case,
    and a skipped tool as one skipped case, so a report never hides that a check did not run."""
    if skipped_reason is not None:
        return [JUnitCase(tool, f"{tool} (skipped)", tool, skipped=skipped_reason)]
    cases = [JUnitCase(tool, f"[{f.rule}] {f.location or '-'}", f.file or tool, f.file, f.line,
                       failure=f"{f.severity}: {f.message}")
             for f in findings if f.tool == tool]
    if not cases and ran:
        cases = [JUnitCase(tool, f"{tool}: no findings", tool)]
    return cases


def cases_for_checks(report: CheckovReport) -> list[JUnitCase]:
    cases = []
    for c in report.checks:
        cases.append(JUnitCase(
            CHECKOV, f"[{c.check_id}] {c.name}", f"{c.file}.{c.resource}", c.file, c.line,
            failure=(f"{c.check_id} failed on {c.resource} ({c.file}:{c.line})"
                     if c.result == "failed" else None),
            skipped=(c.comment or "skipped") if c.result == "skipped" else None,
        ))
    return cases


def junit_xml(cases: Sequence[JUnitCase]) -> str:
    import xml.etree.ElementTree as ET

    root = ET.Element("testsuites")
    suites: dict[str, list[JUnitCase]] = {}
    for case in cases:
        suites.setdefault(case.suite, []).append(case)
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for name, members in suites.items():
        failures = sum(c.failure is not None for c in members)
        skipped = sum(c.skipped is not None and c.failure is None for c in members)
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(members)),
                              failures=str(failures), errors="0", skipped=str(skipped))
        for c in members:
            attrs = {"name": c.name, "classname": c.classname}
            if c.file:
                attrs["file"] = c.file
            if c.line:
                attrs["line"] = str(c.line)
            element = ET.SubElement(suite, "testcase", attrs)
            if c.failure is not None:
                ET.SubElement(element, "failure", message=c.failure[:500]).text = c.failure
            elif c.skipped is not None:
                ET.SubElement(element, "skipped", message=c.skipped[:500])
        totals["tests"] += len(members)
        totals["failures"] += failures
        totals["skipped"] += skipped
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: Path, cases: Sequence[JUnitCase]) -> Path:
    write_atomic(path, junit_xml(cases))
    return path


def _load_json(text: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError(f"{what} did not print JSON") from None
    if not isinstance(data, dict):
        raise ValueError(f"{what} printed JSON that is not an object")
    return data
