"""States Terraform could not save: `errored.tfstate`, kept where no later run deletes it.

When the backend fails mid-apply, Terraform writes the state it could not persist to
`errored.tfstate` in the work dir: the only record of what it created. Work dirs are rebuilt on
every plan, so tfdeploy moves that file (an `os.replace` on the same filesystem: never a copy that
could be half-written) to `<repo cache>/errored/<cell>/<UTC timestamp>-serial<N>.tfstate`.
`tfdeploy state recover` pushes one back and then moves it to `recovered/` beside it: nothing
here is ever deleted by tfdeploy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ERRORED_STATE = "errored.tfstate"
RECOVERED = "recovered"


def errored_dir(cache: Path, cell: str) -> Path:
    return cache / "errored" / cell


def _serial(path: Path) -> str:
    try:
        return str(int(json.loads(path.read_text(encoding="utf-8"))["serial"]))
    except (OSError, ValueError, KeyError, TypeError):
        return "unknown"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rescue(workdir: Path, cache: Path, cell: str) -> Path | None:
    """Move `workdir/errored.tfstate` into the kept place; its new path, or None if none."""
    source = workdir / ERRORED_STATE
    if not source.is_file():
        return None
    target_dir = errored_dir(cache, cell)
    target_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    target = target_dir / f"{stamp}-serial{_serial(source)}.tfstate"
    os.replace(source, target)
    _fsync_dir(target_dir)
    return target


def rescue_all(work_root: Path, cache: Path, cell: str) -> list[Path]:
    """Rescue from the cell's work dir and from siblings a killed run left (staging, old)."""
    candidates = [work_root / cell]
    if work_root.is_dir():
        candidates += sorted(p for p in work_root.iterdir() if p.name.startswith(f".{cell}.") and p.is_dir())
    return [kept for path in candidates if (kept := rescue(path, cache, cell)) is not None]


def kept_states(cache: Path, cell: str) -> list[Path]:
    """The cell's kept errored states, oldest first (not the recovered ones)."""
    directory = errored_dir(cache, cell)
    return sorted(directory.glob("*.tfstate")) if directory.is_dir() else []


def mark_recovered(path: Path) -> Path:
    """Move a pushed state into `recovered/` next to it (kept, never deleted)."""
    target_dir = path.parent / RECOVERED
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    os.replace(path, target)
    return target


@dataclass(frozen=True)
class StateSummary:
    serial: int | None
    lineage: str | None
    addresses: tuple[str, ...]

    def describe(self) -> str:
        return f"serial {self.serial}, lineage {self.lineage}, {len(self.addresses)} resource(s)"


def summarize_state(state: dict[str, Any] | None) -> StateSummary:
    """Serial, lineage and resource addresses of a state document (pure; None = no state)."""
    if not state:
        return StateSummary(None, None, ())
    addresses = []
    for resource in state.get("resources", []):
        prefix = f"{resource['module']}." if resource.get("module") else ""
        kind = "data." if resource.get("mode") == "data" else ""
        base = f"{prefix}{kind}{resource.get('type')}.{resource.get('name')}"
        for instance in resource.get("instances", []) or [{}]:
            key = instance.get("index_key")
            addresses.append(base + ("" if key is None else f"[{json.dumps(key)}]"))
    return StateSummary(state.get("serial"), state.get("lineage"), tuple(sorted(addresses)))


def compare(kept: StateSummary, remote: StateSummary) -> list[str]:
    """How a kept state differs from the remote one, in lines for a human (pure)."""
    if remote.serial is None:
        return ["the remote state is empty: pushing restores every resource listed above"]
    lines = []
    if kept.lineage != remote.lineage:
        lines.append(f"DIFFERENT lineage (remote {remote.lineage}): this is another state; push refuses "
                     "without --force")
    elif (kept.serial or 0) <= (remote.serial or 0):
        lines.append(f"the remote serial {remote.serial} is not older than the kept {kept.serial}: "
                     "the remote state moved on; push refuses without --force")
    else:
        lines.append(f"the kept state is newer (serial {kept.serial} > remote {remote.serial})")
    only_kept = sorted(set(kept.addresses) - set(remote.addresses))
    only_remote = sorted(set(remote.addresses) - set(kept.addresses))
    if only_kept:
        lines.append("only in the kept state: " + ", ".join(only_kept))
    if only_remote:
        lines.append("only in the remote state (pushing drops them from state): " + ", ".join(only_remote))
    return lines
