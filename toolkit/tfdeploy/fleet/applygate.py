"""What every apply checks after its work dir is built and before Terraform runs: the promotion
order (fleet/promotion.py, from the ledger) and, in a protected env, a passing scan
(gates/protected.py), under the policy of the repo's commits (gates/policy.py). Used by every
apply through fleet/applycell.py.

Both are refusals, not deployments: nothing is recorded in the ledger for them. A refused
promotion notifies the `notify_topic_arn` topic (event promotion-refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..model.settings import Settings
from . import promotion


def _scope_in(env: str, tag: Any, workdir: Path, cells: Mapping[str, Any]) -> bool:
    """Does env `env` have the tag's scope for its team? Known to the ledger, or set up in the
    tagged commit's envs/ (`<region>.tfvars`; global: the team's `variables.tfvars`)."""
    if f"{env}-{tag.scope_name}-{tag.team}" in cells:
        return True
    team_dir = workdir / "envs" / env / tag.team
    return (team_dir / ("variables.tfvars" if tag.region is None else f"{tag.region}.tfvars")).is_file()


def check_promotion(session: Any, settings: Sequence[Settings], environ: Mapping[str, str], *,
                    override: str, note: Callable[[str], None]) -> str:
    """Refuse (PromotionRefused) unless the commit succeeded in the env before this one; an
    override skips the check (said) and is returned, to be recorded ("" when nothing was
    skipped: the first env has no check); an unreadable ledger refuses rather than allows.

    Only records that fleet/signing.py trusts count: with `ledger_signing_key` set, signed by that
    key; never future-dated ones; without a key, unsigned ones (said), except in an env of
    `require_signed_evidence`, which refuses."""
    from .ledger import LedgerError, history, latest
    from .signing import NO_KEY_NOTE, SigningError, requires_signed, trust_for
    from .reconcile import reconcile

    tag, commit = session.tag, session.workdir.source.commit
    previous = promotion.previous_envs(tag.env, [s.environments for s in settings])
    if not previous:
        return ""
    if override:
        note(f"promotion check skipped for {tag.name} (--skip-promotion-check): {override}")
        return override
    tagged = settings[-1]
    try:
        trust = trust_for(settings, environ, session.cache)
    except SigningError as exc:
        _refused(session, tagged, environ, promotion.PromotionRefused(
            f"cannot check that commit {commit[:12]} of {tag.name} succeeded in {previous[0]} first: {exc}; grant "
            f"kms:GetPublicKey on the key or fix ledger_signing_key, {promotion.SKIP_HINT}"))
    if not trust.signed and requires_signed(settings, tag.env):
        _refused(session, tagged, environ, promotion.PromotionRefused(
            f"{tag.name} (commit {commit[:12]}): env {tag.env} needs signed promotion evidence "
            "(require_signed_evidence) but no ledger_signing_key is set, so no ledger record can be verified; "
            "set ledger_signing_key in pyproject.toml (modules/pipeline's ledger_signing_key_arn, or "
            f"alias/tfdeploy-ledger in the sandbox), {promotion.SKIP_HINT}"))
    said = f"evidence signed by {trust.key_arn}" if trust.signed else NO_KEY_NOTE
    for prev in previous:
        try:
            cells = reconcile(latest(tagged, environ, [prev], [tag.team]), environ, note)
            same_scope = _scope_in(prev, tag, session.workdir.path, cells)
            # Only the env's own records: a genuine record copied into another env's folder is not its evidence.
            records = [r for rs in cells.values() for r in rs if r.env == prev]
            found = promotion.evidence(records, commit=commit, team=tag.team, scope=tag.scope_name,
                                       same_scope=same_scope, distrust=trust.why)
            if found is None and cells:
                # A summary keeps the newest records only: look through the whole history.
                records = [r for cell in cells for r in history(cell, prev, tagged, environ) if r.env == prev]
            found = promotion.check(tag, commit, prev, records, same_scope=same_scope, distrust=trust.why,
                                    note="" if trust.signed else NO_KEY_NOTE)
        except LedgerError as exc:
            _refused(session, tagged, environ, promotion.PromotionRefused(
                f"cannot check that commit {commit[:12]} of {tag.name} succeeded in {prev} first: {exc}; "
                f"fix access to the ledger, {promotion.SKIP_HINT}"))
        except promotion.PromotionRefused as exc:
            _refused(session, tagged, environ, exc)
        note(f"promotion check: commit {commit[:12]} succeeded in {found.cell} ({found.tag}, "
             f"{found.finished_at}); {said}")
    return ""


def _refused(session: Any, settings: Settings, environ: Mapping[str, str],
             exc: promotion.PromotionRefused) -> None:
    from .notify import notify

    tag = session.tag
    if settings.notify_topic_arn:
        notify("promotion-refused", f"tfdeploy: promotion refused: {tag.name}",
               {"tag": tag.name, "cell": tag.cell, "result": "refused", "error": str(exc),
                "commit": session.workdir.source.commit, "command": f"tfdeploy apply --tag {tag.name}"},
               settings, environ)
    raise exc


def before_apply(session: Any, environ: Mapping[str, str], *, override: str,
                 note: Callable[[str], None]) -> str:
    """Both gates, cheapest first, under the policy the repo's commits set (gates/policy.py); the
    override to record ("" when none was used). Every apply runs them, whoever calls: `apply` (a
    saved plan or --auto-approve, one cell or a fan-out's) and `run`."""
    from ..gates.policy import policy_settings
    from ..gates.protected import require_passing_scan

    settings = policy_settings(session.repo_root, session.workdir.path, environ, note)
    used = check_promotion(session, settings, environ, override=override, note=note)
    result = require_passing_scan(session.workdir, settings, repo_root=session.repo_root, environ=environ)
    if result is not None:
        note(f"protected env {session.tag.env}: checkov scan of commit "
             f"{session.workdir.source.commit[:12]} passed")
    return used
