"""Read a team's per-environment configuration from `envs/<env>/<team>/*.tfvars`.

Layout: `variables.tfvars` (required; holds `account` and optionally `allowed_regions`), then an
optional `<region>.tfvars` or `global.tfvars` with per-scope values. Paths are built only from
validated tag parts, so nothing from a tag escapes `envs/`; and no file there may be a symlink, so
nothing in the repo can point `envs/` at a file elsewhere on the machine.

Parsing is as strict as Terraform's: an attribute defined twice is an error ("Attribute
redefined"), not the last one silently winning; a file over `MAX_TFVARS_BYTES` is refused before it
is read (the parser needs time and memory many times the file's size).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .tags import show

ENVS_DIR = "envs"
TEAM_FILE = "variables.tfvars"
_ACCOUNT_RE = re.compile(r"[0-9]{12}")  # with fullmatch: `$` would accept a trailing newline
MAX_TFVARS_BYTES = 1024 * 1024
MAX_TFVARS_TEXT = "1 MiB"


@dataclass(frozen=True)
class TeamConfig:
    account: str
    allowed_regions: tuple[str, ...] | None  # None: any Region
    var_files: tuple[str, ...]  # repo-relative, in the order Terraform should read them


def parse_tfvars(text: str, source: str) -> dict[str, Any]:
    """Parse tfvars (or .tf) text into plain Python values (strings without their quotes).

    An attribute set twice in one body is an error naming the key, as in Terraform. Works with
    python-hcl2 or checkov's bc-python-hcl2, whichever owns the `hcl2` module (see `model/hcl.py`).
    """
    from .hcl import loads

    return loads(text, source)


def _read_tfvars(path: Path, rel: str) -> dict[str, Any]:
    try:
        # O_NOFOLLOW: even a symlink swapped in after the envs/ check is not followed.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_TFVARS_BYTES:
                raise ConfigError(f"{rel}: {size} bytes, over the {MAX_TFVARS_TEXT} limit for a tfvars "
                                  "file; keep only variable values there")
            text = handle.read(MAX_TFVARS_BYTES + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{rel}: cannot be read ({exc})") from None
    return parse_tfvars(text, rel)


def refuse_symlinks(repo_root: Path) -> None:
    """Refuse any symlink under envs/ (or envs/ itself being one), naming it.

    A link there, even one that stays in the repo, would let a reviewed path read an unreviewed
    file; the account of a deployment must come from the file named in the tag's layout.
    """
    base = repo_root / ENVS_DIR
    candidates = [base] if base.is_symlink() else []
    if not candidates:
        for dirpath, dirnames, filenames in os.walk(base):  # does not descend into linked dirs
            candidates += [Path(dirpath) / name for name in (*dirnames, *filenames)
                           if (Path(dirpath) / name).is_symlink()]
            if candidates:
                break
    if candidates:
        link = candidates[0]
        rel = link.relative_to(repo_root).as_posix()
        raise ConfigError(f"{rel} is a symlink (to {show(os.readlink(link))}); files under "
                          f"{ENVS_DIR}/ must be regular files in the repo: commit the file itself")


def team_config_from(values: dict[str, Any], rel: str) -> tuple[str, tuple[str, ...] | None]:
    """Validate `account` and `allowed_regions` from a parsed variables.tfvars."""
    account = values.get("account")
    if account is None:
        raise ConfigError(f"{rel}: no account; add account = \"123456789012\" (the team's 12-digit AWS account id)")
    if not isinstance(account, str):
        raise ConfigError(f"{rel}: account must be a quoted string of 12 digits, e.g. account = \"012345678901\"")
    if not _ACCOUNT_RE.fullmatch(account):
        raise ConfigError(f"{rel}: account {show(account)} is not a 12-digit AWS account id")
    allowed = values.get("allowed_regions")
    if allowed is not None:
        if not isinstance(allowed, list) or not all(isinstance(r, str) for r in allowed):
            raise ConfigError(f"{rel}: allowed_regions must be a list of Region codes")
        allowed = tuple(allowed)
    return account, allowed


def load_team(repo_root: Path, env: str, team: str, scope_name: str) -> TeamConfig:
    """Read and validate the team's files for one env and scope (Region code or `global`)."""
    refuse_symlinks(repo_root)
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
