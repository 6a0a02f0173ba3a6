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

What tfdeploy says it kept, it kept: every kept file is fsynced, then read back and checked
(non-empty, parses as a state). When Terraform could not write `errored.tfstate` either (a full
disk leaves it empty), it prints the state in its output: that copy is used instead. When the
local disk fails, the state goes to the cell's state bucket under
`_tfdeploy-errored/<cell>/<timestamp>-<id>.tfstate` (engine/errored_backend.py, a conditional put
that never overwrites), and the line names that object. If neither place takes it, the line says
exactly where the only copy is (the work dir file, which is then never rebuilt away, or the state
printed on stderr).
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import TfdeployError

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


@dataclass(frozen=True)
class Kept:
    """Where a state Terraform could not save is now; `str()` is that place."""

    where: str  # a local path, or s3://bucket/key
    path: Path | None = None  # the local file, when it is on this machine
    why: str = ""  # why it is not in the kept place on this disk ("" when it is)
    stranded: bool = False  # the only copy is still in the work dir (must not be rebuilt away)
    lost: bool = False  # no readable copy anywhere tfdeploy could reach
    printed: bool = False  # the only copy is the state tfdeploy printed on its stderr

    def __str__(self) -> str:
        return self.where

    def sentence(self, tag_name: str) -> str:
        """What the operator must know, for the error line."""
        recover = f"tfdeploy state recover --tag {tag_name}"
        if self.printed:
            return (f"Terraform could not save the state and neither the local disk nor the backend could keep it "
                    f"({self.why}); tfdeploy printed it on stderr above: save it (from the first {{ to the last }}) "
                    f"as a file, then run {recover} --file FILE")
        if self.lost:
            return (f"Terraform could not save the state and no readable copy could be kept ({self.why}); "
                    "the resources it created are not in any state: check the backend and the cell's "
                    "resources by hand")
        if self.stranded:
            return (f"Terraform could not save the state; its only copy is {self.where} ({self.why}): "
                    f"copy it somewhere safe now; the cell's work dir is not rebuilt while it is there; then {recover}")
        if self.path is None:
            return (f"Terraform could not save the state; the local disk failed ({self.why}), so it is kept in "
                    f"the backend at {self.where}: check the backend, then run {recover}")
        return (f"Terraform could not save the state, it is kept in {self.where}: check the backend, then "
                f"run {recover}")


# Puts a state's bytes (and the base it follows) in the backend; returns the object's s3:// URL.
RemoteKeep = Callable[[bytes, "dict[str, Any] | None"], str]


