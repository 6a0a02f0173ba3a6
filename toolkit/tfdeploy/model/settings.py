"""Repo settings: `[tool.tfdeploy]` in the infra repo's pyproject.toml, overridden by environment
variables (`TFDEPLOY_<NAME>`, plus the reference pattern's `TF_BACKEND_CONFIG_PREFIX`), overridden
by CLI options. Merging is a pure function; only `load_settings` reads a file.

Policy settings (POLICY_SETTINGS: what decides whether an apply is allowed) take no override: they
come only from committed files (gates/policy.py reads the default branch's and the tagged
commit's), and a `TFDEPLOY_<NAME>` variable or `--<name>` option for one is refused, so no
runner's environment or flags can switch a gate off.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .. import DISTRIBUTION, __version__
from ..errors import ConfigError
from .waves import (
    DEFAULT_MAX_PARALLEL_BUILDS,
    DEFAULT_WAVES,
    MAX_PARALLEL_BUILDS_CAP,
    check_bake_seconds,
    check_max_parallel_builds,
    check_waves,
)
from .regions import REGION_SHAPE, is_allowed
from .tags import ENV_RE, show

STATE_LAYOUTS = ("central", "regional")
# What the generated provider's default_tags may carry (each as `tfdeploy:<name>`). The default
# leaves out version and tag: they change with every release, so every taggable resource would show
# an in-place update on a release of unchanged code. The version is in outputs and the deployment
# record (release_version, tfdeploy.json) instead.
DEFAULT_TAG_NAMES = ("env", "team", "scope", "region", "managed-by", "version", "tag")
STABLE_DEFAULT_TAGS = ("env", "team", "scope", "managed-by")
LOCK_MODES = ("dynamodb", "s3")
# Matched with fullmatch: a `$`-anchored match accepts "InfraBuildRole\n" and splices it into ARNs.
_PREFIX_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
_IAM_NAME_RE = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
_BRANCH_RE = re.compile(r"[A-Za-z0-9._/-]{1,100}")
# toolkit_spec ends up in a buildspec and on pip's command line: one PEP 508 requirement (name,
# extras, version specifiers, or `name @ URL`), never an option, a marker or a shell metacharacter.
_REQ_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?(?:\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\])?"
_REQ_SPEC = r"(?:===?|~=|!=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+"
_REQ_URL = r"[a-z][a-z0-9+.-]*://[A-Za-z0-9._~:/?#@%+=-]+"
_TOOLKIT_SPEC_RE = re.compile(rf"{_REQ_NAME}(?:{_REQ_SPEC}(?:,{_REQ_SPEC})*| ?@ ?{_REQ_URL})?")
# modules/pipeline's name_prefix: the env's pipeline is <pipeline_name_prefix>-<env>.
_PIPELINE_PREFIX_RE = re.compile(r"[a-z][a-z0-9-]{1,14}[a-z0-9]")
DEFAULT_TOOLKIT_SPEC = f"{DISTRIBUTION}=={__version__}"
# A KMS key as KMS names it: a key id (UUID or multi-Region `mrk-`), `alias/<name>`, or the ARN of either.
_KMS_KEY_RE = re.compile(r"(?:arn:aws[a-z-]*:kms:[a-z]{2}(?:-[a-z]+)+-\d{1,2}:\d{12}:)?"
                         r"(?:key/)?(?:[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|mrk-[0-9a-f]{32})"
                         r"|(?:arn:aws[a-z-]*:kms:[a-z]{2}(?:-[a-z]+)+-\d{1,2}:\d{12}:)?alias/[A-Za-z0-9/_-]{1,250}")
# require_signed_evidence: ALL_ENVS stands for "every env"; None (the default) for "the protected envs".
ALL_ENVS = "*"
_TRUE, _FALSE = ("true", "yes", "on", "all", "*"), ("false", "no", "off", "none")
# An SNS topic ARN (standard or FIFO), any partition: what fleet/notify.py publishes to.
_SNS_TOPIC_ARN_RE = re.compile(r"arn:aws[a-z-]*:sns:[a-z]{2}(?:-[a-z]+)+-\d{1,2}:\d{12}:[A-Za-z0-9_-]{1,256}(?:\.fifo)?")


@dataclass(frozen=True)
class Settings:
    backend_prefix: str | None = None
    state_region: str = "us-east-1"
    global_region: str = "us-east-1"
    role_name: str = "InfraBuildRole"
    session_name: str = "INFRA_BUILD"
    environments: tuple[str, ...] = ("dev", "qa", "staging", "prod")
    state_layout: str = "central"
    lock: str = "s3"
    extra_regions: frozenset[str] = frozenset()
    default_branch: str = "main"
    kms_key_id: str | None = None
    # Envs where checkov findings are reported without failing the scan stage.
    scan_soft_fail_envs: tuple[str, ...] = ("dev",)
    checkov_baseline: str | None = None  # repo-relative checkov baseline file
    # What the generated buildspecs pip-install: the toolkit, never the infra repo itself.
    toolkit_spec: str = DEFAULT_TOOLKIT_SPEC
    # The env's pipeline is <pipeline_name_prefix>-<env> (modules/pipeline's name_prefix).
    pipeline_name_prefix: str = "tfdeploy"
    default_tags: tuple[str, ...] = STABLE_DEFAULT_TAGS  # see DEFAULT_TAG_NAMES
    # Envs whose cells `destroy` touches only with --allow-protected (a second, deliberate yes).
    protected_envs: tuple[str, ...] = ("prod",)
    # SNS topic told about failed applies, refused promotions and drift (fleet/notify.py); none: silent.
    notify_topic_arn: str | None = None
    # KMS asymmetric SIGN_VERIFY key (ECC_NIST_P256) that signs ledger records and verifies them
    # (fleet/signing.py); none: records are unsigned and promotion says so.
    ledger_signing_key: str | None = None
    # Envs whose promotion check accepts only signed evidence: a tuple of envs, (ALL_ENVS,) for all;
    # None (default): the protected envs. Without ledger_signing_key, an apply there is refused.
    require_signed_evidence: tuple[str, ...] | None = None
    # A release's rollout order and pace, locally and in CodeBuild batches (model/waves.py).
    waves: tuple[str, ...] = DEFAULT_WAVES
    max_parallel_builds: int = DEFAULT_MAX_PARALLEL_BUILDS
    wave_bake_seconds: int = 0
    # Where each value came from (`default`, `pyproject.toml`, an env var, `--option`), for -v output.
    origin: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def require_backend_prefix(self) -> str:
        if not self.backend_prefix:
            raise ConfigError(
                "backend_prefix is not set: add backend_prefix = \"<name>\" under [tool.tfdeploy] in "
                "pyproject.toml, or set TF_BACKEND_CONFIG_PREFIX, or pass --set backend_prefix=<name>"
            )
        return self.backend_prefix


SETTING_NAMES = tuple(f.name for f in fields(Settings) if f.name != "origin")

# What decides whether an apply (or a destroy) is allowed: the promotion order, which envs need a
# passing scan or a second yes, which findings are accepted, which commits may be deployed at all.
POLICY_SETTINGS = ("environments", "protected_envs", "scan_soft_fail_envs", "checkov_baseline",
                   "default_branch", "ledger_signing_key", "require_signed_evidence")

# One line per setting: what `tfdeploy settings` says it means (the CLI lists every setting from
# this table, and a test checks it covers SETTING_NAMES). Choices where fixed.
SETTING_HELP: dict[str, str] = {
    "backend_prefix": "State bucket/table name prefix [env: TF_BACKEND_CONFIG_PREFIX].",
    "state_region": "Region of the central state bucket.",
    "global_region": "Region global deployments run from.",
    "role_name": "Role assumed in the team account (default InfraBuildRole).",
    "session_name": "Assume-role session name (default INFRA_BUILD).",
    "environments": "Known environments in promotion order, comma-separated (default dev,qa,staging,prod).",
    "state_layout": "central: one bucket per env; regional: per Region.",
    "lock": "State lock: DynamoDB table or S3-native lockfile.",
    "extra_regions": "Region codes to accept beyond the built-in list, comma-separated.",
    "default_branch": "Tagged commits must be reachable from this branch (default main).",
    "kms_key_id": "KMS key for the state bucket's default encryption (bootstrap; default SSE-S3).",
    "scan_soft_fail_envs": "Envs where checkov findings do not fail the scan, comma-separated (default dev).",
    "checkov_baseline": "Repo-relative checkov baseline file of accepted findings.",
    "toolkit_spec": "pip requirement the generated buildspecs install (default tfdeploy-toolkit==<version>).",
    "pipeline_name_prefix": "The env's pipeline is <prefix>-<env> (default tfdeploy).",
    "default_tags": ("Provider default tags, comma-separated from " + ",".join(DEFAULT_TAG_NAMES)
                     + " (default " + ",".join(STABLE_DEFAULT_TAGS) + "; '' for none)."),
    "protected_envs": ("Envs whose cells destroy touches only with --allow-protected and whose applies need a "
                       "passing checkov scan, comma-separated (default prod)."),
    "notify_topic_arn": "SNS topic ARN told about failed applies, refused promotions and drift (default none).",
    "ledger_signing_key": ("KMS SIGN_VERIFY key (id, ARN or alias/NAME) that signs ledger records and verifies "
                           "promotion evidence (default none: records unsigned)."),
    "require_signed_evidence": ("Envs whose promotion needs signed ledger evidence, comma-separated; true for "
                                "all, false for none (default: the protected envs)."),
    "waves": ("Rollout waves of a release, comma-separated: global, a number of Regions, Region codes "
              "separated by spaces, * for the rest (default global,1,*: global, one canary Region, the rest)."),
    "max_parallel_builds": (f"Cells of one wave in flight at once (CodeBuild batch builds; 1 to "
                            f"{MAX_PARALLEL_BUILDS_CAP}, default {DEFAULT_MAX_PARALLEL_BUILDS})."),
    "wave_bake_seconds": "Seconds to wait after a wave succeeded before the next starts (default 0).",
}
SETTING_CHOICES: dict[str, tuple[str, ...]] = {"state_layout": STATE_LAYOUTS, "lock": LOCK_MODES}


def option_flag(name: str) -> str:
    """The CLI option of a setting: `--<name>` with `-` for `_`."""
    return "--" + name.replace("_", "-")

# Env var names per setting; the first one set wins.
ENV_VARS: dict[str, tuple[str, ...]] = {
    name: (f"TFDEPLOY_{name.upper()}",) for name in SETTING_NAMES
}
ENV_VARS["backend_prefix"] = ("TFDEPLOY_BACKEND_PREFIX", "TF_BACKEND_CONFIG_PREFIX")


def _as_list(value: Any, name: str, source: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [item.strip() for item in value.split(",") if item.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"setting {name} from {source} must be a list of strings")
    return tuple(value)


def _check(name: str, value: Any, source: str) -> Any:
    """Validate one setting value; return it in its typed form."""
    where = f"setting {name} = {show(str(value))} (from {source})"
    if name == "require_signed_evidence":
        return _signed_envs(value, where, source)
    if name == "waves":
        return check_waves(_as_list(value, name, source), where)
    if name == "max_parallel_builds":
        return check_max_parallel_builds(value, where)
    if name == "wave_bake_seconds":
        return check_bake_seconds(value, where)
    if name == "default_tags":
        items = _as_list(value, name, source)
        bad = [t for t in items if t not in DEFAULT_TAG_NAMES]
        if bad:
            raise ConfigError(f"{where}: {show(bad[0])} is not a default tag tfdeploy knows; "
                              f"choose from {', '.join(DEFAULT_TAG_NAMES)} (or [] for none)")
        return tuple(dict.fromkeys(items))
    if name in ("environments", "extra_regions", "scan_soft_fail_envs", "protected_envs"):
        items = _as_list(value, name, source)
        if name in ("environments", "scan_soft_fail_envs", "protected_envs"):
            if not items and name == "environments":
                raise ConfigError(f"{where}: list at least one environment")
            bad = [e for e in items if not ENV_RE.fullmatch(e)]
            if bad:
                raise ConfigError(f"{where}: {show(bad[0])} is not a valid env name "
                                  "(lowercase letters, digits, '-')")
            return items
        bad = [r for r in items if not REGION_SHAPE.fullmatch(r)]
        if bad:
            raise ConfigError(f"{where}: {show(bad[0])} is not shaped like a Region code (xx-name-1)")
        return frozenset(items)
    if not isinstance(value, str):
        raise ConfigError(f"{where}: must be a string")
    if name == "backend_prefix" and not _PREFIX_RE.fullmatch(value):
        raise ConfigError(f"{where}: use 1-40 lowercase letters, digits or '-' (it starts S3 bucket names)")
    if name in ("role_name", "session_name") and not _IAM_NAME_RE.fullmatch(value):
        raise ConfigError(f"{where}: use 1-64 letters, digits or +=,.@_-")
    if name == "state_layout" and value not in STATE_LAYOUTS:
        raise ConfigError(f"{where}: must be one of {', '.join(STATE_LAYOUTS)}")
    if name == "lock" and value not in LOCK_MODES:
        raise ConfigError(f"{where}: must be one of {', '.join(LOCK_MODES)}")
    if name == "default_branch" and not _BRANCH_RE.fullmatch(value):
        raise ConfigError(f"{where}: not a valid branch name")
    if name == "toolkit_spec" and (len(value) > 300 or not _TOOLKIT_SPEC_RE.fullmatch(value)):
        raise ConfigError(f"{where}: must be one pip requirement, e.g. {DEFAULT_TOOLKIT_SPEC!r} or "
                          f"'{DISTRIBUTION} @ https://host/path.whl' (no options, markers "
                          "or shell characters: it is written into the buildspecs)")
    if name == "notify_topic_arn" and not _SNS_TOPIC_ARN_RE.fullmatch(value):
        raise ConfigError(f"{where}: must be an SNS topic ARN, e.g. "
                          "arn:aws:sns:us-east-1:123456789012:tfdeploy-alerts")
    if name == "ledger_signing_key" and not _KMS_KEY_RE.fullmatch(value):
        raise ConfigError(f"{where}: must name a KMS key: its id, its ARN or alias/NAME, e.g. "
                          "alias/tfdeploy-ledger (modules/pipeline's ledger_signing_key_arn output)")
    if name == "pipeline_name_prefix" and not _PIPELINE_PREFIX_RE.fullmatch(value):
        raise ConfigError(f"{where}: use 3-16 lowercase letters, digits or '-', starting with a "
                          "letter (modules/pipeline's name_prefix)")
    return value


def policy_refusal(name: str, given_as: str) -> str:
    """The one line that refuses an override of a policy setting (pure)."""
    return (f"{given_as} sets {name}, which is policy: it is read only from the committed "
            "pyproject.toml ([tool.tfdeploy]) of the default branch and of the tagged commit (the "
            f"stricter wins), never from a runner's flags or environment; remove {given_as} and "
            f"change {name} in a reviewed commit")


def refuse_policy_overrides(environ: Mapping[str, str], overrides: Mapping[str, Any]) -> None:
    """ConfigError for the first policy setting given as an option or an environment variable."""
    for name in POLICY_SETTINGS:
        if overrides.get(name) is not None:
            raise ConfigError(policy_refusal(name, option_flag(name)))
        for var in ENV_VARS[name]:
            if environ.get(var):
                raise ConfigError(policy_refusal(name, var))


def _signed_envs(value: Any, where: str, source: str) -> tuple[str, ...]:
    """require_signed_evidence: true/false (TOML or a word) or a list of envs."""
    if isinstance(value, bool) or (isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE):
        on = value if isinstance(value, bool) else value.strip().lower() in _TRUE
        return (ALL_ENVS,) if on else ()
    items = _as_list(value, "require_signed_evidence", source)
    bad = [e for e in items if not ENV_RE.fullmatch(e)]
    if bad:
        raise ConfigError(f"{where}: {show(bad[0])} is not a valid env name; give env names, true (all envs) "
                          "or false (none)")
    return items


def signed_evidence_envs(settings: Settings) -> tuple[str, ...]:
    """The envs whose promotion needs signed evidence (pure): require_signed_evidence resolved."""
    chosen = settings.require_signed_evidence
    if chosen is None:
        return settings.protected_envs
    return settings.environments if ALL_ENVS in chosen else chosen


def merge_settings(
    table: Mapping[str, Any],
    environ: Mapping[str, str],
    overrides: Mapping[str, Any],
    table_source: str = "pyproject.toml",
) -> Settings:
    """Combine the three layers (file < environment < CLI) into validated Settings; policy
    settings come from the file alone (refuse_policy_overrides)."""
    refuse_policy_overrides(environ, overrides)
    unknown = sorted(set(table) - set(SETTING_NAMES))
    if unknown:
        raise ConfigError(
            f"unknown setting {show(unknown[0])} in {table_source} [tool.tfdeploy]; "
            f"known settings: {', '.join(SETTING_NAMES)}"
        )
    values: dict[str, Any] = {}
    origin: dict[str, str] = {name: "default" for name in SETTING_NAMES}
    for name in SETTING_NAMES:
        candidates: list[tuple[Any, str]] = []
        if name in table:
            candidates.append((table[name], table_source))
        for var in reversed(ENV_VARS[name]):
            if environ.get(var):
                candidates.append((environ[var], var))
        if overrides.get(name) is not None:
            candidates.append((overrides[name], f"--set {name}"))  # the CLI's one override form
        if candidates:
            raw, source = candidates[-1]
            values[name] = _check(name, raw, source)
            origin[name] = source
    settings = Settings(**values, origin=origin)
    # The defaults name envs a repo may not have (prod); a value someone wrote must not.
    for name in ("scan_soft_fail_envs", "protected_envs", "require_signed_evidence"):
        unknown_envs = [e for e in getattr(settings, name) or () if e not in (*settings.environments, ALL_ENVS)]
        if unknown_envs and origin[name] != "default":
            raise ConfigError(f"setting {name} names {unknown_envs[0]!r}, which is not in "
                              f"environments ({', '.join(settings.environments)})")
    for name in ("state_region", "global_region"):
        region = getattr(settings, name)
        if not is_allowed(region, settings.extra_regions):
            raise ConfigError(f"setting {name} = {show(region)} (from {origin[name]}) "
                              "is not a known AWS Region")
    return settings


def read_pyproject_table(repo_root: Path) -> dict[str, Any]:
    """The `[tool.tfdeploy]` table of the repo's pyproject.toml ({} when absent)."""
    path = repo_root / "pyproject.toml"
    if not path.is_file():
        return {}
    if path.is_symlink() and not path.resolve().is_relative_to(repo_root.resolve()):
        raise ConfigError(f"{path} is a symlink to {path.resolve()}, outside the repo; settings "
                          "must come from the repo itself: commit the file instead of a link")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from None
    return parse_pyproject_table(text, str(path))


def parse_pyproject_table(text: str, source: str) -> dict[str, Any]:
    """The `[tool.tfdeploy]` table of a pyproject.toml's text ({} when absent; pure)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc}); fix the file") from None
    table = data.get("tool", {}).get("tfdeploy", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [tool.tfdeploy] must be a table")
    return table


def load_settings(
    repo_root: Path, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
) -> Settings:
    return merge_settings(read_pyproject_table(repo_root), environ, overrides or {})
