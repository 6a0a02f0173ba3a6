"""Scan stage: checkov on a Terraform directory (or on a plan's JSON), with a per-env policy.

Policy: in an env listed in `soft_fail_envs` failed checks are reported and the stage passes;
elsewhere they fail it. Whatever the env, these always fail the stage, because each means a
check was switched off or never ran without anyone saying why:
  - an inline `#checkov:skip=CKV_X` without `:reason`,
  - a file checkov could not parse,
  - checkov itself failing to produce a report.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Collection, Iterator, Mapping, Sequence

from ..errors import ConfigError, ToolMissingError
from ..results import FAILED, PASSED, SKIPPED, Finding, StageResult, write_result
from .findings import (
    CHECKOV,
    CheckovReport,
    apply_baseline,
    cases_for_checks,
    cases_for_findings,
    checkov_findings,
    default_results_dir,
    parse_baseline,
    parse_checkov_json,
    unreasoned_skips,
    write_junit,
)
from .lint import check_workdir, terraform_files
from .tools import ENV_VARS, INSTALL_HINTS, fallback_text, find_tool, run_tool

STAGE, PLAN_STAGE = "scan", "scan-plan"
CHECKOV_CONFIGS = (".checkov.yaml", ".checkov.yml")
SOFT_FAIL, HARD_FAIL = "soft_fail", "hard_fail"


def policy_for(env: str | None, soft_fail_envs: Collection[str]) -> str:
    """Strict unless the env is explicitly listed: no env means hard fail."""
    return SOFT_FAIL if env is not None and env in soft_fail_envs else HARD_FAIL


def find_checkov_config(workdir: Path, repo_root: Path | None) -> Path | None:
    """`.checkov.yaml` of the scanned dir (for a tag: the tagged copy), else of the repo root."""
    for base in (workdir, repo_root):
        for name in CHECKOV_CONFIGS:
            if base is not None and (Path(base) / name).is_file():
                return (Path(base) / name).resolve()
    return None


def load_baseline(path: Path) -> frozenset[tuple[str, str]]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"checkov baseline {path} does not exist; create it with: checkov -d DIR "
                          "--framework terraform --skip-download --create-baseline") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"checkov baseline {path} is not readable JSON ({exc}); recreate it with "
                          "checkov --create-baseline") from None
    return parse_baseline(data, str(path))


def source_skip_findings(source_dir: Path) -> list[Finding]:
    """Unreasoned inline skips in the .tf files under `source_dir` (hidden dirs such as
    .terraform/ are other people's modules, so they are left out, as checkov does)."""
    findings: list[Finding] = []
    for path in terraform_files(source_dir):
        text = path.read_text(encoding="utf-8", errors="replace")
        findings += unreasoned_skips(text, path.relative_to(source_dir).as_posix())
    return findings


def evaluate_scan(
    stage: str,
    report: CheckovReport,
    *,
    env: str | None,
    soft_fail_envs: Collection[str],
    extra_findings: Sequence[Finding] = (),
    baseline: Path | None = None,
    export_prefix: str = "CHECKOV",
    status_key: str = "SCAN_STATUS",
    duration_s: float = 0.0,
    notes: Sequence[str] = (),
) -> StageResult:
    """Apply the env's policy to a (baseline-reduced) checkov report (pure)."""
    policy = policy_for(env, soft_fail_envs)
    counts = report.counts
    reported = checkov_findings(report)
    check_failures = [f for f in reported if f.rule != "parsing-error"]
    # Never subject to soft fail: each means a check did not run or was switched off silently.
    always_fail = [f for f in reported if f.rule == "parsing-error"] + list(extra_findings)
    status = FAILED if always_fail or (check_failures and policy == HARD_FAIL) else PASSED
    if policy == SOFT_FAIL:
        # Shown as warnings so the table agrees with the passing status.
        check_failures = [replace(f, severity="warning") for f in check_failures]
    findings = [*check_failures, *always_fail]

    baselined = sum(c.comment == "baseline" for c in report.with_result("skipped"))
    unreasoned = sum(f.rule == "skip-without-reason" for f in extra_findings)
    notes = list(notes)
    if check_failures and policy == SOFT_FAIL:
        notes.append(f"soft fail in env {env}: {len(check_failures)} failed checks are reported but do "
                     "not fail the stage (env is in scan_soft_fail_envs)")
    if not report.checks and not report.parsing_errors and not extra_findings:
        notes.append("checkov checked nothing: no Terraform resources found")
    if baseline is not None:
        notes.append(f"baseline {baseline}: {baselined} known failures counted as skipped")
    if unreasoned:
        notes.append(f"{unreasoned} inline skips without a reason: write #checkov:skip=CKV_ID:<reason>")
    stage_counts = {**counts, "baselined": baselined, "skips_without_reason": unreasoned,
                    "parsing_errors": len(report.parsing_errors)}
    exports = {
        f"{export_prefix}_PASSED": str(counts["passed"]),
        f"{export_prefix}_FAILED": str(counts["failed"]),
        f"{export_prefix}_SKIPPED": str(counts["skipped"]),
        f"{export_prefix}_BASELINED": str(baselined),
        f"{export_prefix}_SKIPS_WITHOUT_REASON": str(unreasoned),
        f"{export_prefix}_POLICY": policy,
        status_key: status,
    }
    return StageResult(stage, status, duration_s, stage_counts, {CHECKOV: report.version},
                       tuple(findings), exports, tuple(notes))


def _missing(stage: str, allow_missing: Collection[str], results_dir: Path, started: float,
             status_key: str, environ: Mapping[str, str]) -> StageResult:
    message = f"checkov not found (looked at ${ENV_VARS['checkov']}, PATH{fallback_text('checkov', environ)}); " \
              f"{INSTALL_HINTS['checkov']}"
    duration = round(time.monotonic() - started, 3)
    if "checkov" not in allow_missing:
        write_result(StageResult(stage, FAILED, duration, {}, {CHECKOV: "missing"},
                                 exports={status_key: FAILED}, notes=(message,)), results_dir)
        raise ToolMissingError(message)
    skipped = StageResult(stage, SKIPPED, duration, {"skipped_tools": 1}, {CHECKOV: "missing"},
                          exports={status_key: SKIPPED},
                          notes=("checkov skipped: not installed (--allow-missing checkov); "
                                 "no security checks ran",))
    write_result(skipped, results_dir)
    return skipped


def _run_checkov(checkov: str, target_args: list[str], framework: str, cwd: Path, out_dir: Path,
                 config_file: Path | None, environ: Mapping[str, str]) -> CheckovReport | Finding:
    """Run checkov; its JSON report, or a Finding saying why there is none."""
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / "results_json.json"
    # A report left by an earlier run must not be mistaken for this run's.
    for stale in (report_path, out_dir / "results_junitxml.xml"):
        stale.unlink(missing_ok=True)
    argv = [checkov, *target_args, "--framework", framework, "--skip-download",
            "-o", "json", "-o", "junitxml", "--output-file-path", str(out_dir)]
    if config_file is not None:
        argv += ["--config-file", str(config_file)]
    # Exit status is not used for the verdict (the policy is ours); 0/1 both mean "report written".
    proc = run_tool(argv, cwd, environ)
    try:
        return parse_checkov_json(json.loads(report_path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else "(no output)"
        if "hcl2" in reason and ("ImportError" in reason or "AttributeError" in reason):
            # python-hcl2 was installed after checkov and replaced its bc-python-hcl2 module.
            reason += (f"; checkov's hcl2 module was replaced by python-hcl2 in {checkov}'s environment: "
                       "run `tfdeploy tools install checkov` (a venv of its own) and use that, or "
                       "reinstall bc-python-hcl2 there (tfdeploy works with either hcl2)")
        return Finding(CHECKOV, "checkov-error", "error", "", 0,
                       f"checkov produced no report (exit {proc.returncode}): {reason}")


def _scan(
    stage: str,
    target_args: list[str],
    framework: str,
    *,
    cwd: Path,
    source_dir: Path | None,
    repo_root: Path | None,
    env: str | None,
    soft_fail_envs: Collection[str],
    baseline: Path | None,
    config_file: Path | None,
    allow_missing: Collection[str],
    environ: Mapping[str, str] | None,
    results_dir: Path,
    junit_path: Path | None,
    export_prefix: str,
    status_key: str,
    notes: Sequence[str] = (),
) -> StageResult:
    started = time.monotonic()
    environ = os.environ if environ is None else environ
    if config_file is not None and not Path(config_file).is_file():
        raise ConfigError(f"checkov config {config_file} does not exist; fix the path or drop it")
    known = load_baseline(Path(baseline)) if baseline is not None else None
    checkov = find_tool("checkov", environ, repo_root)
    if checkov is None:
        return _missing(stage, allow_missing, results_dir, started, status_key, environ)
    config = Path(config_file).resolve() if config_file else find_checkov_config(cwd, repo_root)

    outcome = _run_checkov(checkov, target_args, framework, cwd, results_dir / stage, config, environ)
    extra: list[Finding] = []
    if isinstance(outcome, Finding):
        extra.append(outcome)
        report = CheckovReport()
    else:
        report = apply_baseline(outcome, known) if known is not None else outcome
    if source_dir is not None:
        extra += source_skip_findings(Path(source_dir))

    result = evaluate_scan(stage, report, env=env, soft_fail_envs=soft_fail_envs, extra_findings=extra,
                           baseline=baseline, export_prefix=export_prefix, status_key=status_key,
                           duration_s=round(time.monotonic() - started, 3),
                           notes=[*notes, *([f"checkov config: {config}"] if config else [])])
    write_result(result, results_dir)
    if junit_path is not None:
        cases = cases_for_checks(report) + cases_for_findings(CHECKOV, extra, ran=False)
        write_junit(Path(junit_path), cases or cases_for_findings(CHECKOV, []))
    return result


def run_scan(
    workdir: Path,
    *,
    target: str | None = None,
    repo_root: Path | None = None,
    env: str | None = None,
    soft_fail_envs: Collection[str] = (),
    baseline: Path | None = None,
    config_file: Path | None = None,
    allow_missing: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
    results_dir: Path | None = None,
    junit_path: Path | None = None,
) -> StageResult:
    """checkov on the Terraform in `workdir`; writes scan.result.json (and checkov's raw
    results_json.json / results_junitxml.xml under `<results_dir>/scan/`, before any baseline).

    `target`: a tag's module namespace (the deployment's target_module): only what that cell
    deploys is scanned (gates/scope.py); None scans the whole directory. `config_file` defaults to
    `.checkov.yaml` in `workdir`, else in `repo_root`. Raises ToolMissingError (exit 3) when
    checkov is missing, unless "checkov" is in `allow_missing` (then a visible skip).
    """
    workdir = check_workdir(workdir)
    results_dir = Path(results_dir) if results_dir else default_results_dir(workdir)
    if config_file is None and target is not None:
        config_file = find_checkov_config(workdir, repo_root)
    with _scanned_tree(workdir, target) as (tree, notes):
        return _scan(STAGE, ["-d", str(tree)], "terraform", cwd=tree, source_dir=tree,
                     repo_root=repo_root, env=env, soft_fail_envs=soft_fail_envs, baseline=baseline,
                     config_file=config_file, allow_missing=allow_missing, environ=environ,
                     results_dir=results_dir, junit_path=junit_path, export_prefix="CHECKOV",
                     status_key="SCAN_STATUS", notes=notes)


@contextmanager
def _scanned_tree(workdir: Path, target: str | None) -> Iterator[tuple[Path, list[str]]]:
    """The tree checkov reads: the cell's scope of `workdir` (a copy), or `workdir` itself."""
    if target is None:
        yield workdir, []
        return
    from .scope import scan_scope, scoped_tree

    scope = scan_scope(workdir, target)
    with scoped_tree(workdir, scope) as tree:
        yield tree, [scope.note()]


def scan_plan(
    plan_json_path: Path,
    *,
    source_dir: Path | None = None,
    target: str | None = None,
    repo_root: Path | None = None,
    env: str | None = None,
    soft_fail_envs: Collection[str] = (),
    baseline: Path | None = None,
    config_file: Path | None = None,
    allow_missing: Collection[str] = (),
    environ: Mapping[str, str] | None = None,
    results_dir: Path | None = None,
    junit_path: Path | None = None,
) -> StageResult:
    """checkov on `terraform show -json` output (resolved values: catches what only the plan
    knows, e.g. a bucket name from a variable). Writes scan-plan.result.json.

    `source_dir` (the work dir the plan came from) lets checkov map results back to .tf lines
    and honour inline skips, and is checked for skips without a reason; with `target` (the tag's
    namespace), only its scope of it (gates/scope.py), as run_scan.
    """
    plan_json_path = Path(plan_json_path).resolve()
    if not plan_json_path.is_file():
        raise ConfigError(f"plan JSON {plan_json_path} does not exist; write it with: "
                          "terraform show -json PLANFILE > plan.json")
    base = check_workdir(source_dir) if source_dir else plan_json_path.parent
    results_dir = Path(results_dir) if results_dir else default_results_dir(base)
    if source_dir is None:
        target = None
    if config_file is None and target is not None:
        config_file = find_checkov_config(base, repo_root)
    with _scanned_tree(base, target) as (tree, notes):
        target_args = ["-f", str(plan_json_path)]
        if source_dir is not None:
            target_args += ["--repo-root-for-plan-enrichment", str(tree)]
        return _scan(PLAN_STAGE, target_args, "terraform_plan", cwd=tree,
                     source_dir=tree if source_dir is not None else None, repo_root=repo_root, env=env,
                     soft_fail_envs=soft_fail_envs, baseline=baseline, config_file=config_file,
                     allow_missing=allow_missing, environ=environ, results_dir=results_dir,
                     junit_path=junit_path, export_prefix="CHECKOV_PLAN", status_key="PLAN_SCAN_STATUS",
                     notes=notes)
