"""What travels with the cells of one command, as typed objects instead of a dozen parameters.

The CLI builds them once from its options (cli/fanout.py `run_options`); the runner, the actions
and `apply_cell` read them. One cell and a fan-out get the same objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class PromotionOverride:
    """`--skip-promotion-check --reason TEXT` (or TFDEPLOY_SKIP_PROMOTION_CHECK_REASON): the one
    reason the promotion check may be skipped for, recorded in the ledger. Empty: no override."""

    reason: str = ""

    def __bool__(self) -> bool:
        return bool(self.reason)

    @classmethod
    def requested(cls, skip: bool, reason: str | None, environ: Mapping[str, str]) -> PromotionOverride:
        """From the command line and environment; a skip without a reason (or a reason without a
        skip) is refused in one line (fleet/promotion.py `override_reason`)."""
        from .promotion import override_reason

        return cls(override_reason(skip, reason, environ))


def _default_source() -> Any:
    from ..engine.stages import SourceOptions

    return SourceOptions()


@dataclass(frozen=True)
class RunOptions:
    """How one command runs its cells: where the code comes from, which Terraform, how long to
    wait for locks, how many at once, what to do on failure, and the apply's own choices."""

    source: Any = field(default_factory=_default_source)  # engine.stages.SourceOptions
    terraform_bin: str | None = None
    lock_timeout_s: float = 0.0
    as_json: bool = False
    exports: bool = False  # the one-cell view also prints the KEY=VALUE lines
    detailed_exitcode: bool = False
    parallel: int = 1
    fail_fast: bool = False
    retry: int = 0
    only_failed: bool = False
    auto_approve: bool = False
    override: PromotionOverride = PromotionOverride()
    allow_protected: bool = False  # destroy: also an env listed in protected_envs
