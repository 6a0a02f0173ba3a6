"""Terraform S3 backend settings for a deployment (pure).

Two layouts, from the reference pattern:
- central (default): one state bucket per env in `state_region`: bucket `<prefix>-<env>`,
  lock table `<prefix>-lock-<env>`, key `<team>/<env>-<scope>/terraform.tfstate`.
- regional: state lives in the deployment's own Region: bucket `<prefix>-<regionshort>-<env>`,
  table `<prefix>-<regionshort>-lock-<env>`, key `<team>/<env>/terraform.tfstate`.

Both lock modes take the S3 lockfile (`use_lockfile`); dynamodb mode takes the table's lock as
well. So two runs of one cell contend on the same lockfile whatever mode each was given, and the
dynamodb mode still keeps the state digest the lock table is known for.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .regions import short_name
from .settings import Settings
from .tags import Tag

MAX_BUCKET_NAME = 63


@dataclass(frozen=True)
class BackendConfig:
    bucket: str
    key: str
    region: str
    encrypt: bool = True
    dynamodb_table: str | None = None  # set in dynamodb lock mode
    use_lockfile: bool = True  # S3-native locking (Terraform >= 1.11), in both modes
    # The env's lock table whatever the mode: where a dynamodb-mode digest row would be found.
    lock_table: str | None = None

    @property
    def lock_mode(self) -> str:
        return "dynamodb" if self.dynamodb_table else "s3"

    @property
    def lockfile(self) -> str:
        return f"s3://{self.bucket}/{self.key}.tflock"

    @property
    def lock_description(self) -> str:
        if self.dynamodb_table:
            return f"DynamoDB table {self.dynamodb_table} + S3 lockfile {self.lockfile}"
        return f"S3 lockfile {self.lockfile}"

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "bucket": self.bucket,
            "key": self.key,
            "region": self.region,
            "encrypt": self.encrypt,
        }
        if self.dynamodb_table:
            data["dynamodb_table"] = self.dynamodb_table
        data["use_lockfile"] = self.use_lockfile
        return data

    def backend_config_args(self) -> dict[str, str]:
        """Values for `terraform init -backend-config=K=V`, as Terraform spells them."""
        return {
            key: ("true" if value is True else "false" if value is False else str(value))
            for key, value in self.to_dict().items()
        }


def bucket_name(settings: Settings, env: str, region: str) -> str:
    """The env's state bucket; `region` matters only in the regional layout."""
    prefix = settings.require_backend_prefix()
    if settings.state_layout == "regional":
        bucket = f"{prefix}-{short_name(region)}-{env}"
    else:
        bucket = f"{prefix}-{env}"
    if len(bucket) > MAX_BUCKET_NAME:
        raise ConfigError(
            f"state bucket name {bucket!r} is {len(bucket)} characters (S3 allows {MAX_BUCKET_NAME}); "
            "use a shorter backend_prefix or env name"
        )
    return bucket


def lock_table_name(settings: Settings, env: str, region: str, any_mode: bool = False) -> str | None:
    """The env's lock table (None in S3-lockfile mode, unless `any_mode`)."""
    if settings.lock != "dynamodb" and not any_mode:
        return None
    prefix = settings.require_backend_prefix()
    if settings.state_layout == "regional":
        return f"{prefix}-{short_name(region)}-lock-{env}"
    return f"{prefix}-lock-{env}"


def state_region(settings: Settings, region: str) -> str:
    """Where the env's state bucket lives: state_region, or the deployment's Region (regional)."""
    return region if settings.state_layout == "regional" else settings.state_region


def backend_for(tag: Tag, settings: Settings, region: str) -> BackendConfig:
    """Backend config for a tag; `region` is the deployment's effective Region."""
    bucket = bucket_name(settings, tag.env, region)
    if settings.state_layout == "regional":
        key = f"{tag.team}/{tag.env}/terraform.tfstate"
    else:
        key = f"{tag.team}/{tag.env}-{tag.scope_name}/terraform.tfstate"
    table = lock_table_name(settings, tag.env, region)
    return BackendConfig(bucket=bucket, key=key, region=state_region(settings, region),
                         dynamodb_table=table, use_lockfile=True,
                         lock_table=lock_table_name(settings, tag.env, region, any_mode=True))
