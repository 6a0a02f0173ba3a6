"""The promotion rule (pure): a commit reaches env N only after it succeeded in env N-1.

`environments` lists the envs in promotion order. Applying commit C for team T in env N (N > 0)
needs a ledger record of a *successful apply of the same commit C for team T in env N-1*:
in the same scope (Region or global) when env N-1 has that scope, else in any of its scopes
(a Region that only prod serves cannot have been tried in qa, but the commit must have run
somewhere in qa). The commit is what counts, not the version's name: a re-tagged version at a
new commit is a new thing to promote. The first env has no predecessor.

The ledger I/O around this rule lives in `fleet/applygate.py`; this module decides.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

from ..errors import ValidationError
from ..model.tags import Tag
from .ledger import Record, newest_first

OVERRIDE_VAR = "TFDEPLOY_SKIP_PROMOTION_CHECK_REASON"
REASON_MAX = 500
SKIP_HINT = "or pass --skip-promotion-check --reason TEXT"


class PromotionRefused(ValidationError):
    """An apply refused by the promotion rule (or because the rule could not be checked)."""


def previous_env(env: str, environments: Sequence[str]) -> str | None:
    """The env before `env` in promotion order; None for the first (or an unknown) env."""
    if env not in environments:
        return None
    index = list(environments).index(env)
    return environments[index - 1] if index > 0 else None


def previous_envs(env: str, orders: Iterable[Sequence[str]]) -> list[str]:
    """The predecessors of `env` under each `environments` order (the working tree's and the
    tagged commit's): a commit cannot lift the rule by reordering, so each one applies."""
    found: list[str] = []
    for order in orders:
        prev = previous_env(env, order)
        if prev is not None and prev not in found:
            found.append(prev)
    return found


# Why a record must not be trusted ("" when it may): fleet/signing.py's Trust.why.
Distrust = Callable[[Record], str]


def _matching(records: Iterable[Record], *, commit: str, team: str, scope: str, same_scope: bool) -> list[Record]:
    return [r for r in records if r.action == "apply" and r.result == "succeeded" and r.commit == commit
            and r.team == team and (not same_scope or r.scope == scope)]


def evidence(records: Iterable[Record], *, commit: str, team: str, scope: str,
             same_scope: bool, distrust: Distrust | None = None) -> Record | None:
    """The newest successful apply of `commit` for `team` among `records` (same scope only when
    `same_scope`) that `distrust` finds nothing against (unsigned, badly signed, future-dated), or None."""
    ok = [r for r in _matching(records, commit=commit, team=team, scope=scope, same_scope=same_scope)
          if distrust is None or not distrust(r)]
    return newest_first(ok)[0] if ok else None


def ignored(records: Iterable[Record], *, commit: str, team: str, scope: str, same_scope: bool,
            distrust: Distrust) -> str:
    """"; N unverified record(s) ignored (why)" for records that would have been evidence, or ""."""
    reasons = [why for r in _matching(records, commit=commit, team=team, scope=scope, same_scope=same_scope)
               if (why := distrust(r))]
    if not reasons:
        return ""
    plural = "records" if len(reasons) > 1 else "record"
    return f"; {len(reasons)} unverified {plural} ignored ({'; '.join(dict.fromkeys(reasons))})"


def refusal(tag: Tag, commit: str, previous: str, *, same_scope: bool,
            records: Iterable[Record], distrust: Distrust | None = None, note: str = "") -> str:
    """The one line that says what is missing and what to do (pure). `note`: said about the
    evidence (e.g. that it is unsigned)."""
    short = commit[:12]
    where = f"{previous}-{tag.scope_name}-{tag.team}" if same_scope else f"any {previous} cell of {tag.team}"
    records = list(records)
    ran = newest_first(r for r in records if r.action == "apply" and r.result == "succeeded"
                       and r.team == tag.team and (not same_scope or r.scope == tag.scope_name)
                       and (distrust is None or not distrust(r)))
    last = f" (it last ran {ran[0].version} at commit {ran[0].commit[:12]})" if ran else ""
    example = f"{previous}_{tag.scope_name if same_scope else '<scope>'}/{tag.team}/{tag.version}"
    skipped = "" if distrust is None else ignored(records, commit=commit, team=tag.team, scope=tag.scope_name,
                                                  same_scope=same_scope, distrust=distrust)
    said = f"; {note}" if note else ""
    return (f"{tag.name} (commit {short}) has not been applied in {previous} for {tag.team}: no successful "
            f"apply of commit {short} in {where}{last}{skipped}{said}; promotion order is {previous} before {tag.env}: "
            f"apply it in {previous} first (tfdeploy apply --tag {example}; tfdeploy promote --from "
            f"{previous} --to {tag.env} --team {tag.team} --version {tag.version} tags {tag.env} at "
            f"what ran in {previous}), {SKIP_HINT}")


def check(tag: Tag, commit: str, previous: str, records: Iterable[Record], *,
          same_scope: bool, distrust: Distrust | None = None, note: str = "") -> Record:
    """The record that allows this apply, or PromotionRefused with the one line."""
    records = list(records)
    found = evidence(records, commit=commit, team=tag.team, scope=tag.scope_name, same_scope=same_scope,
                     distrust=distrust)
    if found is None:
        raise PromotionRefused(refusal(tag, commit, previous, same_scope=same_scope, records=records,
                                       distrust=distrust, note=note))
    return found


def override_reason(skip: bool, reason: str | None, environ: Mapping[str, str]) -> str:
    """The override's reason ("" for none), from --skip-promotion-check --reason TEXT or the
    TFDEPLOY_SKIP_PROMOTION_CHECK_REASON variable (for CodeBuild). A skip needs a reason: it is
    what the ledger records."""
    if skip:
        text = " ".join((reason or "").split())
        if not text:
            raise ValidationError("--skip-promotion-check needs --reason TEXT saying why (it is recorded "
                                  "in the ledger); e.g. --reason 'hotfix approved in CHG-123'")
    elif reason is not None:
        raise ValidationError("--reason goes with --skip-promotion-check (the reason for skipping the "
                              "promotion check); drop it or add --skip-promotion-check")
    else:
        text = " ".join(environ.get(OVERRIDE_VAR, "").split())
    if len(text) > REASON_MAX:
        raise ValidationError(f"the promotion-check override reason is {len(text)} characters; at most "
                              f"{REASON_MAX}")
    return text
