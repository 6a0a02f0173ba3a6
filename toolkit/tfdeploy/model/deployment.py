"""Resolve a tag into a complete, immutable description of one deployment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .backend import BackendConfig, backend_for
from .envs import TeamConfig, load_team
from .regions import partition_of
from .settings import Settings
from .tags import Tag, check_region, parse_tag

MODULE_FOR_SCOPE = {"regional": "module.regional", "global": "module.global"}


@dataclass(frozen=True)
class Deployment:
    tag: Tag
    region: str  # the provider's Region: the tag's, or global_region for a global deployment
    account: str
    partition: str
    role_arn: str
    session_name: str
    target_module: str
    backend: BackendConfig
    var_files: tuple[str, ...]
    # (key, value) pairs of the generated provider's default_tags, from the default_tags setting.
    default_tags: tuple[tuple[str, str], ...] = ()
    # Signs the cell's ledger records (fleet/signing.py); an alias or id is looked up in state_region.
    ledger_signing_key: str = ""
    state_region: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "tag": self.tag.name,
            "env": self.tag.env,
            "scope": self.tag.scope,
            "scope_name": self.tag.scope_name,
            "region": self.region,
            "team": self.tag.team,
            "version": self.tag.version,
            "cell": self.tag.cell,
            "target_module": self.target_module,
            "account": self.account,
            "partition": self.partition,
            "role_arn": self.role_arn,
            "session_name": self.session_name,
            "var_files": list(self.var_files),
            "backend": self.backend.to_dict(),
            "default_tags": dict(self.default_tags),
        }


def default_tag_pairs(tag: Tag, region: str, names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Pure: the provider's default tags for the chosen names (`default_tags` setting)."""
    values = {"env": tag.env, "team": tag.team, "scope": tag.scope_name, "region": region,
              "managed-by": "tfdeploy", "version": tag.version, "tag": tag.name}
    return tuple((f"tfdeploy:{name}", values[name]) for name in names)


def check_env(tag: Tag, settings: Settings) -> None:
    if tag.env not in settings.environments:
        raise ConfigError(
            f"env {tag.env!r} is not one of the configured environments "
            f"({', '.join(settings.environments)}); add it to environments in [tool.tfdeploy]"
        )


def build_deployment(tag: Tag, settings: Settings, team: TeamConfig) -> Deployment:
    """Pure: combine a parsed tag, settings and the team's config."""
    check_env(tag, settings)
    region = tag.region or settings.global_region
    if tag.region and team.allowed_regions is not None and tag.region not in team.allowed_regions:
        raise ConfigError(
            f"Region {tag.region} is not allowed for team {tag.team!r} in {tag.env}: "
            f"{team.var_files[0]} allows {', '.join(team.allowed_regions) or 'none'}; "
            "add it to allowed_regions there"
        )
    partition = partition_of(region)
    return Deployment(
        tag=tag,
        region=region,
        account=team.account,
        partition=partition,
        role_arn=f"arn:{partition}:iam::{team.account}:role/{settings.role_name}",
        session_name=settings.session_name,
        target_module=MODULE_FOR_SCOPE[tag.scope],
        backend=backend_for(tag, settings, region),
        var_files=team.var_files,
        default_tags=default_tag_pairs(tag, region, settings.default_tags),
        ledger_signing_key=settings.ledger_signing_key or "",
        state_region=settings.state_region,
    )


def resolve(tag_name: str, settings: Settings, repo_root: Path) -> Deployment:
    """Tag name -> Deployment, reading envs/ from the repo (the only I/O here). For a caller that
    has only the name (`tfdeploy resolve`, a ledger record); the deploy path parses the tag once at
    the CLI edge and calls resolve_tag."""
    return resolve_tag(parse_tag(tag_name, settings.extra_regions), settings, repo_root)


def resolve_tag(tag: Tag, settings: Settings, repo_root: Path) -> Deployment:
    """A parsed Tag -> Deployment, under these settings (the tagged commit's) and envs/."""
    check_region(tag, settings.extra_regions)
    # Checked before reading files so the message is about the env, not a missing folder.
    check_env(tag, settings)
    settings.require_backend_prefix()
    team = load_team(repo_root, tag.env, tag.team, tag.scope_name)
    return build_deployment(tag, settings, team)
