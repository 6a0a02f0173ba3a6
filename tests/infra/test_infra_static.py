"""The static tools the pipeline's first stages run, over this repo's Terraform: fmt and checkov.

checkov scans a copy of the root composition and modules/ (examples included), so files other
parts of the repo may hold (test fixtures, virtualenvs) never leak into the result.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from infra_support import MODULES, REPO, run_terraform

SKIP_COMMENT = re.compile(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")
CHECK_ID = re.compile(r"^CKV2?_AWS_\d+$")
MIN_REASON = 30


def terraform_sources() -> list[Path]:
    return sorted(REPO.glob("*.tf")) + sorted(MODULES.rglob("*.tf"))


# --- terraform fmt ----------------------------------------------------------------------------


@pytest.mark.parametrize("target,recursive", [(".", False), ("modules", True), ("envs", True)])
def test_terraform_fmt_is_clean(terraform_bin, target, recursive):
    args = ["fmt", "-check", "-list=true", "-no-color"] + (["-recursive"] if recursive else []) + [target]
    proc = run_terraform(terraform_bin, args, REPO)
    assert proc.returncode == 0, f"terraform fmt would change:\n{proc.stdout}{proc.stderr}"


def test_fmt_check_catches_bad_formatting(terraform_bin, tmp_path):
    # Guards the check above against silently checking nothing.
    (tmp_path / "bad.tf").write_text('variable "x" {\ntype=string\n}\n', encoding="utf-8")
    proc = run_terraform(terraform_bin, ["fmt", "-check", "-list=true", "-no-color", "."], tmp_path)
    assert proc.returncode == 3 and "bad.tf" in proc.stdout


# --- checkov ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_report(checkov_bin, tmp_path_factory) -> dict:
    scan = tmp_path_factory.mktemp("checkov")
    for path in terraform_sources():
        dest = scan / path.relative_to(REPO)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dest)
    proc = subprocess.run(
        [checkov_bin, "--directory", str(scan), "--framework", "terraform", "--skip-download",
         "--compact", "--output", "json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout)
    assert isinstance(report, dict) and report.get("check_type") == "terraform", proc.stdout[:500]
    return report


def test_checkov_reports_no_failed_checks(checkov_report):
    summary = checkov_report["summary"]
    failed = [f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range']})"
              for c in checkov_report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and not failed, "\n".join(failed)
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] > 100 and summary["passed"] > 300, summary


# Hardening a reviewer looks for first, on the resources that are actually deployed: the root
# composition's regional stack, and the module examples for pipeline and tf-backend.
@pytest.mark.parametrize("check_id,resource", [
    ("CKV_AWS_131", "module.regional.module.web.aws_lb.this"),  # ALB drops invalid headers
    ("CKV_AWS_91", "module.regional.module.web.aws_lb.this"),  # ALB access logs
    ("CKV2_AWS_28", "module.regional.module.web.aws_lb.this"),  # public ALB behind a WAF
    ("CKV2_AWS_12", "module.regional.module.network.aws_vpc.this"),  # default SG denies all
    ("CKV2_AWS_11", "module.regional.module.network.aws_vpc.this"),  # VPC flow logs
    ("CKV_AWS_7", "module.pipeline_dev.module.pipeline_key.aws_kms_key.this"),  # key rotation
    ("CKV_AWS_219", "module.pipeline_dev.aws_codepipeline.this"),  # CMK-encrypted artifacts
    ("CKV_AWS_147", 'module.pipeline_dev.aws_codebuild_project.this["apply"]'),  # CMK-encrypted builds
    ("CKV_AWS_28", "module.backend_dev.aws_dynamodb_table.lock[0]"),  # lock table PITR
])
def test_key_hardening_checks_pass(checkov_report, check_id, resource):
    passed = {(c["check_id"], c["resource"]) for c in checkov_report["results"]["passed_checks"]}
    assert (check_id, resource) in passed, f"{check_id} did not pass for {resource}"


def test_every_skip_is_inline_with_a_reason(checkov_report):
    skipped = checkov_report["results"]["skipped_checks"]
    weak = [f"{c['check_id']} {c['resource']}: {c['check_result'].get('suppress_comment')!r}"
            for c in skipped if len(str(c["check_result"].get("suppress_comment") or "")) < MIN_REASON]
    assert not weak, "skips without a real reason:\n" + "\n".join(weak)


def test_skip_comments_name_a_check_and_give_a_reason():
    problems = []
    for path in terraform_sources():
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "checkov:skip" not in line:
                continue
            match = SKIP_COMMENT.search(line)
            where = f"{path.relative_to(REPO)}:{lineno}"
            if not match or not CHECK_ID.match(match.group(1)):
                problems.append(f"{where}: malformed skip")
            elif len((match.group(2) or "").strip()) < MIN_REASON:
                problems.append(f"{where}: {match.group(1)} skipped without a reason")
    assert not problems, "\n".join(problems)
    # No blanket suppressions outside the code either.
    assert not (REPO / ".checkov.yaml").exists() or "skip-check" not in (REPO / ".checkov.yaml").read_text()
