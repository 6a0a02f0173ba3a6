"""One approval for a release: its plan matrix, as text, JSON and an HTML report (pure but `write`).

Both paths make it from the same rows: `pipeline run` (locally, from the batch runner's builds) and
the plan stage build on CodeBuild (release_stage.py, from the batch's builds and the counts each
cell's plan build saved). A row: {"id", "tag", "wave", "status", "plan": {"add", "change",
"destroy"} or absent, "log" (CodeBuild: the build's console page; here: its log file), "build" (the
CodeBuild build id) and "artifact" (the s3:// URI of the cell's saved plan) on CodeBuild}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

SUMMARY_TXT = "plan-summary.txt"
SUMMARY_JSON = "plan-summary.json"
REPORT_HTML = "plan-report.html"


def plan_matrix(release: str, builds: Sequence[Mapping[str, Any]]) -> str:
    """The approval's view of a release (pure): wave, cell, +/~/-, the plan's build (its console page
    or log), and on CodeBuild the saved plan's s3:// URI; the summary artifact."""
    artifacts = any(build.get("artifact") for build in builds)
    rows = [("WAVE", "TAG", "+/~/-", "PLAN BUILD", *(("SAVED PLAN",) if artifacts else ()))]
    for build in builds:
        plan = build.get("plan")
        counts = f"+{plan['add']} ~{plan['change']} -{plan['destroy']}" if plan else str(build["status"])
        rows.append((str(build["wave"]), str(build["tag"]), counts, str(build.get("log") or "-"),
                     *((str(build.get("artifact") or "-"),) if artifacts else ())))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"[approval] release {release}: plans of {len(builds)} cells"]
    lines += ["[approval] " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1] for r in rows]
    return "\n".join(lines)


def totals(builds: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """The release's +/~/- summed over its cells (pure)."""
    out = {"add": 0, "change": 0, "destroy": 0}
    for build in builds:
        for key in out:
            out[key] += int((build.get("plan") or {}).get(key) or 0)
    return out


def one_line(release: str, builds: Sequence[Mapping[str, Any]]) -> str:
    """PLAN_SUMMARY of a release: what the approval's text shows (pure)."""
    t = totals(builds)
    planned = sum(1 for b in builds if b.get("plan"))
    return (f"release {release}: {planned} of {len(builds)} cells planned, +{t['add']} ~{t['change']} "
            f"-{t['destroy']} in all")


def write(folder: Path, release: str, builds: Sequence[Mapping[str, Any]], generated_at: str) -> dict[str, Path]:
    """The approval's artifacts in `folder`: the matrix as text and JSON, the HTML report."""
    from ..fleet.htmlreport import render_plan_report
    from ..results import write_atomic

    paths = {"txt": folder / SUMMARY_TXT, "json": folder / SUMMARY_JSON, "html": folder / REPORT_HTML}
    write_atomic(paths["txt"], plan_matrix(release, builds) + "\n")
    write_atomic(paths["json"], json.dumps({"release": release, "cells": list(builds)}, indent=2) + "\n")
    write_atomic(paths["html"], render_plan_report(release, builds, generated_at=generated_at))
    return paths
