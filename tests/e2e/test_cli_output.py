"""What a person reads after plan and apply (real Terraform, moto, git tags): Terraform's -target
warning is not repeated, KEY=VALUE lines only with --exports, log paths relative to the repo, and
the fan-out's final table only where no live table showed the cells."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess

from tests.e2e.conftest import TFDEPLOY, tag, tfdeploy

REGIONAL = "dev_us-east-1/research/1.0"
TARGET_WARNINGS = ("Resource targeting is in effect", "Applied changes may be incomplete", "-target")
EXPORT_LINE = re.compile(r"^[A-Z][A-Z_]+=", re.MULTILINE)


def test_single_cell_output_has_no_target_warning_and_exports_only_when_asked(repo):
    tag(repo, REGIONAL)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    planned = tfdeploy(repo, "plan", "--tag", REGIONAL)
    assert "Plan: 1 to add" in planned.stdout  # Terraform's own output is still relayed
    assert not [w for w in TARGET_WARNINGS if w in planned.stdout + planned.stderr]
    assert not EXPORT_LINE.search(planned.stdout), planned.stdout
    assert "(saved: .tfdeploy/work/dev-us-east-1-research/tfdeploy.tfplan)" in planned.stdout
    applied = tfdeploy(repo, "apply", "--tag", REGIONAL, "--exports")
    assert "Apply complete! Resources: 1 added" in applied.stdout
    assert not [w for w in TARGET_WARNINGS if w in applied.stdout + applied.stderr]
    exports = dict(line.split("=", 1) for line in applied.stdout.splitlines() if EXPORT_LINE.match(line))
    assert exports["STATE_KEY"] == "research/dev-us-east-1/terraform.tfstate" and exports["TAG"] == REGIONAL
    replanned = tfdeploy(repo, "plan", "--tag", REGIONAL, "--exports")
    assert "PLAN_HAS_CHANGES=false" in replanned.stdout


def test_fanout_in_ci_ends_with_the_table_and_relative_log_paths(repo):
    for name in (REGIONAL, "dev_global/research/1.0"):
        tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    proc = tfdeploy(repo, "plan", "--tag", "dev_*/research/1.0")
    assert str(repo) not in proc.stdout, proc.stdout  # no absolute path: the table stays narrow
    assert re.search(r"^CELL\s+TAG\s+RESULT", proc.stdout, re.MULTILINE)
    assert re.search(r"logs in \.tfdeploy/runs/\S+$", proc.stdout, re.MULTILINE)
    assert re.search(r"^dev-global-research\s.*\s\.tfdeploy/runs/\S+/dev-global-research\.log$", proc.stdout,
                     re.MULTILINE)
    assert max(len(line) for line in proc.stdout.splitlines()) < 160


def _on_a_terminal(repo, *args: str) -> str:
    """Run tfdeploy with its stdout on a pseudo-terminal (as a person at a terminal sees it)."""
    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"TERM": "xterm", "COLUMNS": "150", "LINES": "40"}
    proc = subprocess.Popen([TFDEPLOY, *args], cwd=repo, stdout=child, stderr=subprocess.PIPE, env=env)
    os.close(child)
    out = b""
    while True:
        ready, _, _ = select.select([main], [], [], 120)
        if not ready:
            break
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the child closed its side
            break
        if not chunk:
            break
        out += chunk
    proc.wait(timeout=120)
    os.close(main)
    assert proc.returncode == 0, proc.stderr.read().decode()
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))


def test_after_a_live_table_only_one_summary_line(repo):
    for name in (REGIONAL, "dev_global/research/1.0"):
        tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    shown = _on_a_terminal(repo, "plan", "--tag", "dev_*/research/1.0")
    assert re.search(r"cell\s+tag\s+state", shown), shown  # the live table was drawn
    assert not re.search(r"CELL\s+TAG\s+RESULT", shown), shown  # and not repeated as the final table
    assert shown.rstrip().splitlines()[-1].strip() == "2 of 2 cells succeeded"
