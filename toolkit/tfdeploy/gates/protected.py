"""Protected envs (`protected_envs`, default prod): an apply there needs a passing checkov scan of
the code it is about to apply, whatever the flags.

The scan runs on the cell's work dir — the exact tagged commit the plan was (or is about to be)
made from — under the env's policy, before Terraform changes anything. Why not trust an earlier
`tfdeploy scan`: its result lives outside the apply and could be of another commit; 3 seconds of
checkov buys certainty. checkov missing is a refusal here (never a skip).
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

from ..errors import TfdeployError, ToolMissingError
from ..model.settings import Settings
from ..results import FAILED, StageResult


class ScanRefused(TfdeployError):
    """An apply in a protected env whose code does not pass the scan."""


def is_protected(env: str, settings: Sequence[Settings]) -> bool:
    """Protected by any of the settings (working tree, tagged commit): a commit adds, never lifts."""
    return any(env in s.protected_envs for s in settings)


def soft_fail_envs(settings: Sequence[Settings]) -> frozenset[str]:
    """Envs soft-failing in *every* settings given: a commit cannot soften the policy alone."""
    sets = [frozenset(s.scan_soft_fail_envs) for s in settings]
    return frozenset.intersection(*sets) if sets else frozenset()


def failed_rules(result: StageResult, limit: int = 5) -> str:
    rules = list(dict.fromkeys(f.rule for f in result.findings if f.severity != "warning"))
    shown = ", ".join(rules[:limit]) + (f" and {len(rules) - limit} more" if len(rules) > limit else "")
    return shown or "see the scan result"


def require_passing_scan(workdir: object, settings: Sequence[Settings], *, repo_root: Path,
                         environ: Mapping[str, str]) -> StageResult | None:
    """Scan the work dir when its env is protected; None when it is not. Raises ScanRefused (a
    failing scan) or ToolMissingError (no checkov) — nothing applied either way."""
    from .scan import run_scan

    tag = workdir.deployment.tag  # type: ignore[attr-defined]
    if not is_protected(tag.env, settings):
        return None
    from .policy import stricter_baseline

    path: Path = workdir.path  # type: ignore[attr-defined]
    commit = workdir.source.commit[:12]  # type: ignore[attr-defined]
    accepted = stricter_baseline(list(settings))
    baseline = path / accepted if accepted else None
    try:
        result = run_scan(path, target=workdir.deployment.target_module,  # type: ignore[attr-defined]
                          repo_root=repo_root, env=tag.env, soft_fail_envs=soft_fail_envs(settings),
                          baseline=baseline, environ=environ,
                          results_dir=workdir.results_dir)  # type: ignore[attr-defined]
    except ToolMissingError:
        raise ToolMissingError(
            f"env {tag.env} is protected (protected_envs): applying {tag.name} needs a passing checkov scan "
            f"of commit {commit}, and checkov is not installed; install it with tfdeploy tools install "
            "checkov or set TFDEPLOY_CHECKOV; nothing applied") from None
    if result.status == FAILED:
        failed = sum(1 for f in result.findings if f.severity != "warning")
        raise ScanRefused(
            f"env {tag.env} is protected (protected_envs): the checkov scan of {tag.name} (commit {commit}) "
            f"failed with {failed} finding(s) ({failed_rules(result)}); nothing applied; fix them and tag a "
            f"new version (tfdeploy scan --tag {tag.name} lists them)")
    return result
