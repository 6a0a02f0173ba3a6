"""Expand `--tag` arguments (exact tags or globs) into the tags a fleet run deploys (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Iterable, Protocol, Sequence

from ..errors import TagError, ValidationError
from ..model.tags import Tag, parse_tag, show

GLOB_CHARS = frozenset("*?[")


class TagLike(Protocol):  # engine.tagindex.TagEntry
    name: str
    tag: Tag | None
    error: str | None


@dataclass(frozen=True)
class Selection:
    tags: tuple[Tag, ...]
    notes: tuple[str, ...] = field(default=())


def is_pattern(arg: str) -> bool:
    return any(char in GLOB_CHARS for char in arg)


def is_fanout(args: Sequence[str]) -> bool:
    """Many tags or any glob: the fleet path. One exact tag keeps the single-cell commands."""
    return len(args) > 1 or any(is_pattern(arg) for arg in args)


def matches(pattern: str, name: str) -> bool:
    """Glob per `/`-separated part, so `*` never spans parts (`dev_*/research/1.1`)."""
    want, have = pattern.split("/"), name.split("/")
    return len(want) == len(have) and all(fnmatchcase(h, w) for w, h in zip(want, have))


def expand(args: Sequence[str], entries: Iterable[TagLike],
           extra_regions: frozenset[str] = frozenset()) -> Selection:
    """The tags named by `args`, in argument order then newest first within a glob, once each.

    An exact tag is parsed (a malformed one is an error); a glob is matched against the repo's
    tags, skipping malformed names with a note; a glob matching nothing is an error. Two versions
    of one cell are refused: they would share its work dir and state.
    """
    entries = list(entries)
    chosen: dict[str, Tag] = {}
    notes: list[str] = []
    for arg in args:
        if not is_pattern(arg):
            try:
                found = [parse_tag(arg, extra_regions)]
            except TagError as exc:
                raise ValidationError(str(exc)) from None
        else:
            found = []
            for entry in entries:
                if not matches(arg, entry.name):
                    continue
                if entry.tag is None:
                    notes.append(f"skipping tag {show(entry.name)} (matches {show(arg)}): {entry.error}")
                else:
                    found.append(entry.tag)
            if not found:
                raise ValidationError(f"--tag {show(arg)} matches no deployment tag in this repo; "
                                      "see tfdeploy tags list")
        for tag in found:
            chosen.setdefault(tag.name, tag)
    by_cell: dict[str, Tag] = {}
    for tag in chosen.values():
        other = by_cell.setdefault(tag.cell, tag)
        if other is not tag:
            raise ValidationError(f"tags {other.name} and {tag.name} both deploy cell {tag.cell}; "
                                  "select one version per cell (e.g. --tag 'dev_*/research/1.1')")
    return Selection(tuple(chosen.values()), tuple(notes))
