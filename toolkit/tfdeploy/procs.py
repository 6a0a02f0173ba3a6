"""Processes on this machine, by pid (shared by the sandbox, the cell lock and the demo)."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Is there a process with this pid? (A process owned by another user counts as alive.)"""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds process `pid` has used so far, from /proc (None where there is no
    /proc, or no such process)."""
    from pathlib import Path

    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    except (OSError, IndexError, ValueError):
        return None
