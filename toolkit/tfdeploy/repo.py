"""Locate the infra repo a command works on (no gitpython here: keeps start-up fast)."""

from __future__ import annotations

from pathlib import Path

from .errors import ValidationError


def find_repo_root(start: Path) -> Path:
    """The enclosing git work tree of `start` (the directory with `.git`)."""
    start = start.resolve()
    if not start.exists():
        raise ValidationError(f"--repo {start} does not exist; pass the infra repo's path")
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    raise ValidationError(f"{start} is not inside a git repository; pass --repo PATH to the infra repo")
