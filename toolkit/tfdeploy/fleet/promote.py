"""`tfdeploy promote`: tag the next env at the commit that succeeded in this one.

For each scope where version V of team T last applied successfully in E1 (the ledger), E2's tag
`E2_<scope>/T/V` is created at the commit E1's tag `E1_<scope>/T/V` points to — so what reaches
E2 is exactly what ran in E1, and E2's apply passes the promotion check. Tags that exist are
skipped (said). Tag creation, the checks of the commit being tagged (E2's tfvars, allowed
Regions) and pushing are `fleet/release.py`'s.

Choosing the scopes is pure (`choose_scopes`); the ledger and git are read around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ValidationError
from ..model.settings import Settings
from ..model.tags import GLOBAL
from .ledger import Record, newest_first
from .release import ReleaseRequest, tag_name


@dataclass(frozen=True)
class PromoteRequest:
    source: str
    target: str
    team: str
    version: str
    regions: tuple[str, ...] | None  # () not given; None: `all` (every deployed Region)
    include_global: bool

    @property
    def name(self) -> str:
        return f"{self.team} {self.version} {self.source} -> {self.target}"


@dataclass(frozen=True)
class Promotion:
    """One tag of the promotion: where it goes, and whether it is made or skipped."""

    tag: str
    scope: str
    commit: str
    skipped: str = ""  # "exists" (or "exists at another commit"), "" when it is to be created

    def to_dict(self, created: bool, pushed: bool) -> dict[str, Any]:
        return {"tag": self.tag, "scope": self.scope, "commit": self.commit, "created": created,
                "skipped": self.skipped, "pushed": pushed}


def check_order(source: str, target: str, orders: Iterable[Sequence[str]]) -> None:
    """E2 must come right after E1 in every `environments` order given (pure)."""
    for order in orders:
        order = list(order)
        for env in (source, target):
            if env not in order:
                raise ValidationError(f"{env} is not one of the configured environments ({', '.join(order)})")
        if order.index(target) != order.index(source) + 1:
            raise ValidationError(f"{source} is not right before {target} in environments ({', '.join(order)}): "
                                  "promote moves a version one env at a time, in that order")


def deployed(records: Iterable[Record], request: PromoteRequest) -> dict[str, Record]:
    """scope -> the newest successful apply of the version in E1 for the team (pure)."""
    found: dict[str, Record] = {}
    for r in newest_first(records):
        if (r.env, r.team, r.version, r.action, r.result) == (request.source, request.team, request.version,
                                                                "apply", "succeeded"):
            found.setdefault(r.scope, r)
    return found


def choose_scopes(request: PromoteRequest, found: Mapping[str, Record]) -> list[str]:
    """The scopes to promote, global first then Regions (sorted); ValidationError naming each
    asked-for scope without a successful apply (pure)."""
    if not found:
        raise ValidationError(f"no successful apply of {request.version} in {request.source} for {request.team} "
                              f"(tfdeploy status --env {request.source} --team {request.team} shows what runs "
                              "there); apply it there first")
    regions = sorted(s for s in found if s != GLOBAL)
    if request.regions == () and not request.include_global:
        wanted = ([GLOBAL] if GLOBAL in found else []) + regions
    else:
        wanted = ([GLOBAL] if request.include_global else []) + list(
            regions if request.regions is None else request.regions)
    missing = [s for s in wanted if s not in found]
    if missing:
        raise ValidationError("promote refused, nothing tagged: " + "; ".join(
            f"{s}: no successful apply of {request.version} in {request.source}-{s}-{request.team}"
            for s in missing))
    if not wanted:
        raise ValidationError(f"--scope all: {request.version} succeeded in no Region of {request.source} "
                              f"for {request.team} (only global: pass --scope global)")
    return wanted


def plan_promotion(request: PromoteRequest, scopes: Sequence[str], found: Mapping[str, Record],
                   tag_commits: Mapping[str, str | None]) -> list[Promotion]:
    """Each scope's E2 tag at the commit of E1's tag (pure). `tag_commits`: tag name -> the commit
    it points to (None: no such tag). E1's tag must still name the commit that succeeded."""
    problems, made = [], []
    for scope in scopes:
        source_tag = tag_name(request.source, scope, request.team, request.version)
        commit = tag_commits.get(source_tag)
        ran = found[scope].commit
        if commit is None:
            problems.append(f"{source_tag} is not a tag here (git fetch --tags)")
            continue
        if commit != ran:
            problems.append(f"{source_tag} points at {commit[:12]} but what succeeded in "
                            f"{found[scope].cell} was {ran[:12]} (the tag moved)")
            continue
        target = tag_name(request.target, scope, request.team, request.version)
        existing = tag_commits.get(target)
        skipped = "" if existing is None else ("exists" if existing == commit else "exists at another commit")
        made.append(Promotion(target, scope, commit, skipped))
    if problems:
        raise ValidationError("promote refused, nothing tagged: " + "; ".join(problems))
    return made


def release_request(request: PromoteRequest, scopes: Sequence[str]) -> ReleaseRequest:
    """The E2 tags as a release (release.py checks them against the commit)."""
    return ReleaseRequest(request.target, request.team, request.version,
                          tuple(s for s in scopes if s != GLOBAL), GLOBAL in scopes)


def message(request: PromoteRequest, made: Sequence[Promotion]) -> str:
    return (f"promote {request.team} {request.version} {request.source} -> {request.target} "
            f"({', '.join(p.scope for p in made)})\n\nCreated by tfdeploy promote at the commit that "
            f"succeeded in {request.source}.\n")


# --- I/O -------------------------------------------------------------------------------------------

def ledger_records(request: PromoteRequest, settings: Settings, environ: Mapping[str, str]) -> list[Record]:
    """E1's records of the team that count (fleet/signing.py: never unsigned or badly signed ones
    under ledger_signing_key, never future-dated ones): the summaries, and a cell's whole history
    where its summary no longer holds a success of the version."""
    from .ledger import history, latest
    from .reconcile import reconcile
    from .signing import trust_for

    trust = trust_for([settings], environ)
    cells = reconcile(latest(settings, environ, [request.source], [request.team]), environ, lambda _text: None)
    records = []
    for cell, rs in cells.items():
        counted = trust.split(rs)[0]
        if not deployed(counted, request):
            counted = trust.split(history(cell, request.source, settings, environ))[0]
        records += counted
    return records


def tag_commits(repo_root: Path, names: Iterable[str]) -> dict[str, str | None]:
    from .release import _git

    found: dict[str, str | None] = {}
    for name in names:
        proc = _git(repo_root, "rev-parse", "--verify", "--quiet", f"refs/tags/{name}^{{commit}}")
        found[name] = proc.stdout.strip() if proc.returncode == 0 else None
    return found
