"""Processes on this machine, by pid (shared by the sandbox and the cell lock)."""

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
