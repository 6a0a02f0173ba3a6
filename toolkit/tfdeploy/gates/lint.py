"""Lint stage on a Terraform root directory: terraform fmt, terraform validate, tflint.

Works on any directory; the `--tag` flow calls `run_lint` on the prepared work dir after
`terraform init`. Every sub-step either runs or says visibly why it did not: a stage never
passes because a tool silently did nothing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Collection, Mapping

from ..errors import ToolMissingError, ValidationError
from ..results import FAILED, PASSED, SKIPPED, Finding, StageResult, write_result
from .findings import (
    FMT,
    TFLINT,
    VALIDATE,
    JUnitCase,
    cases_for_findings,
    default_results_dir,
    parse_fmt_list,
    parse_terraform_diagnostics,
    parse_tflint_json,
    parse_validate_json,
    write_junit,
)
from .tools import ENV_VARS, INSTALL_HINTS, find_tool, require_tool, run_tool, tool_version

STAGE = "lint"
TFLINT_CONFIG = ".tflint.hcl"
VALIDATE_SKIPPED = "validate skipped: work dir not initialised (run init first)"


def terraform_files(root: Path) -> list[Path]:
    """The .tf files under `root`, leaving out hidden dirs (.terraform/ holds downloaded modules;
    terraform fmt, tflint and checkov skip them too)."""
    found = []
    for base, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(base) / name for name in sorted(files) if name.endswith(".tf")]
    return found


def check_workdir(workdir: Path) -> Path:
    workdir = Path(workdir).resolve()
    if not workdir.is_dir():
        raise ValidationError(f"{workdir} is not a directory; pass the Terraform root directory to check")
    return workdir


def fails_lint(finding: Finding) -> bool:
    """Errors always fail; tflint warnings fail too (tflint's own default). Terraform's warnings
    (deprecations) and tflint notices are reported without failing the stage."""
    return finding.severity == "error" or (finding.tool == TFLINT and finding.severity == "warning")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def run_fmt(workdir: Path, terraform: str, environ: Mapping[str, str]) -> list[Finding]:
    proc = run_tool([terraform, "fmt", "-check", "-recursive", "-list=true", "-no-color"], workdir, environ)
    if proc.returncode == 0:
        return []
    findings = parse_fmt_list(proc.stdout)
    if proc.returncode != 3:  # 3 = files need formatting; anything else is a failure to read them
        findings += parse_terraform_diagnostics(proc.stderr, FMT) or [
            Finding(FMT, "fmt-failed", "error", "", 0,
                    f"terraform fmt failed (exit {proc.returncode}): {_last_line(proc.stderr)}")]
    return findings


def run_validate(workdir: Path, terraform: str, environ: Mapping[str, str]) -> list[Finding]:
    proc = run_tool([terraform, "validate", "-json", "-no-color"], workdir, environ)
    try:
        findings = parse_validate_json(proc.stdout)
    except ValueError:
        return [Finding(VALIDATE, "validate-failed", "error", "", 0,
                        f"terraform validate failed (exit {proc.returncode}): {_last_line(proc.stderr)}")]
    if proc.returncode != 0 and not any(f.severity == "error" for f in findings):
        findings.append(Finding(VALIDATE, "validate-failed", "error", "", 0,
                                f"terraform validate exited {proc.returncode}: {_last_line(proc.stderr)}"))
    return findings


def run_tflint(workdir: Path, tflint: str, config: Path | None,
               environ: Mapping[str, str]) -> list[Finding]:
    config_args = ["--config", str(config)] if config else []
    # --init installs the plugins the config names; it needs the same --config to find them.
    init = run_tool([tflint, "--init", *config_args], workdir, environ)
    if init.returncode != 0:
        return [Finding(TFLINT, "tflint-init", "error", str(config or ""), 0,
                        f"tflint --init failed (exit {init.returncode}): "
                        f"{_last_line(init.stderr or init.stdout)}; check access to the plugin "
                        "sources in .tflint.hcl or set TFLINT_PLUGIN_DIR")]
    proc = run_tool([tflint, "--recursive", "--format", "json", *config_args], workdir, environ)
    try:
        return parse_tflint_json(proc.stdout)
    except ValueError:
        return [Finding(TFLINT, "tflint-failed", "error", "", 0,
                        f"tflint printed no JSON report (exit {proc.returncode}): "
                        f"{_last_line(proc.stderr or proc.stdout)}")]


def find_tflint_config(workdir: Path, repo_root: Path | None) -> Path | None:
    """The .tflint.hcl to use, absolute (tflint --recursive resolves a relative --config per module).

    The work dir's own copy wins: for a tag it is the config committed with the tagged code, so a
    later change to the repo's rules cannot change the verdict on an old tag."""
    for base in (workdir, repo_root):
        if base is not None and (Path(base) / TFLINT_CONFIG).is_file():
            return (Path(base) / TFLINT_CONFIG).resolve()
    return None


def run_lint(
    workdir: Path,
    *,
    repo_root: Path | None = None,
    allow_missing: Collection[str] = (),
    tflint_config: Path | None = None,
    environ: Mapping[str, str] | None = None,
    results_dir: Path | None = None,
    junit_path: Path | None = None,
    initialised: bool | None = None,
    validate_skip_reason: str | None = None,
) -> StageResult:
    """Run fmt, validate (when initialised: `initialised`, else `.terraform/` exists) and tflint in `workdir`; write lint.result.json.

    Raises ToolMissingError (exit 3) when tflint is missing and not in `allow_missing`, after
    writing a failed result so pipelines still find one.
    """
    started = time.monotonic()
    workdir = check_workdir(workdir)
    environ = os.environ if environ is None else environ
    results_dir = Path(results_dir) if results_dir else default_results_dir(workdir)
    notes: list[str] = []
    tools: dict[str, str] = {}

    terraform = require_tool("terraform", environ, repo_root)
    tools["terraform"] = tool_version(terraform, environ)
    # Resolved before running anything: a missing linter should fail in a second, not after fmt.
    tflint = find_tool("tflint", environ, repo_root)
    tflint_skip: str | None = None
    if tflint is None:
        message = f"tflint not found (looked at ${ENV_VARS['tflint']}, PATH); {INSTALL_HINTS['tflint']}"
        if "tflint" not in allow_missing:
            failed = StageResult(STAGE, FAILED, round(time.monotonic() - started, 3), {"findings": 0},
                                 {**tools, "tflint": "missing"}, exports={"LINT_STATUS": FAILED,
                                                                          "TFLINT_STATUS": "missing"},
                                 notes=(message,))
            write_result(failed, results_dir)
            raise ToolMissingError(message)
        tflint_skip = "tflint skipped: not installed (--allow-missing tflint); no tflint rules were checked"
        notes.append(tflint_skip)
        tools["tflint"] = "missing"
    else:
        tools["tflint"] = tool_version(tflint, environ)

    if not terraform_files(workdir):
        notes.append(f"no .tf files in {workdir}: nothing was linted")
    findings = run_fmt(workdir, terraform, environ)

    validate_skip: str | None = None
    ready = (workdir / ".terraform").is_dir() if initialised is None else initialised
    if ready:
        findings += run_validate(workdir, terraform, environ)
    else:
        validate_skip = validate_skip_reason or VALIDATE_SKIPPED
        notes.append(validate_skip)

    if tflint is not None:
        config = Path(tflint_config).resolve() if tflint_config else find_tflint_config(workdir, repo_root)
        if config is None:
            notes.append(f"no {TFLINT_CONFIG} in the work dir or repo root: "
                         "tflint ran with its default rules only")
        findings += run_tflint(workdir, tflint, config, environ)

    by_tool = {tool: [f for f in findings if f.tool == tool] for tool in (FMT, VALIDATE, TFLINT)}
    status = FAILED if any(fails_lint(f) for f in findings) else PASSED

    def tool_status(tool: str, skipped: str | None) -> str:
        if skipped:
            return SKIPPED
        return FAILED if any(fails_lint(f) for f in by_tool[tool]) else PASSED

    counts = {
        "findings": len(findings),
        "fmt_unformatted": sum(f.rule == "unformatted" for f in by_tool[FMT]),
        "validate_errors": sum(f.severity == "error" for f in by_tool[VALIDATE]),
        "validate_warnings": sum(f.severity == "warning" for f in by_tool[VALIDATE]),
        "tflint_issues": len(by_tool[TFLINT]),
        "skipped": (validate_skip is not None) + (tflint_skip is not None),
    }
    exports = {
        "LINT_STATUS": status,
        "LINT_FINDINGS": str(len(findings)),
        "FMT_UNFORMATTED": str(counts["fmt_unformatted"]),
        "VALIDATE_STATUS": tool_status(VALIDATE, validate_skip),
    }
    if validate_skip is None:
        exports["VALIDATE_ERRORS"] = str(counts["validate_errors"])
    exports["TFLINT_STATUS"] = tool_status(TFLINT, tflint_skip)
    # No TFLINT_ISSUES when tflint did not run: "0" would read as a clean lint.
    if tflint_skip is None:
        exports["TFLINT_ISSUES"] = str(counts["tflint_issues"])

    result = StageResult(STAGE, status, round(time.monotonic() - started, 3), counts, tools,
                         tuple(findings), exports, tuple(notes))
    write_result(result, results_dir)
    if junit_path is not None:
        cases: list[JUnitCase] = []
        cases += cases_for_findings(FMT, findings)
        cases += cases_for_findings(VALIDATE, findings, skipped_reason=validate_skip)
        cases += cases_for_findings(TFLINT, findings, skipped_reason=tflint_skip)
        write_junit(Path(junit_path), cases)
    return result
