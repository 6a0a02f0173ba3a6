"""Which tags make a release: a selection of tags of one env and team, one version, at one commit.

`tfdeploy buildspec generate --release`, `publish --tag PATTERN` and `pipeline run` all select a
release the same way: the fan-out's `--tag` arguments (fleet/selection.py) against the repo's tags,
then the checks that make them one release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

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


def select_unfinished(repo_root: Path, args: Sequence[str], settings: Any,
                      environ: Mapping[str, str]) -> tuple[list[Tag], list[str]]:
    """`publish --only-failed`: the release's cells whose newest ledger record of its version is not
    a successful apply (failed, skipped, never run), and the cells left out as done. They must be
    at one commit (a fix moves their tags; the succeeded cells' tags may stay where they were)."""
    from ..engine.tagindex import list_tags
    from ..fleet.ledger import latest
    from ..fleet.release_status import release_rows
    from ..fleet.selection import expand
    from ..paths import repo_cache_dir

    entries = list_tags(repo_root, settings.extra_regions)
    tags = list(expand(args, entries, settings.extra_regions).tags)
    check_release(tags)
    first = tags[0]
    cache = repo_cache_dir(repo_root, environ)
    records = latest(settings, environ, [first.env], [first.team], cache_dir=cache)
    rows = release_rows((first.env, first.team, first.version), tags, records, settings.waves,
                        settings.max_parallel_builds, cache / "pipeline")
    done = [r["cell"] for r in rows if r["result"] == "succeeded"]
    todo = [t for t in tags if t.cell not in done]
    if not todo:
        return [], done
    commits = {e.name: e.commit for e in entries}
    at = {commits.get(t.name) for t in todo}
    if len(at) > 1:
        raise ValidationError("the release's unfinished cells are at several commits "
                              f"({', '.join(sorted(f'{t.name} at {str(commits.get(t.name))[:12]}' for t in todo))}); "
                              "move their tags to the fix, then publish --only-failed again")
    return todo, done
