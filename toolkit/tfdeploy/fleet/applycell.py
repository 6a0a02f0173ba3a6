"""One apply of one cell, the same for every caller: `apply` of one tag, a fan-out's cell and `run`.

The caller opens the cell (its work dir and Terraform, under the cell lock) and its ledger record
(fleet/recording.py); this does the rest in one order, so no way in skips a step:

1. the gates (fleet/applygate.py: promotion order, a protected env's scan, under the policy of the
   repo's commits), before any Terraform that could change state;
2. Terraform, always through a saved plan whose own content is checked before it is applied
   (engine/stages.py: `apply_saved` for a reviewed plan, `apply_direct` for --auto-approve, which
   plans into one and applies it by the same path);
3. the counts for the record.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..results import StageResult


def apply_cell(rec: Any, session: Any, environ: Mapping[str, str], *, auto_approve: bool,
               current: Any, override: Any, note: Callable[[str], None],
               turn: Callable[[], None] | None = None) -> StageResult:
    """Gate, apply and count one cell. `current`: the tag's checked source now (a saved plan made
    from another commit is refused by apply_saved, so its gates would be wasted work); `rec`: the
    open Recording, told the override used and the session once Terraform may change things;
    `override`: the PromotionOverride (fleet/options.py), or None; `turn`: an --auto-approve cell
    that planned ahead waits there between its checked plan and its apply (fleet/turns.py)."""
    from ..engine.stages import apply_direct, apply_saved

    if auto_approve or current.commit == session.workdir.source.commit:
        from .applygate import before_apply

        rec.override = before_apply(session, environ, override=override.reason if override else "", note=note)
    rec.session = session
    result = apply_direct(session, turn) if auto_approve else apply_saved(session, current)
    rec.counts = (int(result.counts.get("add", 0)), int(result.counts.get("change", 0)),
                  int(result.counts.get("destroy", 0)))
    return result
