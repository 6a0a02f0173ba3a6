"""Read a team's per-environment configuration from `envs/<env>/<team>/*.tfvars`.

Layout: `variables.tfvars` (required; holds `account` and optionally `allowed_regions`), then an
optional `<region>.tfvars` or `global.tfvars` with per-scope values. Paths are built only from
validated tag parts, so nothing from a tag escapes `envs/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .tags import show

ENVS_DIR = "envs"
TEAM_FILE = "variables.tfvars"
_ACCOUNT_RE = re.compile(r"^[0-9]{12}$")


@dataclass(frozen=True)
class TeamConfig:
    account: str
    allowed_regions: tuple[str, ...] | None  # None: any Region
    var_files: tuple[str, ...]  # repo-relative, in the order Terraform should read them


def parse_tfvars(text: str, source: str) -> dict[str, Any]:
    """Parse tfvars text into plain Python values (strings without their quotes)."""
    import hcl2  # parsing cost only when a tfvars file is read

    options = hcl2.SerializationOptions(
        strip_string_quotes=True, explicit_blocks=False, with_comments=False
    )
    try:
        data = hcl2.loads(text, serialization_options=options)
    except Exception as exc:  # python-hcl2 raises lark errors of several types
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{source}: not valid HCL ({first_line}); fix the file") from None
    return data


def _read_tfvars(path: Path, rel: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{rel}: cannot be read ({exc})") from None
    return parse_tfvars(text, rel)


def team_config_from(values: dict[str, Any], rel: str) -> tuple[str, tuple[str, ...] | None]:
    """Validate `account` and `allowed_regions` from a parsed variables.tfvars."""
    account = values.get("account")
    if account is None:
        raise ConfigError(f"{rel}: no account; add account = \"123456789012\" (the team's 12-digit AWS account id)")
    if not isinstance(account, str):
        raise ConfigError(f"{rel}: account must be a quoted string of 12 digits, e.g. account = \"012345678901\"")
    if not _ACCOUNT_RE.match(account):
        raise ConfigError(f"{rel}: account {show(account)} is not a 12-digit AWS account id")
    allowed = values.get("allowed_regions")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(r, str) for r in allowed):
            raise ConfigError(f"{rel}: allowed_regions must be a list of Region codes")
        allowed = tuple(allowed)
    return account, allowed


def load_team(repo_root: Path, env: str, team: str, scope_name: str) -> TeamConfig:
    """Read and validate the team's files for one env and scope (Region code or `global`)."""
    env_dir = repo_root / ENVS_DIR / env
    team_rel = f"{ENVS_DIR}/{env}/{team}/{TEAM_FILE}"
    if not env_dir.is_dir():
        raise ConfigError(f"environment {env!r} has no folder {ENVS_DIR}/{env}/ in {repo_root}; "
                          f"create {team_rel}")
    team_path = repo_root / team_rel
    if not team_path.is_file():
        known = sorted(p.name for p in env_dir.iterdir() if (p / TEAM_FILE).is_file())
        raise ConfigError(f"team {team!r} is not set up for env {env!r}: {team_rel} does not exist "
                          f"(teams in {env}: {', '.join(known) or 'none'})")
    account, allowed = team_config_from(_read_tfvars(team_path, team_rel), team_rel)
    var_files = [team_rel]
    scope_rel = f"{ENVS_DIR}/{env}/{team}/{scope_name}.tfvars"
    scope_path = repo_root / scope_rel
    if scope_path.is_file():
        _read_tfvars(scope_path, scope_rel)  # fail early on a malformed file, naming it
        var_files.append(scope_rel)
    return TeamConfig(account=account, allowed_regions=allowed, var_files=tuple(var_files))
