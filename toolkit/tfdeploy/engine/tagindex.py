"""List the repo's deployment tags quickly.

One `git for-each-ref` call returns every tag with its type, date and peeled commit; Python only
parses names. (Walking tag objects through gitpython is ~100x slower on repos with 10,000 tags.)
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import TagError, TfdeployError
from ..model.tags import Tag, parse_tag

_FIELDS = (
    "%(refname:strip=2)",
    "%(objecttype)",
    "%(creatordate:iso-strict)",
    "%(objectname)",
    "%(*objectname)",
    "%(taggername)",
)
FORMAT = "%00".join(_FIELDS) + "%00"


@dataclass(frozen=True)
class TagEntry:
    name: str
    annotated: bool
    date: str
    commit: str
    tagger: str
    tag: Tag | None  # None when the name is not a valid deployment tag
    error: str | None

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name,
            "valid": self.tag is not None,
            "annotated": self.annotated,
            "date": self.date,
            "commit": self.commit,
            "tagger": self.tagger,
        }
        if self.tag is not None:
            data.update(env=self.tag.env, scope=self.tag.scope, scope_name=self.tag.scope_name,
                        team=self.tag.team, version=self.tag.version)
        else:
            data["error"] = self.error
        return data


def parse_for_each_ref(output: str, extra_regions: frozenset[str] = frozenset()) -> list[TagEntry]:
    """Turn `git for-each-ref --format=FORMAT` output into entries (pure)."""
    entries = []
    fields = output.split("\0")
    # Each record is 6 NUL-terminated fields followed by git's newline.
    for start in range(0, len(fields) - 1, len(_FIELDS)):
        record = [f.lstrip("\n") if i == 0 else f for i, f in enumerate(fields[start:start + len(_FIELDS)])]
        if len(record) < len(_FIELDS):
            break
        name, objtype, date, objectname, peeled, tagger = record
        annotated = objtype == "tag"
        try:
            tag, error = parse_tag(name, extra_regions), None
        except TagError as exc:
            tag, error = None, str(exc)
        entries.append(TagEntry(name=name, annotated=annotated, date=date,
                                commit=peeled if annotated else objectname,
                                tagger=tagger, tag=tag, error=error))
    return entries


def list_tags(repo_root: Path, extra_regions: frozenset[str] = frozenset()) -> list[TagEntry]:
    """All tags, newest first."""
    try:
        proc = subprocess.run(
            ["git", "for-each-ref", "--sort=-creatordate", f"--format={FORMAT}", "refs/tags"],
            cwd=repo_root, capture_output=True, text=True, check=False,
        )
    except FileNotFoundError:
        raise TfdeployError("git is not installed or not on PATH; install git") from None
    if proc.returncode != 0:
        raise TfdeployError(f"git for-each-ref failed in {repo_root}: {proc.stderr.strip()}")
    return parse_for_each_ref(proc.stdout, extra_regions)


def filter_entries(entries: list[TagEntry], env: str | None, team: str | None) -> list[TagEntry]:
    if env is None and team is None:
        return entries
    return [e for e in entries if e.tag is not None
            and (env is None or e.tag.env == env) and (team is None or e.tag.team == team)]
