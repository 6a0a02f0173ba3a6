"""One run per cell per machine: an OS file lock on `<repo cache>/locks/<cell>.lock`.

Every command that touches a cell's work dir holds this lock from before the work dir is built
until it ends, so two runs never swap, init or apply in one directory at once. The kernel drops a
`flock` when its process dies, so a lock file left by a killed run is never a stale lock; the
holder's pid, command and start time are written into the file only to name it in messages.

The lock is re-entrant within a process (`run` holds it and its stages take it again): a second
`flock` on a new descriptor of the same file would otherwise block its own holder.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..errors import TfdeployError, ValidationError
from ..procs import pid_alive

_POLL_S = 0.2
# (cache, cell) -> [descriptor, depth] for the locks this process holds.
_HELD: dict[tuple[str, str], list[int]] = {}


class CellBusyError(TfdeployError):
    """Another process on this machine holds the cell lock."""


@dataclass(frozen=True)
class Holder:
    pid: int
    command: str
    since: str  # ISO 8601, UTC
    host: str

    def describe(self) -> str:
        since = self.since[11:19] + "Z" if len(self.since) >= 19 else self.since
        return f"pid {self.pid} ({self.command}) since {since}"


def lock_path(cache: Path, cell: str) -> Path:
    return cache / "locks" / f"{cell}.lock"


def parse_duration(text: str) -> float:
    """`0`, `45`, `30s`, `2m`, `1h` -> seconds (pure). Terraform's `-lock-timeout` takes the same."""
    match = re.fullmatch(r"(\d+)(s|m|h)?", text.strip())
    if not match:
        raise ValidationError(f"--lock-timeout {text!r} is not a duration: use e.g. 0, 30s, 2m or 1h")
    return int(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def format_duration(seconds: float) -> str:
    """Seconds -> Terraform's duration syntax (pure)."""
    return f"{int(seconds)}s"


def current_command() -> str:
    """What to call this process in a busy message: `tfdeploy apply --tag ...`."""
    args = [os.path.basename(sys.argv[0]) if sys.argv else "tfdeploy", *sys.argv[1:]]
    return " ".join(args)[:200]


def _key(cache: Path, cell: str) -> tuple[str, str]:
    return (str(cache.resolve()), cell)


def held_here(cache: Path, cell: str) -> bool:
    """Whether this process holds the cell lock."""
    return _key(cache, cell) in _HELD


def read_holder(cache: Path, cell: str) -> Holder | None:
    """The holder recorded in the lock file (it may have finished; see `live_holder`)."""
    try:
        data = json.loads(lock_path(cache, cell).read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["command"]), str(data["since"]), str(data["host"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_holder(cache: Path, cell: str) -> Holder | None:
    """The process holding the cell lock now, or None when nobody does (no lock taken)."""
    if held_here(cache, cell):
        return read_holder(cache, cell)
    path = lock_path(cache, cell)
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder_after_write(cache, cell)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _holder_after_write(cache: Path, cell: str) -> Holder:
    # A new holder writes its details just after taking the lock: give it a moment.
    holder = None
    for _ in range(10):
        holder = read_holder(cache, cell)
        if holder is not None and pid_alive(holder.pid):
            return holder
        time.sleep(0.05)
    return holder or Holder(0, "another tfdeploy", "?", socket.gethostname())


def _busy_message(cell: str, holder: Holder, timeout_s: float) -> str:
    if timeout_s > 0:
        return (f"cell {cell} is still busy after {format_duration(timeout_s)}: {holder.describe()}; "
                "try again when it has finished, or pass a longer --lock-timeout")
    return f"cell {cell} is busy: {holder.describe()}; wait, or pass --lock-timeout 5m"


@contextmanager
def cell_lock(cache: Path, cell: str, *, timeout_s: float = 0, command: str | None = None) -> Iterator[None]:
    """Hold the cell's lock, waiting up to `timeout_s` for another process to release it."""
    key = _key(cache, cell)
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield
        finally:
            _HELD[key][1] -= 1
        return
    path = lock_path(cache, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, cache, cell, timeout_s)
        holder = {"pid": os.getpid(), "command": command or current_command(), "host": socket.gethostname(),
                  "since": datetime.now(UTC).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        _HELD[key] = [fd, 1]
        try:
            yield
        finally:
            del _HELD[key]
            # Unlocked by close; the file stays (removing it would race with a waiting process
            # that already opened it and would then lock an orphaned inode).
    finally:
        os.close(fd)


def _acquire(fd: int, cache: Path, cell: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise CellBusyError(_busy_message(cell, _holder_after_write(cache, cell), timeout_s)) from None
            time.sleep(_POLL_S)
