"""Scan stage against the real checkov (offline, --skip-download).

checkov takes ~3 s per run, so each fixture is scanned once in a module-scoped fixture and the
tests below only read what that run produced.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from tfdeploy.errors import ToolMissingError
from tfdeploy.gates.scan import run_scan

from .conftest import copy_fixture, export_lines, invoke, make_repo


@dataclass
class CliRun:
    exit_code: int
    stdout: str
    output: str
    results_dir: Path
    junit: Path

    @property
    def exports(self) -> dict[str, str]:
        return export_lines(self.stdout)

    @property
    def saved(self) -> dict:
        return json.loads((self.results_dir / "scan.result.json").read_text())


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("scan") / "repo", "public_bucket", "hardened_bucket",
                     "skip_with_reason", "skip_without_reason", "plan")


def _scan_cli(repo: Path, tool_env: dict[str, str], fixture: str, env: str, *extra: str) -> CliRun:
    out = repo / f".out-{fixture}-{env}"
    junit, results = out / "checkov.xml", out / "results"
    result = invoke(["scan", "--dir", str(repo / fixture), "--env", env, "--junit", str(junit),
                     "--results-dir", str(results), "--exports", *extra], tool_env)
    return CliRun(result.exit_code, result.stdout, result.output, results, junit)


@pytest.fixture(scope="module")
def scans(repo, tool_env, checkov_bin, tmp_path_factory) -> dict:
    """Every real checkov run of this module, started once. The library scans run in two worker
    threads while the CLI scans run here in the main thread (CliRunner swaps sys.stdout, so CLI
    runs must not overlap each other; the library never prints, so it can overlap them)."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = {
        "hardened": lambda: run_scan(repo / "hardened_bucket", repo_root=repo, env="prod",
                                     soft_fail_envs=["dev"], environ=tool_env),
        "skip_with_reason": lambda: run_scan(repo / "skip_with_reason", repo_root=repo, env="prod",
                                             environ=tool_env),
        # dev is a soft-fail env: the missing reason must fail the stage anyway.
        "skip_without_reason": lambda: run_scan(repo / "skip_without_reason", repo_root=repo, env="dev",
                                                soft_fail_envs=["dev"], environ=tool_env),
        "baselined": lambda: _baseline_scan(repo, tool_env, checkov_bin, tmp_path_factory),
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        done = {
            "public_prod": _scan_cli(repo, tool_env, "public_bucket", "prod"),
            "public_dev": _scan_cli(repo, tool_env, "public_bucket", "dev"),
            "plan": _scan_cli(repo, tool_env, "plan", "prod", "--plan", str(repo / "plan" / "plan.json")),
        }
        return {**done, **{name: future.result() for name, future in futures.items()}}


@pytest.fixture(scope="module")
def public_prod(scans) -> CliRun:
    return scans["public_prod"]


@pytest.fixture(scope="module")
def public_dev(scans) -> CliRun:
    return scans["public_dev"]


# --- public bucket: hard fail in prod, soft fail in dev ---

def test_public_bucket_fails_in_prod(public_prod):
    assert public_prod.exit_code == 1, public_prod.output
    exports = public_prod.exports
    assert int(exports["CHECKOV_FAILED"]) > 0 and int(exports["CHECKOV_PASSED"]) > 0
    assert exports["CHECKOV_SKIPPED"] == "0"
    assert exports["CHECKOV_POLICY"] == "hard_fail" and exports["SCAN_STATUS"] == "failed"
    # The public-access-block check, with file:line, in the findings table.
    row = next(line for line in public_prod.stdout.splitlines() if "CKV_AWS_53" in line)
    assert row.split()[:4] == ["checkov", "CKV_AWS_53", "error", "main.tf:7"]
    assert "scan failed:" in public_prod.stdout


def test_exports_are_the_last_stdout_lines(public_prod):
    lines = public_prod.stdout.rstrip("\n").splitlines()
    assert [line.split("=")[0] for line in lines[-7:]] == [
        "CHECKOV_PASSED", "CHECKOV_FAILED", "CHECKOV_SKIPPED", "CHECKOV_BASELINED",
        "CHECKOV_SKIPS_WITHOUT_REASON", "CHECKOV_POLICY", "SCAN_STATUS"]


def test_public_bucket_soft_fails_in_dev(public_dev, public_prod):
    assert public_dev.exit_code == 0, public_dev.output
    assert public_dev.exports["CHECKOV_FAILED"] == public_prod.exports["CHECKOV_FAILED"]
    assert public_dev.exports["CHECKOV_POLICY"] == "soft_fail"
    assert public_dev.exports["SCAN_STATUS"] == "passed"
    assert "note: soft fail in env dev" in public_dev.stdout
    row = next(line for line in public_dev.stdout.splitlines() if "CKV_AWS_53" in line)
    assert row.split()[2] == "warning"


