"""Which tags make a release: a selection of tags of one env and team, one version, at one commit.

`tfdeploy buildspec generate --release`, `publish --tag PATTERN` and `pipeline run` all select a
release the same way: the fan-out's `--tag` arguments (fleet/selection.py) against the repo's tags,
then the checks that make them one release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..errors import ValidationError
from ..model.tags import Tag
from .batch import check_release


def select_release(repo_root: Path, args: Sequence[str],
                   extra_regions: frozenset[str] = frozenset()) -> tuple[list[Tag], str]:
    """The release's tags and their one commit; ValidationError naming what is wrong."""
    from ..engine.tagindex import list_tags
    from ..fleet.selection import expand

    entries = list_tags(repo_root, extra_regions)
    tags = list(expand(args, entries, extra_regions).tags)
    check_release(tags)
    commits = {e.name: e.commit for e in entries}
    missing = [t.name for t in tags if t.name not in commits]
    if missing:
        raise ValidationError(f"tag {missing[0]} does not exist in this repo; create it first "
                              "(tfdeploy release) or see tfdeploy tags list")
    at = {commits[t.name] for t in tags}
    if len(at) > 1:
        by_commit = sorted(f"{t.name} at {commits[t.name][:12]}" for t in tags)
        raise ValidationError(f"a release is tags of one commit, but these point at {len(at)} commits "
                              f"({', '.join(by_commit)}); move the tags to one commit or select fewer")
    return tags, at.pop()
