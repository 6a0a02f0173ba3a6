"""What every apply checks after its work dir is built and before Terraform runs: the promotion
order (fleet/promotion.py, from the ledger) and, in a protected env, a passing scan
(gates/protected.py). Used by `apply` (one cell), the fan-out apply (each cell) and `run`.

Both are refusals, not deployments: nothing is recorded in the ledger for them. A refused
promotion notifies the `notify_topic_arn` topic (event promotion-refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..model.settings import Settings, load_settings
from . import promotion


def settings_for(session: Any, here: Settings, environ: Mapping[str, str],
                 overrides: Mapping[str, Any]) -> list[Settings]:
    """The working tree's settings and the tagged commit's (as plan reads it), in that order."""
    return [here, load_settings(session.workdir.path, environ, overrides)]


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
    skipped: the first env has no check); an unreadable ledger refuses rather than allows."""
    from .ledger import LedgerError, history, latest
    from .reconcile import reconcile

    tag, commit = session.tag, session.workdir.source.commit
    previous = promotion.previous_envs(tag.env, [s.environments for s in settings])
    if not previous:
        return ""
    if override:
        note(f"promotion check skipped for {tag.name} (--skip-promotion-check): {override}")
        return override
    tagged = settings[-1]
    for prev in previous:
        try:
            cells = reconcile(latest(tagged, environ, [prev], [tag.team]), environ, note)
            same_scope = _scope_in(prev, tag, session.workdir.path, cells)
            records = [r for rs in cells.values() for r in rs]
            found = promotion.evidence(records, commit=commit, team=tag.team, scope=tag.scope_name,
                                       same_scope=same_scope)
            if found is None and cells:
                # A summary keeps the newest records only: look through the whole history.
                records = [r for cell in cells for r in history(cell, prev, tagged, environ)]
            found = promotion.check(tag, commit, prev, records, same_scope=same_scope)
        except LedgerError as exc:
            _refused(session, tagged, environ, promotion.PromotionRefused(
                f"cannot check that commit {commit[:12]} of {tag.name} succeeded in {prev} first: {exc}; "
                f"fix access to the ledger, {promotion.SKIP_HINT}"))
        except promotion.PromotionRefused as exc:
            _refused(session, tagged, environ, exc)
        note(f"promotion check: commit {commit[:12]} succeeded in {found.cell} ({found.tag}, "
             f"{found.finished_at})")
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


def before_apply(session: Any, here: Settings, environ: Mapping[str, str], overrides: Mapping[str, Any], *,
                 override: str, note: Callable[[str], None], scanned: bool = False) -> str:
    """Both gates, cheapest first; the override to record ("" when none was used). `scanned`: the
    caller already ran a passing scan of this very work dir under the env's policy (`run`)."""
    from ..gates.protected import require_passing_scan

    settings = settings_for(session, here, environ, overrides)
    used = check_promotion(session, settings, environ, override=override, note=note)
    if not scanned:
        result = require_passing_scan(session.workdir, settings, repo_root=session.repo_root, environ=environ)
        if result is not None:
            note(f"protected env {session.tag.env}: checkov scan of commit "
                 f"{session.workdir.source.commit[:12]} passed")
    return used