def test_result_file_has_counts_duration_and_version(public_prod):
    saved = public_prod.saved
    assert saved["stage"] == "scan" and saved["status"] == "failed"
    assert saved["counts"]["failed"] == int(public_prod.exports["CHECKOV_FAILED"])
    assert saved["duration_s"] > 0
    assert saved["tools"]["checkov"].startswith("3.")
    assert saved["exports"]["SCAN_STATUS"] == "failed"
    assert {f["rule"] for f in saved["findings"]} >= {"CKV_AWS_53", "CKV_AWS_20"}
    # checkov's own reports are kept next to it.
    assert (public_prod.results_dir / "scan" / "results_json.json").is_file()
    assert (public_prod.results_dir / "scan" / "results_junitxml.xml").is_file()


def test_junit_has_one_case_per_check(public_prod):
    root = ET.parse(public_prod.junit).getroot()
    [suite] = root.iter("testsuite")
    exports = public_prod.exports
    assert suite.get("name") == "checkov"
    assert int(suite.get("tests")) == int(exports["CHECKOV_PASSED"]) + int(exports["CHECKOV_FAILED"])
    assert suite.get("failures") == exports["CHECKOV_FAILED"]
    failed = [case.get("name") for case in suite if case.find("failure") is not None]
    assert any(name.startswith("[CKV_AWS_53]") for name in failed)


# --- hardened bucket ---

@pytest.fixture(scope="module")
def hardened(scans):
    return scans["hardened"]


def test_hardened_bucket_passes_in_prod(hardened):
    assert hardened.status == "passed", hardened.findings
    assert hardened.counts["failed"] == 0 and hardened.counts["skipped"] == 0
    assert hardened.counts["passed"] > 10
    assert hardened.exports["SCAN_STATUS"] == "passed"


# --- baseline ---

def _baseline_scan(repo, tool_env, checkov_bin, tmp_path_factory):
    """A baseline of the public bucket's findings, then a new bucket added after it."""
    workdir = copy_fixture("public_bucket", tmp_path_factory.mktemp("baseline") / "public")
    subprocess.run([checkov_bin, "-d", str(workdir), "--framework", "terraform", "--skip-download",
                    "--create-baseline", "-o", "json", "--output-file-path", str(workdir.parent / "out")],
                   check=False, capture_output=True, env=tool_env)
    baseline = workdir.parent / "checkov.baseline"
    (workdir / ".checkov.baseline").rename(baseline)
    known = json.loads(baseline.read_text())
    (workdir / "new.tf").write_text('resource "aws_s3_bucket" "added_later" {\n  bucket = "new"\n}\n')
    result = run_scan(workdir, repo_root=repo, env="prod", baseline=baseline, environ=tool_env)
    return known, result


@pytest.fixture(scope="module")
def baselined(scans):
    return scans["baselined"]


def test_baseline_accepts_existing_findings_but_not_new_ones(baselined):
    known, result = baselined
    known_count = sum(len(f["check_ids"]) for entry in known["failed_checks"] for f in entry["findings"])
    assert known_count > 0
    assert result.counts["baselined"] == known_count
    assert result.exports["CHECKOV_BASELINED"] == str(known_count)
    # Only the bucket added after the baseline still fails (and so fails prod).
    assert result.findings
    assert {f.message.rsplit("(", 1)[1] for f in result.findings} == {"aws_s3_bucket.added_later)"}
    assert result.status == "failed"
    assert result.counts["passed"] > 0  # passes are still counted under a baseline
    assert any(note.startswith("baseline ") for note in result.notes)


def test_missing_baseline_file_is_a_usage_error(repo, tool_env):
    result = invoke(["scan", "--dir", str(repo / "hardened_bucket"), "--baseline",
                     str(repo / "nope.baseline")], tool_env)
    assert result.exit_code == 2
    assert "baseline" in result.output and "--create-baseline" in result.output
    assert result.output.count("\n") == 1


# --- inline skips ---

@pytest.fixture(scope="module")
def skip_with_reason(scans):
    return scans["skip_with_reason"]


@pytest.fixture(scope="module")
def skip_without_reason(scans):
    return scans["skip_without_reason"]


def test_inline_skip_with_reason_passes(skip_with_reason):
    assert skip_with_reason.status == "passed", skip_with_reason.findings
    assert skip_with_reason.counts["skipped"] == 1 and skip_with_reason.counts["failed"] == 0
    assert skip_with_reason.exports["CHECKOV_SKIPS_WITHOUT_REASON"] == "0"


def test_inline_skip_without_reason_fails_even_in_soft_env(skip_without_reason):
    result = skip_without_reason
    assert result.status == "failed"
    assert result.counts["failed"] == 0 and result.counts["skipped"] == 1  # checkov itself skipped it
    [finding] = result.findings
    assert (finding.rule, finding.location) == ("skip-without-reason", "main.tf:4")
    assert "CKV_AWS_18" in finding.message
    assert result.exports["CHECKOV_SKIPS_WITHOUT_REASON"] == "1"


