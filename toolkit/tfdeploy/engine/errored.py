"""States Terraform could not save: `errored.tfstate`, kept where no later run deletes it.

When the backend fails mid-apply, Terraform writes the state it could not persist to
`errored.tfstate` in the work dir: the only record of what it created. Work dirs are rebuilt on
every plan, so tfdeploy moves that file (an `os.replace` on the same filesystem: never a copy that
could be half-written) to `<repo cache>/errored/<cell>/<UTC timestamp>-serial<N>.tfstate`.
`tfdeploy state recover` pushes one back and then moves it to `recovered/` beside it: nothing
here is ever deleted by tfdeploy.

Terraform writes that file without lineage or serial, so on its own it cannot say which remote
state it follows. Next to it tfdeploy keeps `<name>.base.json`: the lineage and serial of the state
the failed apply started from (the prior state inside the saved plan). If the remote state is still
exactly that one, nobody wrote in between and the kept state is its successor.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ERRORED_STATE = "errored.tfstate"
RECOVERED = "recovered"
BASE_SUFFIX = ".base.json"
_PLAN_FILE = "tfdeploy.tfplan"  # workdir.PLAN_FILE (not imported: workdir imports this module)


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
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = target_dir / f"{stamp}-serial{_serial(source)}.tfstate"
    base = plan_base(workdir / _PLAN_FILE)
    if base is not None:
        Path(str(target) + BASE_SUFFIX).write_text(json.dumps(base) + "\n", encoding="utf-8")
    os.replace(source, target)
    _fsync_dir(target_dir)
    return target


def plan_base(plan: Path) -> dict[str, Any] | None:
    """Lineage and serial of the prior state a saved plan was made against, or None."""
    import zipfile

    try:
        with zipfile.ZipFile(plan) as archive:
            prior = json.loads(archive.read("tfstate"))
        return {"lineage": str(prior.get("lineage") or ""), "serial": int(prior.get("serial") or 0)}
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None


def base_of(kept: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(Path(str(kept) + BASE_SUFFIX).read_text(encoding="utf-8"))
        return {"lineage": str(data["lineage"]), "serial": int(data["serial"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


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
    base = Path(str(path) + BASE_SUFFIX)
    if base.is_file():
        os.replace(base, Path(str(target) + BASE_SUFFIX))
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
    if not kept.lineage:
        pass  # Terraform's errored state: `successor` decides
    elif kept.lineage != remote.lineage:
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


def successor(kept: dict[str, Any], base: dict[str, Any] | None,
              remote: StateSummary) -> tuple[dict[str, Any] | None, str]:
    """The state to push for a kept one, or None and why not without --force (pure).

    A kept state with its own lineage is pushed as is (Terraform checks lineage and serial). One
    without (what Terraform writes on a failed save) follows the remote state only if the remote
    is still the state the failed apply started from; it then gets that lineage and the next serial.
    """
    if kept.get("lineage") or remote.serial is None:
        return kept, "pushed as kept"
    if base is None:
        return None, ("the kept state carries no lineage and tfdeploy did not record which state the "
                      "failed apply started from")
    if base["lineage"] in ("", remote.lineage) and base["serial"] == remote.serial:
        return {**kept, "lineage": remote.lineage, "serial": (remote.serial or 0) + 1}, (
            f"the remote state is still the one the failed apply started from (serial {remote.serial}): "
            f"the kept state follows it as serial {(remote.serial or 0) + 1}")
    return None, (f"the remote state changed after the failed apply began (it started from serial "
                  f"{base['serial']}, the remote is at serial {remote.serial})")
