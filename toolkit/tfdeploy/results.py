"""Stage results: what each stage (lint, scan, plan, apply) reports, to people and to pipelines."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass(frozen=True)
class Finding:
    """One problem a tool reported, normalised so every tool's output reads the same."""

    tool: str
    rule: str
    severity: str  # error | warning | notice
    file: str  # relative to the work dir
    line: int
    message: str

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass(frozen=True)
class StageResult:
    stage: str
    status: str  # passed | failed | skipped
    duration_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    tools: dict[str, str] = field(default_factory=dict)  # tool -> version used
    findings: tuple[Finding, ...] = ()
    exports: dict[str, str] = field(default_factory=dict)  # KEY=VALUE lines for buildspecs
    notes: tuple[str, ...] = ()  # visible notices (skips, warnings)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["findings"] = [asdict(f) for f in self.findings]
        data["notes"] = list(self.notes)
        return data

    def export_lines(self) -> str:
        return "\n".join(f"{key}={value}" for key, value in self.exports.items())


def write_atomic(path: Path, text: str) -> None:
    """Write a file so readers see the old or the new content, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_result(result: StageResult, directory: Path) -> Path:
    """Save `<stage>.result.json` in the work dir's results folder."""
    path = directory / f"{result.stage}.result.json"
    write_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")
    return path


RESULT_NOT_WRITTEN = "result file not written:"


def write_result_after_change(result: StageResult, directory: Path) -> StageResult:
    """`write_result` once Terraform has changed the cell: the file is a copy for pipelines, so a
    disk that cannot take it (full, read-only) must not turn a done change into a failure (and a
    failed ledger record). The result then says in its notes that the file is missing."""
    from dataclasses import replace

    try:
        write_result(result, directory)
        return result
    except OSError as exc:
        return replace(result, notes=(*result.notes, f"{RESULT_NOT_WRITTEN} {directory / (result.stage + '.result.json')}"
                                                     f" ({exc.strerror or exc})"))
