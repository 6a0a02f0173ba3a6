"""Where the policy of an apply comes from: the repo's commits, never the runner.

The settings that decide whether an apply (or a destroy) is allowed (model.settings.POLICY_SETTINGS:
the promotion order, the protected envs, the envs whose scan only reports, the accepted findings,
the default branch) are read from two committed pyproject.toml files:

- the default branch's (its newest commit): policy a team has reviewed and merged, which an old
  tagged commit cannot escape by predating it;
- the tagged commit's (the cell's exported work dir): what the commit being deployed says.

Each gate takes the stricter of the two (gates/protected.py: protected if either says so, soft-fail
only where both do; fleet/promotion.py: every predecessor either order names). Neither the working
tree's uncommitted file nor a `TFDEPLOY_<NAME>` variable nor a `--<name>` option takes part: those
are refused outright (model.settings.refuse_policy_overrides).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from ..model.settings import Settings, load_settings, merge_settings, parse_pyproject_table, read_pyproject_table


def committed_table(repo_root: Path, commit: str) -> dict[str, Any]:
    """`[tool.tfdeploy]` of `pyproject.toml` as committed at `commit` ({} when the file is absent)."""
    from ..engine.gitsource import committed_file

    text = committed_file(repo_root, commit, "pyproject.toml")
    return {} if text is None else parse_pyproject_table(text, f"pyproject.toml at {commit[:12]}")


def default_branch_settings(repo_root: Path, environ: Mapping[str, str]) -> tuple[Settings | None, str]:
    """The default branch's committed settings and the branch's name; None when the branch is not
    in this clone (then only the tagged commit's policy can apply: said by the caller)."""
    from ..engine.gitsource import branch_commit

    branch = merge_settings(read_pyproject_table(repo_root), environ, {}).default_branch
    commit = branch_commit(repo_root, branch)
    if commit is None:
        return None, branch
    return merge_settings(committed_table(repo_root, commit), environ, {},
                          table_source=f"pyproject.toml of {branch} ({commit[:12]})"), branch


def policy_settings(repo_root: Path, tagged_tree: Path, environ: Mapping[str, str],
                    note: Callable[[str], None] = lambda text: None) -> list[Settings]:
    """The settings whose policy an apply of the tree at `tagged_tree` must meet, default branch's
    first, tagged commit's last (the gates read backend places from the last)."""
    tagged = load_settings(tagged_tree, environ)
    branch_settings, branch = default_branch_settings(repo_root, environ)
    if branch_settings is None:
        note(f"default branch {branch} is not in this clone: policy read from the tagged commit alone")
        return [tagged]
    return [branch_settings, tagged]


def repo_policy(repo_root: Path, environ: Mapping[str, str]) -> list[Settings]:
    """The repo's policy when no tag is at hand (status, history, rollback's choice of records):
    the default branch's committed settings, or the working tree's when the branch is not in
    this clone."""
    committed, _branch = default_branch_settings(repo_root, environ)
    return [committed] if committed is not None else [load_settings(repo_root, environ)]


def stricter_baseline(settings: list[Settings]) -> str | None:
    """The checkov baseline every settings names, or None (no accepted findings) when they differ:
    a commit cannot widen what the default branch accepts by pointing at another file (pure)."""
    names = {s.checkov_baseline for s in settings}
    return names.pop() if len(names) == 1 else None