# --- plan JSON ---

def test_plan_scan_uses_the_terraform_plan_framework(scans):
    plan = scans["plan"]
    assert plan.exit_code == 1, plan.output
    exports = plan.exports
    assert int(exports["CHECKOV_PLAN_FAILED"]) >= 1 and exports["PLAN_SCAN_STATUS"] == "failed"
    saved = json.loads((plan.results_dir / "scan-plan.result.json").read_text())
    assert "CKV_AWS_53" in {f["rule"] for f in saved["findings"]}


# --- checkov missing (no checkov run) ---

@pytest.fixture
def no_checkov_env(tool_env, tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    return {**tool_env, "PATH": str(empty), "TFDEPLOY_CHECKOV": None}


def test_missing_checkov_exits_3_with_one_line(repo, no_checkov_env, tmp_path):
    # --repo is a repo without .venv-checkov, so there is no fallback either.
    bare = make_repo(tmp_path / "bare", "hardened_bucket")
    result = invoke(["scan", "--dir", str(bare / "hardened_bucket")], no_checkov_env)
    assert result.exit_code == 3
    assert result.output.startswith("tfdeploy: error: checkov not found") and result.output.count("\n") == 1
    env = {k: v for k, v in no_checkov_env.items() if v is not None}
    with pytest.raises(ToolMissingError):
        run_scan(bare / "hardened_bucket", repo_root=bare, environ=env)


def test_allow_missing_checkov_is_a_visible_skip(no_checkov_env, tmp_path):
    bare = make_repo(tmp_path / "bare", "hardened_bucket")
    result = invoke(["scan", "--dir", str(bare / "hardened_bucket"), "--allow-missing", "checkov", "--exports"],
                    no_checkov_env)
    assert result.exit_code == 0
    assert "note: checkov skipped: not installed" in result.stdout
    assert export_lines(result.stdout) == {"SCAN_STATUS": "skipped"}


def test_unknown_env_is_a_usage_error(repo, tool_env):
    result = invoke(["scan", "--dir", str(repo / "hardened_bucket"), "--env", "prd"], tool_env)
    assert result.exit_code == 2 and "--env prd is not one of the configured environments" in result.output


def test_checkov_crash_without_report_fails_the_stage(repo, tool_env, tmp_path):
    """A checkov that dies before writing its report (a stand-in script, not checkov) must not
    read as a clean scan."""
    crashing = tmp_path / "checkov"
    crashing.write_text("#!/bin/sh\necho 'Traceback (most recent call last):' >&2\n"
                        "echo 'ImportError: cannot import name hcl2' >&2\nexit 2\n")
    crashing.chmod(0o755)
    result = run_scan(repo / "hardened_bucket", repo_root=repo, env="dev", soft_fail_envs=["dev"],
                      environ={**tool_env, "TFDEPLOY_CHECKOV": str(crashing)},
                      results_dir=tmp_path / "results")
    assert result.status == "failed"
    [finding] = result.findings
    assert finding.rule == "checkov-error"
    assert finding.message.startswith("checkov produced no report (exit 2): ImportError: cannot import name hcl2")
    # an hcl2 import error is the python-hcl2-over-bc-python-hcl2 clash: say how to get out of it
    assert "tfdeploy tools install checkov" in finding.message


def test_checkov_arguments(tmp_path):
    """The exact checkov command line, seen by a recording stand-in (not checkov) that writes an
    empty report where checkov would."""
    repo = make_repo(tmp_path / "repo", "hardened_bucket")
    (repo / ".checkov.yaml").write_text("compact: true\n")
    log = tmp_path / "argv.json"
    stand_in = tmp_path / "checkov"
    stand_in.write_text(
        f'#!{sys.executable}\n'
        "import json, os, sys\n"
        f"json.dump(sys.argv[1:], open({str(log)!r}, 'w'))\n"
        "out = sys.argv[sys.argv.index('--output-file-path') + 1]\n"
        "json.dump({'passed': 0, 'failed': 0, 'skipped': 0, 'checkov_version': '9.9.9'},\n"
        "          open(os.path.join(out, 'results_json.json'), 'w'))\n")
    stand_in.chmod(0o755)
    workdir = repo / "hardened_bucket"
    result = run_scan(workdir, repo_root=repo, environ={**os.environ, "TFDEPLOY_CHECKOV": str(stand_in)})
    out = workdir.resolve() / ".tfdeploy-results" / "scan"
    assert json.loads(log.read_text()) == [
        "-d", str(workdir.resolve()), "--framework", "terraform", "--skip-download",
        "-o", "json", "-o", "junitxml", "--output-file-path", str(out),
        "--config-file", str((repo / ".checkov.yaml").resolve())]
    assert result.tools == {"checkov": "9.9.9"}
    assert f"checkov config: {(repo / '.checkov.yaml').resolve()}" in result.notes
    assert any("checked nothing" in note for note in result.notes)
