"""Destroy one cell: plan the destroy of the tag's module namespace, then apply exactly that plan.

Two steps with the decision between them left to the caller: `plan_destroy` (init, `terraform plan
-destroy -target=<namespace> -out=...`, what would go), then `apply_destroy` (the saved plan under
the same protections as `apply`: spent once, its own backend, variables and addresses checked —
the `stages` functions themselves) or `discard_destroy`. `destroy` chains them for callers that
have already decided (fan-out passes `auto_approve=True`) or that ask through `confirm`.

The destroy plan is saved where `plan` saves its plan, marked `"operation": "destroy"` in its
metadata; `apply` refuses it (`stages.check_saved_plan`), so a destroy nobody confirmed can never
be applied by a later `tfdeploy apply`. The caller holds the cell lock (`stages.hold_cell`) for the
whole session. Protected envs (`protected_envs`) are checked by the caller before anything runs
(`refuse_protected`).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..errors import TfdeployError, ValidationError
from ..model.settings import Settings
from ..model.tags import Tag
from ..results import PASSED, StageResult, write_atomic, write_result_after_change
from .stages import (
    PLAN_SPENT,
    PlanSummary,
    Session,
    _exports,
    _flag,
    apply_once,
    check_saved_plan,
    init,
    redacted_json,
    summarize_plan,
    write_plan_meta,
)
from .workdir import PLAN_META

DESTROY = "destroy"  # the `operation` of a destroy plan's metadata (a plan's is absent or "apply")


class NotConfirmed(TfdeployError):
    """The person asked said no to a destroy: nothing changed, and no one needs telling."""


@dataclass(frozen=True)
class DestroyPlan:
    """What a saved destroy plan removes."""

    summary: PlanSummary
    addresses: tuple[str, ...]  # resource instances it deletes, in Terraform's order
    duration_s: float


def refuse_protected(tag: Tag, settings: Iterable[Settings], *, allow_protected: bool) -> None:
    """An env listed in `protected_envs` of any of `settings` needs --allow-protected (pure).

    The CLI passes the working tree's settings before anything runs, then the tagged commit's:
    a commit can add protection, never lift it."""
    if allow_protected:
        return
    if any(tag.env in s.protected_envs for s in settings):
        raise ValidationError(f"env {tag.env} is protected (protected_envs): destroying {tag.name} also "
                              "needs --allow-protected; nothing was planned")


def deleted_addresses(plan: dict[str, Any]) -> tuple[str, ...]:
    """Addresses a `terraform show -json` plan deletes (pure)."""
    return tuple(rc["address"] for rc in plan.get("resource_changes", [])
                 if "delete" in rc.get("change", {}).get("actions", []))


def plan_destroy(session: Session) -> DestroyPlan:
    """Init, then save a plan that destroys the deployment's module namespace, and nothing else."""
    from .workdir import PLAN_FILE

    started = time.monotonic()
    init(session)
    d = session.deployment
    discard_destroy(session)  # an older plan of either kind is not what is being confirmed now
    session.terraform.check("plan", input=False, no_color=_flag(), detailed_exitcode=_flag(),
                            destroy=_flag(), out=PLAN_FILE, target=[d.target_module],
                            var_file=list(d.var_files), ok=(0, 2), **session.lock_options())
    shown = session.terraform.check("show", "-json", PLAN_FILE, no_color=_flag(), stream=False)
    plan = json.loads(shown.stdout)
    summary = summarize_plan(plan)
    write_atomic(session.plan_json_path, redacted_json(shown.stdout))
    write_plan_meta(session, summary, operation=DESTROY)
    return DestroyPlan(summary, deleted_addresses(plan), round(time.monotonic() - started, 3))


def discard_destroy(session: Session) -> None:
    """Remove the saved plan (declined, or about to be replaced): nothing is left to apply."""
    for path in (session.plan_path, session.workdir.path / PLAN_META,
                 session.workdir.path / PLAN_SPENT, session.plan_json_path):
        path.unlink(missing_ok=True)


def apply_destroy(session: Session, planned: DestroyPlan) -> StageResult:
    """Apply the saved destroy plan of this session, once (init was done by plan_destroy)."""
    started = time.monotonic()
    apply_once(session, check_saved_plan(session, session.workdir.source, operation=DESTROY))
    return _result(session, planned, time.monotonic() - started)


def _result(session: Session, planned: DestroyPlan, seconds: float, *notes: str) -> StageResult:
    s = planned.summary
    backend = session.deployment.backend
    result = StageResult(
        stage=DESTROY, status=PASSED, duration_s=round(planned.duration_s + seconds, 3),
        counts={"add": s.add, "change": s.change, "destroy": s.destroy}, notes=notes,
        exports=_exports(session, STATE_BUCKET=backend.bucket, STATE_KEY=backend.key, PLAN_SUMMARY=str(s)),
    )
    return write_result_after_change(result, session.workdir.results_dir)


def destroy(session: Session, *, auto_approve: bool,
            confirm: Callable[[DestroyPlan], bool] | None = None) -> tuple[StageResult, PlanSummary]:
    """Plan the destroy of the session's cell, then apply it if `auto_approve` or `confirm` says yes.

    Nothing to destroy: the plan is discarded and the result says so (`notes`). Declined: the
    plan is discarded and TfdeployError says nothing changed."""
    planned = plan_destroy(session)
    if not planned.summary.has_changes:
        discard_destroy(session)
        return _result(session, planned, 0, "nothing to destroy"), planned.summary
    if not auto_approve and (confirm is None or not confirm(planned)):
        discard_destroy(session)
        raise NotConfirmed(f"not destroyed: {session.tag.name} was not confirmed; nothing changed")
    return apply_destroy(session, planned), planned.summary
