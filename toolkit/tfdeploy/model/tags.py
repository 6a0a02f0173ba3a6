"""Parse deployment tags: `<env>_<region>/<team>/<version>` or `<env>_global/<team>/<version>`.

Everything downstream (state keys, paths, shell commands in buildspecs) is built from these parts,
so the grammar is strict: each part has a closed character set and a length limit, and a tag that
does not match is rejected with a message naming the wrong part.

A leading `v` on the version (`v1.0`) is rejected on purpose: `1.0` and `v1.0` would otherwise be
two tags for the same release, and the state key would not tell them apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import TagError
from .regions import REGION_SHAPE, is_allowed

EXPECTED = "<env>_<region|global>/<team>/<version>, e.g. dev_us-east-1/research/1.0"
MAX_TAG_LENGTH = 128
GLOBAL = "global"

# Use these with `fullmatch` only: `match` with `$` also accepts a value ending in a newline.
_NAME = r"[a-z](?:[a-z0-9-]{0,%d}[a-z0-9])?"
ENV_RE = re.compile(_NAME % 18)  # 1-20 chars
TEAM_RE = re.compile(_NAME % 38)  # 1-40 chars
VERSION_RE = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9}){0,3}(?:-[0-9a-z]{1,20}(?:\.[0-9a-z]{1,20}){0,3})?")


@dataclass(frozen=True)
class Tag:
    """A parsed, validated deployment tag."""

    name: str
    env: str
    region: str | None  # None for a global deployment
    team: str
    version: str

    @property
    def scope(self) -> str:
        """`regional` or `global`."""
        return "global" if self.region is None else "regional"

    @property
    def scope_name(self) -> str:
        """The tag's deployment scope as written: a Region code or `global`."""
        return self.region or GLOBAL

    @property
    def cell(self) -> str:
        """One isolated deployment unit: env + scope + team (`dev-us-east-1-research`)."""
        return f"{self.env}-{self.scope_name}-{self.team}"


def show(text: str, limit: int = 60) -> str:
    """Quote user text for an error line: escaped, one line, bounded length."""
    shown = text if len(text) <= limit else text[:limit] + "..."
    return ascii(shown)


def _fail(tag: str, what: str) -> TagError:
    return TagError(f"invalid tag {show(tag)}: {what}; expected {EXPECTED}", what)


def parse_tag(tag: str, extra_regions: frozenset[str] = frozenset()) -> Tag:
    """Parse and validate a tag name; raise TagError naming the wrong part."""
    if not isinstance(tag, str) or tag == "":
        raise TagError(f"empty tag; expected {EXPECTED}")
    if len(tag) > MAX_TAG_LENGTH:
        raise _fail(tag, f"it is {len(tag)} characters long (at most {MAX_TAG_LENGTH})")
    for position, char in enumerate(tag):
        if not char.isascii() or not char.isprintable():
            raise _fail(tag, f"character {ascii(char)} at position {position + 1} is not allowed "
                             "(only ASCII letters, digits, '-', '_', '.', '/')")
    parts = tag.split("/")
    if len(parts) != 3:
        raise _fail(tag, f"it has {len(parts)} '/'-separated part(s), not 3")
    head, team, version = parts
    if "_" not in head:
        raise _fail(tag, f"first part {show(head)} needs '_' between env and region "
                         "(like dev_us-east-1 or dev_global)")
    env, scope = head.split("_", 1)
    if not ENV_RE.fullmatch(env):
        raise _fail(tag, f"env {show(env)} must be 1-20 lowercase letters, digits or '-', "
                         "starting with a letter")
    region = _parse_scope(tag, scope, extra_regions)
    if not TEAM_RE.fullmatch(team):
        raise _fail(tag, f"team {show(team)} must be 1-40 lowercase letters, digits or '-', "
                         "starting with a letter")
    if not VERSION_RE.fullmatch(version):
        hint = " (drop the leading 'v')" if version[:1] in ("v", "V") else ""
        raise _fail(tag, f"version {show(version)} must be dotted numbers like 1.0 or 2.3.1, "
                         f"optionally with a suffix like 1.1-rc1{hint}")
    return Tag(name=tag, env=env, region=region, team=team, version=version)


def check_region(tag: Tag, extra_regions: frozenset[str]) -> None:
    """Refuse a parsed tag whose Region these settings do not know (pure): a tag parsed once at the
    CLI edge meets the tagged commit's own `extra_regions` here, without being parsed again."""
    if tag.region is not None:
        _parse_scope(tag.name, tag.region, extra_regions)


def _parse_scope(tag: str, scope: str, extra_regions: frozenset[str]) -> str | None:
    if scope == GLOBAL:
        return None
    if not REGION_SHAPE.fullmatch(scope):
        raise _fail(tag, f"region {show(scope)} is not an AWS Region code like us-east-1 "
                         "(or 'global')")
    if not is_allowed(scope, extra_regions):
        raise _fail(tag, f"region {show(scope)} is not a known AWS Region "
                         "(a new Region can be allowed with extra_regions in [tool.tfdeploy])")
    return scope

