"""Where tfdeploy keeps files outside the repo's tracked content."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

REPO_CACHE = ".tfdeploy"  # per repo, git-ignored: work dirs, plans, stage results


def repo_cache_dir(repo_root: Path, environ: Mapping[str, str] = os.environ) -> Path:
    """Per-repo cache: deployment work dirs live here (`TFDEPLOY_CACHE_DIR` moves it)."""
    override = environ.get("TFDEPLOY_CACHE_DIR")
    return Path(override).resolve() if override else repo_root / REPO_CACHE


def user_state_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """Per-user state shared by all repos: the local AWS sandbox's pid/port file lives here.

    `TFDEPLOY_HOME` overrides it (tests and CI point it at a temp dir)."""
    if environ.get("TFDEPLOY_HOME"):
        return Path(environ["TFDEPLOY_HOME"]).resolve()
    base = environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tfdeploy"


def shown_path(path: str | Path, start: Path | None = None) -> str:
    """A path as a person reads it in output: relative to the current directory (the repo's root,
    usually) when it is inside it, else whole. Keeps tables narrow; records keep full paths."""
    if not str(path):
        return str(path)
    here = (start or Path.cwd()).resolve()
    try:
        return str(Path(path).resolve().relative_to(here))
    except (ValueError, OSError):
        return str(path)
