"""Checks a fan-out makes once, before any cell starts, on what every cell shares.

Without them, one missing thing (no credentials, a state bucket not bootstrapped yet) failed
every cell with the same error, a dozen times over. A check gets the selection (`Fleet`) and
raises `PreflightError` with one line saying what is wrong and what to do; the first failing
check stops the run (exit 1), before any work dir, lock or record exists.

To add a check (e.g. the ledger signing key): write `def check_x(fleet: Fleet) -> None` here or
in its own module and add it to `CHECKS` (order: cheapest and most basic first). A check that
needs something another check established (a working client) comes after that check.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import TfdeployError
from ..model.settings import Settings
from ..model.tags import Tag


class PreflightError(TfdeployError):
    """Something every cell of the run needs is missing (exit 1; no cell started)."""


@dataclass
class Fleet:
    """What the checks see: the selected cells and where their code comes from."""

    repo_root: Path
    settings: Settings  # the working tree's
    environ: Mapping[str, str]
    overrides: Mapping[str, Any]
    tags: Sequence[Tag]
    sources: Mapping[str, Any]  # tag name -> engine.gitsource.SourceRef, or the TfdeployError it raised
    endpoint: str | None = None  # the sandbox's, once `check_credentials` ran
    memo: dict[str, Any] = field(default_factory=dict)  # what one check found, for the next


Check = Callable[[Fleet], None]


def check_credentials(fleet: Fleet) -> None:
    """Credentials exist (or the sandbox runs) and AWS accepts them: one STS call."""
    from ..aws.clients import client
    from ..engine.stages import terraform_environment

    try:
        _env, fleet.endpoint, _extra = terraform_environment(fleet.repo_root, fleet.environ)
    except PreflightError:
        raise
    except TfdeployError as exc:
        raise PreflightError(f"{exc}; no cell was started") from None
    try:
        client("sts", fleet.settings.state_region, fleet.environ, fleet.endpoint).get_caller_identity()
    except Exception as exc:  # noqa: BLE001 - any failure here fails every cell the same way
        where = f"the sandbox at {fleet.endpoint}" if fleet.endpoint else "AWS"
        raise PreflightError(f"{where} does not accept these credentials ({_short(exc)}); no cell was started: "
                             "renew or fix them (aws sso login, AWS_PROFILE, or eval \"$(tfdeploy sandbox env)\") "
                             "and run again") from None


def check_state_buckets(fleet: Fleet) -> None:
    """Every state bucket the cells use exists and can be reached: one HeadBucket each."""
    from ..aws.clients import client

    buckets = state_buckets(fleet)
    for (bucket, region), cells in sorted(buckets.items()):
        try:
            client("s3", region, fleet.environ, fleet.endpoint).head_bucket(Bucket=bucket)
        except Exception as exc:  # noqa: BLE001
            envs = sorted({cell.split("-", 1)[0] for cell in cells})
            code = _code(exc)
            shown = f"{', '.join(cells[:3])}" + (f" and {len(cells) - 3} more" if len(cells) > 3 else "")
            if code in ("404", "NoSuchBucket", "NotFound"):
                raise PreflightError(f"state bucket {bucket} does not exist (cells {shown}); no cell was "
                                     f"started: run tfdeploy bootstrap --env {envs[0]}") from None
            if code in ("403", "AccessDenied", "Forbidden"):
                raise PreflightError(f"access to state bucket {bucket} denied (cells {shown}); no cell was "
                                     "started: use credentials allowed to read and write it") from None
            raise PreflightError(f"cannot reach state bucket {bucket} in {region} ({_short(exc)}); no cell "
                                 "was started: check the network or endpoint, then run again") from None


CHECKS: list[Check] = [check_credentials, check_state_buckets]


def run_checks(fleet: Fleet, checks: Sequence[Check] | None = None) -> None:
    """Run `checks` (default: CHECKS) in order; the first problem raises PreflightError."""
    for check in CHECKS if checks is None else checks:
        check(fleet)


def state_buckets(fleet: Fleet) -> dict[tuple[str, str], list[str]]:
    """(bucket, Region) -> the cells using it, from each tag's committed settings (the settings
    the cell's work dir will use). A tag whose source or settings cannot be read is left to its
    cell, which reports that on its own."""
    from ..engine.gitsource import existing_paths, export_commit
    from ..model.backend import backend_for
    from ..model.settings import load_settings

    by_commit: dict[str, Settings | None] = {}
    found: dict[tuple[str, str], list[str]] = {}
    for tag in fleet.tags:
        source = fleet.sources.get(tag.name)
        if source is None or isinstance(source, TfdeployError):
            continue
        if source.worktree:
            settings: Settings | None = fleet.settings
        elif source.commit not in by_commit:
            try:
                with tempfile.TemporaryDirectory(prefix="tfdeploy-preflight-") as tmp:
                    paths = existing_paths(fleet.repo_root, source.commit, ["pyproject.toml"])
                    if paths:
                        export_commit(fleet.repo_root, source.commit, Path(tmp), paths)
                    by_commit[source.commit] = load_settings(Path(tmp), fleet.environ, fleet.overrides)
            except TfdeployError:
                by_commit[source.commit] = None
            settings = by_commit[source.commit]
        else:
            settings = by_commit[source.commit]
        if settings is None:
            continue
        try:
            backend = backend_for(tag, settings, tag.region or settings.global_region)
        except TfdeployError:
            continue
        found.setdefault((backend.bucket, backend.region), []).append(tag.cell)
    return found


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code or str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."
