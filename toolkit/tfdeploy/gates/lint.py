"""Lint stage on a Terraform root directory: terraform fmt, terraform validate, tflint.

Works on any directory; the `--tag` flow calls `run_lint` on the prepared work dir after
`terraform init`. Every sub-step either runs or says visibly why it did not: a stage never
passes because a tool silently did nothing.
"""

from __future__ import annotations

import os
import re
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

# `terraform init` errors that are downloads (provider registry, remote module source)...
_DOWNLOAD_ERRORS = (
    "Failed to query available provider packages",
    "Failed to install provider",
    "Failed to download module",
    "Error accessing remote module registry",
)
# ...and the causes that say the network, not the name, was the problem. Offline, a misspelled
# provider fails exactly like a real one, so such a skip names what could not be checked.
_NETWORK_CAUSES = re.compile(
    r"could not connect to|no such host|could not resolve host|dial tcp|connection refused|"
    r"i/o timeout|network is unreachable|tls handshake timeout|temporary failure in name resolution|"
    r"context deadline exceeded|connection reset|giving up after \d+ attempt|failed to connect to|"
    r"couldn't connect to server", re.IGNORECASE)
_PROVIDER_IN_DETAIL = re.compile(r"provider ((?:[\w.-]+/)?[\w.-]+/[\w.-]+)")
_MODULE_IN_DETAIL = re.compile(r'module "([^"]+)"')
_SOURCE_IN_DETAIL = re.compile(r'source code from\s+"([^"]+)"')
_LOCATION = re.compile(r"^\s*on (\S+) line (\d+)", re.MULTILINE)


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


def _init_errors(stderr: str) -> list[tuple[str, str]]:
    """(summary, body) of each `Error:` diagnostic in `terraform init -no-color` output (pure)."""
    text = "\n".join(re.sub(r"^[\u2502\u2577\u2575]\s?", "", line) for line in stderr.splitlines())
    parts = re.split(r"^(Error|Warning): (.*)$", text, flags=re.MULTILINE)
    # re.split with two groups: [before, kind, summary, body, kind, summary, body, ...]
    return [(parts[i + 1].strip(), parts[i + 2]) for i in range(1, len(parts) - 2, 3) if parts[i] == "Error"]


def _what_was_not_checked(body: str) -> str:
    provider = _PROVIDER_IN_DETAIL.search(body)
    if provider:
        return f"provider {provider.group(1)}"
    module = _MODULE_IN_DETAIL.search(body)
    source = _SOURCE_IN_DETAIL.search(" ".join(body.split()))
    if module:
        return f'module "{module.group(1)}"' + (f" ({source.group(1)})" if source else "")
    return "a download"


def init_failure_verdict(stderr: str) -> tuple[str | None, list[Finding]]:
    """What a failed `terraform init -backend=false` means for the lint stage (pure).

    (note, []) when every error is a provider or remote module download that could not reach the
    network: validate is skipped, the note naming what could not be checked. (None, findings)
    otherwise: a missing local module dir, invalid HCL, a duplicate block, a provider the registry
    says does not exist... are the configuration's own errors and fail the stage.
    """
    errors = _init_errors(stderr)
    # The banner Terraform puts before configuration errors is not itself an error.
    errors = [e for e in errors if not e[0].startswith("Terraform encountered problems during initiali")]
    unreachable = [body for summary, body in errors
                   if summary in _DOWNLOAD_ERRORS and _NETWORK_CAUSES.search(body)]
    if errors and len(unreachable) == len(errors):
        names = list(dict.fromkeys(_what_was_not_checked(body) for body in unreachable))
        return (f"validate skipped: the network is unreachable, so terraform init could not download "
                f"{', '.join(names)}; NOT checked (offline, a misspelled name fails the same way); to "
                "validate, make it installable here (providers: TFDEPLOY_PROVIDER_MIRROR or "
                "TF_PLUGIN_CACHE_DIR; modules: a local path)"), []
    findings = []
    for summary, body in errors or [("terraform init failed", stderr)]:
        location = _LOCATION.search(body)
        prose = " ".join(line.strip() for line in body.splitlines()
                         if line.strip() and not _LOCATION.match(line) and not re.match(r"^\s*\d+:", line))
        findings.append(Finding(VALIDATE, summary, "error", location.group(1) if location else "",
                                int(location.group(2)) if location else 0,
                                f"(init) {prose or summary}"))
    return None, findings


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
    init_failure: str | None = None,
) -> StageResult:
    """Run fmt, validate (when initialised: `initialised`, else `.terraform/` exists) and tflint in `workdir`; write lint.result.json.

    `init_failure` is the stderr of a failed `terraform init -backend=false`: a network-only
    failure skips validate visibly, any other makes the init errors validate findings.

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
    elif init_failure is not None:
        validate_skip, init_findings = init_failure_verdict(init_failure)
        findings += init_findings
        if validate_skip:
            notes.append(validate_skip)
    else:
        validate_skip = VALIDATE_SKIPPED
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
