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
    """Credentials exist (or the sandbox runs). Whether AWS accepts them, the state bucket check's
    request finds out: no STS client is built for it (a client costs ~0.1-0.5 s to make)."""
    from ..engine.stages import terraform_environment

    try:
        _env, fleet.endpoint, _extra = terraform_environment(fleet.repo_root, fleet.environ)
    except PreflightError:
        raise
    except TfdeployError as exc:
        raise PreflightError(f"{exc}; no cell was started") from None


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
            if code in ("400", "401", "403", "AccessDenied", "Forbidden", "ExpiredToken",
                        "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"):
                raise PreflightError(f"state bucket {bucket} refused these credentials ({code}; cells {shown}); "
                                     "no cell was started: check them (expired? another account?) and that "
                                     "they may read and write the bucket") from None
            if type(exc).__name__ in ("NoCredentialsError", "PartialCredentialsError"):
                raise PreflightError(f"no usable AWS credentials ({_short(exc)}); no cell was started: set "
                                     "AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY") from None
            raise PreflightError(f"cannot reach state bucket {bucket} in {region} ({_short(exc)}); no cell "
                                 "was started: check the network or endpoint, then run again") from None




def run_checks(fleet: Fleet, checks: Sequence[Check] | None = None) -> None:
    """Run `checks` (default: CHECKS) in order; the first problem raises PreflightError."""
    for check in CHECKS if checks is None else checks:
        check(fleet)


def state_buckets(fleet: Fleet) -> dict[tuple[str, str], list[str]]:
    """(bucket, Region) -> the cells using it, from each tag's committed settings (the settings
    the cell's work dir will use). A tag whose source or settings cannot be read is left to its
    cell, which reports that on its own."""
    from ..model.backend import backend_for

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
                by_commit[source.commit] = _committed_settings(fleet, source.commit)
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


def _committed_settings(fleet: Fleet, commit: str) -> Settings:
    """The settings of `commit`'s pyproject.toml (one `git show`), as its work dir will load them."""
    from ..gates.policy import committed_table
    from ..model.settings import merge_settings

    return merge_settings(committed_table(fleet.repo_root, commit), fleet.environ, fleet.overrides)


def check_signing_keys(fleet: Fleet) -> None:
    """Every ledger signing key the run needs can be used: the default branch's (promotion
    evidence is verified with it) and each tagged commit's (its records are signed with it). One
    GetPublicKey per key, kept in the repo cache for the cells' own checks."""
    from ..gates.policy import repo_policy
    from ..paths import repo_cache_dir
    from .signing import SigningError, trust_for

    keyed = [s for s in repo_policy(fleet.repo_root, fleet.environ) if s.ledger_signing_key]
    for tag in fleet.tags:
        source = fleet.sources.get(tag.name)
        if source is None or isinstance(source, TfdeployError) or source.worktree:
            continue
        try:
            settings = _committed_settings(fleet, source.commit)
        except TfdeployError:
            continue  # the cell reports its own settings
        if settings.ledger_signing_key:
            keyed.append(settings)
    cache = repo_cache_dir(fleet.repo_root, fleet.environ)
    for key in sorted({s.ledger_signing_key for s in keyed}):
        settings = next(s for s in keyed if s.ledger_signing_key == key)
        try:
            trust_for([settings], fleet.environ, cache)
        except SigningError as exc:
            raise PreflightError(f"ledger signing key {key} cannot be used ({exc}); no cell was started: "
                                 "grant kms:GetPublicKey and kms:Sign on it, or fix ledger_signing_key in "
                                 "pyproject.toml") from None


# Cheapest and most basic first: a bucket check needs credentials; a key check, a working client.
CHECKS: list[Check] = [check_credentials, check_state_buckets, check_signing_keys]


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    return code or str(response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."
