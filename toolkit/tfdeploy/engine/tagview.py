"""What a tag resolves to, read from the same place `plan` reads it: the tagged commit.

`resolve` used to read the working tree while `plan` read the tagged commit, so the two could show
different accounts and buckets for one tag. Here only `pyproject.toml` and `envs/` of the tagged
commit are exported (through `gitsource.export_commit`, with its symlink and local-state checks)
into a temporary directory and resolved there. The working tree is read only with `--worktree`, or
when the tag does not exist yet; both are announced. git subprocesses only: no gitpython, boto3 or
Terraform, so `resolve` stays fast.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from ..model.deployment import Deployment, resolve
from ..model.settings import Settings, load_settings
from ..model.tags import parse_tag
from .gitsource import existing_paths, export_commit, tag_commit

CONFIG_PATHS = ("pyproject.toml", "envs")


def resolve_tag(repo_root: Path, tag_name: str, *, environ: Mapping[str, str],
                overrides: Mapping[str, Any], worktree: bool, note: Callable[[str], None],
                worktree_settings: Callable[[], Settings] | None = None) -> tuple[Deployment, Settings]:
    """Resolve `tag_name` from its tagged commit (or the working tree, announced through `note`).

    Returns the deployment and the settings it was resolved with. `worktree_settings` loads the
    working tree's settings (the CLI passes its cached, -v aware loader)."""
    def settings_of_worktree() -> Settings:
        return worktree_settings() if worktree_settings else load_settings(repo_root, environ, overrides)

    if worktree:
        note(f"--worktree: reading settings and envs/ from the WORKING TREE of {repo_root}, "
             f"not the tagged commit of {tag_name}")
        settings = settings_of_worktree()
        return resolve(tag_name, settings, repo_root), settings
    commit = tag_commit(repo_root, tag_name)
    if commit is None:
        settings = settings_of_worktree()
        parse_tag(tag_name, settings.extra_regions)  # a malformed tag is its own error, not a note
        note(f"tag {tag_name} does not exist yet: reading settings and envs/ from the working tree")
        return resolve(tag_name, settings, repo_root), settings
    with tempfile.TemporaryDirectory(prefix="tfdeploy-resolve-") as tmp:
        root = Path(tmp)
        paths = existing_paths(repo_root, commit, CONFIG_PATHS)
        if paths:
            export_commit(repo_root, commit, root, paths)
        settings = load_settings(root, environ, overrides)
        return resolve(tag_name, settings, root), settings
