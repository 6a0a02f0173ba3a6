"""`tfdeploy status --release dev/research/1.1`: one release's cells, waves, results and logs (pure).

The cells are the release's tags in the repo, in the waves of model/waves.py (the same graph its
batch builds ran); each cell's result comes from its newest ledger record of that version (apply or
destroy), whose details name the release and the build that applied it (delivery/ci.py). Where the
build's log is: a local `pipeline run` build (`local:<execution>:<stage>:<cell>`) keeps it under
`.tfdeploy/pipeline/<execution>/<stage>/<cell>.log`; a CodeBuild build's log is the build's
CloudWatch stream, reached from the build id.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ValidationError
from ..model.tags import ENV_RE, TEAM_RE, VERSION_RE, Tag
from ..model.waves import group_waves
from .ledger import Record, newest_first


def parse_release(text: str) -> tuple[str, str, str]:
    """`env/team/version` (pure); ValidationError naming the expected shape."""
    parts = text.split("/")
    if (len(parts) != 3 or not ENV_RE.fullmatch(parts[0]) or not TEAM_RE.fullmatch(parts[1])
            or not VERSION_RE.fullmatch(parts[2])):
        raise ValidationError(f"--release {text!r} is not ENV/TEAM/VERSION, e.g. dev/research/1.1")
    return parts[0], parts[1], parts[2]


def log_location(build: str, pipeline_dir: Path) -> str:
    """Where a build's log is, from its id (pure)."""
    if build.startswith("local:"):
        _local, execution, stage, cell = (build.split(":") + ["", "", ""])[:4]
        return str(pipeline_dir / execution / stage / f"{cell}.log")
    if build:
        project = build.split(":", 1)[0]
        return f"codebuild build {build} (CloudWatch Logs of project {project})"
    return ""


def release_rows(release: tuple[str, str, str], tags: Sequence[Tag], latest: Mapping[str, Sequence[Record]],
                 waves: Sequence[str], cap: int, pipeline_dir: Path) -> list[dict[str, Any]]:
    """One row per cell of the release, in wave order (pure)."""
    env, team, version = release
    mine = [t for t in tags if (t.env, t.team, t.version) == (env, team, version)]
    if not mine:
        raise ValidationError(f"no tag of release {env}/{team}/{version} in this repo; see tfdeploy tags list")
    rows = []
    for index, wave in enumerate(group_waves(mine, waves, cap)):
        for tag in wave:
            records = [r for r in newest_first(latest.get(tag.cell, ())) if r.version == version
                       and r.action in ("apply", "destroy")]
            record = records[0] if records else None
            details = record.details if record else {}
            build = str(details.get("build") or (record.build_id if record else ""))
            rows.append({"cell": tag.cell, "tag": tag.name, "wave": index,
                         "result": record.result if record else "not deployed",
                         "finished_at": record.finished_at if record else None,
                         "release": details.get("release"), "build": build or None,
                         "log": log_location(build, pipeline_dir) or None,
                         "error": details.get("error") if record else None})
    return rows


def render(release: str, rows: Sequence[Mapping[str, Any]]) -> str:
    """The release as plain text (pure)."""
    head = ("WAVE", "CELL", "RESULT", "FINISHED", "LOG")
    table = [head] + [(str(r["wave"]), r["cell"], r["result"], r["finished_at"] or "-", r["log"] or "-")
                      for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head) - 1)]
    lines = [f"release {release}: {len(rows)} cells in {len({r['wave'] for r in rows})} waves"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1] for row in table]
    done = sum(1 for r in rows if r["result"] == "succeeded")
    lines.append(f"{done} of {len(rows)} cells succeeded")
    return "\n".join(lines)