def readable_state(body: bytes) -> dict[str, Any] | None:
    """The state document in `body`, or None when it is empty or not a Terraform state (pure)."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("version"), int) \
            or not isinstance(data.get("resources", []), list):
        return None
    return data


_DUMP_START = re.compile(r'\{\s*"version":\s*\d')


def emergency_dump(output: str) -> bytes | None:
    """The state Terraform printed when it could write neither the backend nor errored.tfstate
    ("the raw state data is printed above as a JSON object"), or None (pure)."""
    decoder = json.JSONDecoder()
    for found in _DUMP_START.finditer(output):
        try:
            data, end = decoder.raw_decode(output, found.start())
        except ValueError:
            continue
        body = output[found.start():end].encode("utf-8")
        if isinstance(data, dict) and "resources" in data and readable_state(body) is not None:
            return body
    return None


def dumped_in_events(events: Sequence[Mapping[str, Any]]) -> str:
    """The text of a -json run's emergency state dump event(s), for `emergency_dump` (pure).

    With -json, Terraform sends the state it could not write as an event ("Emergency state
    dump"), not as text: its human rendering drops the state itself."""
    found = []
    for event in events:
        if event.get("type") == "state_dump" or "state dump" in str(event.get("@message", "")).lower():
            found.append(json.dumps(dict(event)))
            found += [v for v in event.values() if isinstance(v, str) and v.lstrip().startswith("{")]
    return "\n".join(found)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError:
        return b""


def _write_synced(path: Path, body: bytes) -> None:
    """Write `path` whole (a temporary file renamed over it), fsynced; never leaves a partial file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # our own partial copy; the state is still in memory
        raise


def _keep_locally(source: Path | None, body: bytes, target: Path, base: dict[str, Any] | None) -> None:
    """Put the state at `target` (moving `source` when it holds it), fsynced and read back."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if base is not None:
        _write_synced(Path(str(target) + BASE_SUFFIX), (json.dumps(base) + "\n").encode())
    moved = False
    if source is not None:
        try:
            os.replace(source, target)  # same filesystem: no copy that could be half-written
            moved = True
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # TFDEPLOY_CACHE_DIR elsewhere: a whole copy instead
                raise
    if moved:
        with open(target, "rb") as handle:
            os.fsync(handle.fileno())
    else:
        _write_synced(target, body)
    _fsync_dir(target.parent)
    if _read(target) != body:
        raise OSError(f"{target} does not read back as written")


def _set_aside(source: Path, cache: Path, cell: str, stamp: str) -> Path | None:
    """An unreadable errored.tfstate goes to `unreadable/` (never listed as kept); None if it cannot."""
    target = errored_dir(cache, cell) / "unreadable" / f"{stamp}.tfstate"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        return target
    except OSError:
        pass
    beside = source.with_name(f"{ERRORED_STATE}.unreadable")  # a rename in place needs no space
    try:
        os.replace(source, beside)
        return beside
    except OSError:
        return None


def rescue(workdir: Path, cache: Path, cell: str, *, output: str = "",
           remote: RemoteKeep | None = None) -> Kept | None:
    """Keep the state a failed Terraform run could not save; where it is now, or None if there is none.

    `output`: that run's output (where Terraform prints the state when it cannot write the file).
    `remote`: puts the state in the backend when the local disk fails. Never raises for a disk
    or backend error: the answer says where the state is, or that no readable copy exists."""
    source = workdir / ERRORED_STATE
    on_disk = _read(source)
    printed = emergency_dump(output) if output else None
    if on_disk is None and printed is None:
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    moved_from = source if on_disk is not None and readable_state(on_disk) is not None else None
    body = on_disk if moved_from is not None else printed
    if body is None:  # an empty or partial file, and nothing printed: say so, never "kept"
        aside = _set_aside(source, cache, cell, stamp)
        return Kept(str(aside or source), aside or source, lost=True,
                    why=f"{ERRORED_STATE} is {'empty' if not on_disk else 'not a readable state'} "
                        f"({len(on_disk or b'')} bytes), kept as {aside or source}")
    if moved_from is None and on_disk is not None:
        _set_aside(source, cache, cell, stamp)  # Terraform's empty file: the printed state replaces it
    base = plan_base(workdir / _PLAN_FILE)
    serial = readable_state(body).get("serial")  # type: ignore[union-attr]
    target = errored_dir(cache, cell) / f"{stamp}-serial{serial if isinstance(serial, int) else 'unknown'}.tfstate"
    try:
        _keep_locally(moved_from, body, target, base)
        if moved_from is not None and moved_from.exists():  # copied (another filesystem): not kept twice
            try:
                os.replace(moved_from, workdir / f"{ERRORED_STATE}.kept")
            except OSError:
                pass
        return Kept(str(target), target)
    except OSError as exc:
        local = f"{exc.strerror or exc} in {target.parent}" if exc.strerror else str(exc)
    if moved_from is not None and not moved_from.exists() and _read(target) == body:
        moved_from = target  # it was moved whole before the failure: that is where it is
    if remote is not None:
        try:
            url = remote(body, base)
        except Exception as exc:  # noqa: BLE001 - any backend failure: say where the state is instead
            local += f"; the backend refused it too ({' '.join(str(exc).split())[:300]})"
        else:
            if moved_from is not None and moved_from.parent == workdir:
                try:  # not rescued again by the next run: it is in the backend
                    os.replace(moved_from, workdir / f"{ERRORED_STATE}.in-backend")
                except OSError:
                    pass
            return Kept(url, None, why=local)
    if moved_from is not None:
        return Kept(str(moved_from), moved_from, why=local, stranded=moved_from.parent == workdir)
    # Only in memory: the run's own output is the one place left.
    sys.stderr.write(f"tfdeploy: the state Terraform could not save for cell {cell} follows "
                     f"(save it as errored.tfstate, then terraform state push it):\n{body.decode()}\n")
    sys.stderr.flush()
    return Kept("tfdeploy's stderr (printed above)", None, why=local, printed=True)


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


def rescue_all(work_root: Path, cache: Path, cell: str) -> list[Kept]:
    """Rescue from the cell's work dir and from siblings a killed run left (staging, old).

    Raises when a state could only stay where it is: the work dir holding it must not be rebuilt."""
    candidates = [work_root / cell]
    if work_root.is_dir():
        candidates += sorted(p for p in work_root.iterdir() if p.name.startswith(f".{cell}.") and p.is_dir())
    kept = [found for path in candidates if (found := rescue(path, cache, cell)) is not None]
    for found in kept:
        if found.stranded:
            raise TfdeployError(f"a state Terraform could not save is in {found.where} and cannot be kept "
                                f"({found.why}); nothing was changed: free space, then run again")
    return kept


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
