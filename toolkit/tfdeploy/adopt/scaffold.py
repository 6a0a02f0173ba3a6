"""`tfdeploy scaffold`: a ready infra repo that lint, resolve, plan and the pipeline accept as is.

What it writes (pure: `scaffold_files`), then `write_scaffold` puts it on disk without ever
overwriting a file:

- `pyproject.toml` with `[tool.tfdeploy]` (only settings; the infra repo is not a Python package);
- the root (`versions.tf` with the partial `backend "s3" {}`, `variables.tf` with the contract
  `env, region, team, account, release_version`, `main.tf` with both namespaces `module.regional`
  and `module.global`, `outputs.tf`) and provider-free starter modules a user replaces;
- `envs/<env>/<team>/variables.tfvars` with a placeholder account and `allowed_regions`, and a
  `<region>.tfvars` per Region;
- `.gitignore`, `.tflint.hcl`, the generated `buildspecs/`;
- `pipeline/`: a root using this project's `modules/pipeline` through a versioned source, handing
  it the stage buildspecs (so the CodeBuild projects carry them, and old tags still deploy).

The starters carry the release version only in outputs, never in resource arguments, so a new tag
of unchanged code plans no changes.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .. import __version__
from ..errors import ValidationError
from ..model.regions import REGION_SHAPE, is_allowed
from ..model.tags import ENV_RE, TEAM_RE, show

PLACEHOLDER_ACCOUNT = "000000000000"
DEFAULT_PIPELINE_MODULE_SOURCE = (
    f"git::https://example.com/REPLACE-WITH-TFDEPLOY-REPO.git//modules/pipeline?ref=v{__version__}"
)
STAGES = ("source", "tflint", "checkov", "plan", "apply")
# modules/pipeline's key alias (alias/<name_prefix>-ledger, name_prefix "tfdeploy"), which is also
# the sandbox's (aws/signingkey.py): one committed setting signs on AWS and offline alike.
LEDGER_KEY_ALIAS = "alias/tfdeploy-ledger"
_COMMIT_PINNED = re.compile(r"[?&]ref=[0-9a-f]{40}(?:&|$)")
_PIPELINE_ENV = re.compile(r"[a-z][a-z0-9]{1,15}")  # modules/pipeline's env rule


@dataclass(frozen=True)
class ScaffoldOptions:
    backend_prefix: str
    teams: tuple[str, ...] = ("platform",)
    envs: tuple[str, ...] = ("dev", "prod")
    regions: tuple[str, ...] = ("us-east-1",)
    pipeline_module_source: str = DEFAULT_PIPELINE_MODULE_SOURCE
    extra_regions: frozenset[str] = field(default_factory=frozenset)


def validate(options: ScaffoldOptions) -> None:
    """Every name is checked with the model's own rules before anything is written."""
    from ..model.settings import _check

    _check("backend_prefix", options.backend_prefix, "--backend-prefix")
    for kind, values, rule, text in (
        ("--env", options.envs, ENV_RE, "lowercase letters, digits and '-', starting with a letter, 1-20"),
        ("--team", options.teams, TEAM_RE, "lowercase letters, digits and '-', starting with a letter, 1-40"),
    ):
        if len(set(values)) != len(values):
            raise ValidationError(f"{kind} given twice with the same value; list each once")
        for value in values:
            if not rule.fullmatch(value):
                raise ValidationError(f"{kind} {show(value)} is not a valid name ({text})")
    for env in options.envs:
        if not _PIPELINE_ENV.fullmatch(env):
            raise ValidationError(f"--env {show(env)}: the pipeline module needs 2-16 lowercase letters or "
                                  "digits (no '-': it would make the <env>_ tag prefix ambiguous)")
    for region in options.regions:
        if region == "global" or not REGION_SHAPE.fullmatch(region) or not is_allowed(region, options.extra_regions):
            raise ValidationError(f"--region {show(region)} is not a known AWS Region code (e.g. us-east-1); "
                                  "global deployments need no --region")
    source = options.pipeline_module_source
    if not source or any(c in source for c in '"\\\n$'):
        raise ValidationError("--pipeline-module-source must be a Terraform module source without quotes, "
                              "backslashes or '$'")


_VERSIONS_TF = """\
terraform {
  required_version = ">= 1.11"

  # Partial configuration: tfdeploy passes bucket, key, region and the lock per tag.
  backend "s3" {}
}
"""

_VARIABLES_TF = """\
# Set by tfdeploy for every deployment (tfdeploy.auto.tfvars.json); do not set them yourself.
variable "env" {
  type        = string
  description = "Environment from the tag."
}

variable "region" {
  type        = string
  description = "Region the deployment targets (the global Region for global deployments)."
}

variable "team" {
  type        = string
  description = "Team from the tag."
}

variable "account" {
  type        = string
  description = "The team's AWS account id for this environment (envs/<env>/<team>/variables.tfvars)."
}

variable "release_version" {
  type        = string
  description = "Version from the tag (`version` is a reserved variable name in Terraform)."
}

# From envs/<env>/<team>/variables.tfvars.
variable "allowed_regions" {
  type        = list(string)
  description = "Regions this team may deploy to (tfdeploy refuses others)."
  default     = []
}
"""

_MAIN_TF = """\
# Regional tags (<env>_<region>/<team>/<version>) plan -target=module.regional,
# global tags (<env>_global/<team>/<version>) plan -target=module.global.
module "regional" {
  source = "./modules/regional"
  env    = var.env
  region = var.region
  team   = var.team
}

module "global" {
  source  = "./modules/global"
  env     = var.env
  team    = var.team
  account = var.account
}
"""

_OUTPUTS_TF = """\
output "release_version" {
  description = "The version this cell runs (kept out of resources, so a release of unchanged code changes nothing)."
  value       = var.release_version
}

output "regional_cell" {
  description = "The regional starter's name (regional deployments)."
  value       = module.regional.cell_name
}

output "global_baseline" {
  description = "The global starter's name (global deployments)."
  value       = module.global.baseline_name
}
"""

_REGIONAL_TF = """\
# Starter: replace with your regional resources. tfdeploy writes the AWS provider (Region,
# assume-role into the team account, default tags) for every deployment that uses it.
variable "env" {
  type        = string
  description = "Environment."
}

variable "region" {
  type        = string
  description = "Region of this cell."
}

variable "team" {
  type        = string
  description = "Team."
}

resource "terraform_data" "cell" {
  input = {
    name = "${var.team}-${var.env}-${var.region}"
  }
}

output "cell_name" {
  description = "Name of this regional cell."
  value       = terraform_data.cell.output.name
}
"""

_GLOBAL_TF = """\
# Starter: replace with your account-wide resources (IAM, Route 53, ...).
variable "env" {
  type        = string
  description = "Environment."
}

variable "team" {
  type        = string
  description = "Team."
}

variable "account" {
  type        = string
  description = "The team's AWS account id."
}

resource "terraform_data" "account_baseline" {
  input = {
    name    = "${var.team}-${var.env}-baseline"
    account = var.account
  }
}

output "baseline_name" {
  description = "Name of the account baseline."
  value       = terraform_data.account_baseline.output.name
}
"""

_MODULE_VERSIONS_TF = """\
terraform {
  required_version = ">= 1.11"
}
"""

_GITIGNORE = """\
# tfdeploy work dirs, saved plans, locks and stage results; never commit them.
.tfdeploy/
.tfdeploy-results/
.terraform/
*.tfplan
reports/
"""

_TFLINT = """\
# tflint for the whole repository (the tfdeploy lint stage runs tflint --recursive with it).
# Plugin versions are pinned so a new ruleset release cannot fail a pipeline for a tag that
# passed before; bump them in their own change.
config {
  call_module_type = "local"
}

plugin "terraform" {
  enabled = true
  preset  = "recommended"
  version = "0.13.0"
  source  = "github.com/terraform-linters/tflint-ruleset-terraform"
}

plugin "aws" {
  enabled    = true
  version    = "0.44.0"
  source     = "github.com/terraform-linters/tflint-ruleset-aws"
  deep_check = false
}

rule "terraform_documented_variables" {
  enabled = true
}

rule "terraform_documented_outputs" {
  enabled = true
}
"""


def _hcl_list(values: tuple[str, ...] | list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def _pyproject(o: ScaffoldOptions) -> str:
    return (
        "# Settings of this infra repo for tfdeploy (https://pypi.org/project/tfdeploy-toolkit/).\n"
        "# Each can be overridden by TFDEPLOY_<NAME> or --<name>; see `tfdeploy resolve -v`.\n"
        "[tool.tfdeploy]\n"
        f"backend_prefix = {json.dumps(o.backend_prefix)}\n"
        f"state_region = {json.dumps(o.regions[0])}\n"
        f"global_region = {json.dumps(o.regions[0])}\n"
        f"environments = {_hcl_list(o.envs)}\n"
        'state_layout = "central"\n'
        'lock = "s3"\n'
        f"scan_soft_fail_envs = {_hcl_list(o.envs[:1])}\n"
        "# Ledger records are signed so promotion evidence cannot be forged by a bucket writer, and\n"
        "# prod (a protected env) accepts only signed evidence. alias/tfdeploy-ledger is the key\n"
        "# pipeline/ creates (modules/pipeline, name_prefix tfdeploy) and the one `tfdeploy sandbox up`\n"
        "# creates; looked up in state_region. docs/trust/signed-ledger.md.\n"
        f"ledger_signing_key = {json.dumps(LEDGER_KEY_ALIAS)}\n"
    )


def _pinned_source_skip(source: str) -> str:
    """An inline checkov skip of CKV_TF_1 (a module source pinned to a commit hash), with its reason,
    unless the source is so pinned; a release tag of tfdeploy is the scaffold's default."""
    if _COMMIT_PINNED.search(source):
        return ""
    return ("\n  #checkov:skip=CKV_TF_1:pinned to a tfdeploy release tag; pin ?ref= to its commit hash to drop "
            "this skip")


def _other_pipelines(o: ScaffoldOptions, skip: str) -> str:
    first = o.envs[0]
    if len(o.envs) == 1:
        return ""
    return f"""
module "pipeline" {{
  source   = "{o.pipeline_module_source}"
  for_each = {{ for env, accounts in var.target_account_ids : env => accounts if env != {json.dumps(first)} }}{skip}

  env                      = each.key
  repository_name          = var.repository_name
  tf_backend_config_prefix = {json.dumps(o.backend_prefix)}
  target_account_ids       = each.value
  buildspecs               = local.buildspecs
  ledger_signing_key_arn   = module.pipeline_{first}.ledger_signing_key_arn
}}
"""


def _pipeline_tf(o: ScaffoldOptions) -> str:
    first, source = o.envs[0], o.pipeline_module_source
    skip = _pinned_source_skip(source)
    rest = _other_pipelines(o, skip)
    width = max(len(env) for env in o.envs)
    accounts = "\n".join(f"    {env.ljust(width)} = [{json.dumps(PLACEHOLDER_ACCOUNT)}]" for env in o.envs)
    stages = ", ".join(json.dumps(s) for s in STAGES)
    return f"""\
# One CodePipeline per environment, from this project's modules/pipeline at a pinned version.
# Apply it once in the tooling account (with your own backend), not through a tag.
terraform {{
  required_version = ">= 1.11"

  required_providers {{
    aws = {{
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 6.0.0"
    }}
  }}
}}

provider "aws" {{
  region = var.region
}}

variable "region" {{
  type        = string
  description = "Region of the tooling account's pipelines."
  default     = {json.dumps(o.regions[0])}
}}

variable "repository_name" {{
  type        = string
  description = "CodeCommit repository holding this infra repo."
  default     = "infra"
}}

variable "target_account_ids" {{
  type        = map(list(string))
  description = "Per environment, the workload accounts its pipeline may deploy to (PLACEHOLDERS: replace)."
  default = {{
{accounts}
  }}
}}

locals {{
  # The CodeBuild projects carry the buildspecs (versioned with the pipeline, not read from the
  # tagged tree), so a tag made before a buildspec change still deploys.
  buildspecs = {{ for stage in [{stages}] : stage => file("${{path.module}}/../buildspecs/${{stage}}.yml") }}
}}

# One ledger signing key serves every env (the repo's ledger_signing_key): the first env's
# pipeline creates it, the others are given its ARN.
module "pipeline_{first}" {{
  source = "{source}"{skip}

  env                      = {json.dumps(first)}
  repository_name          = var.repository_name
  tf_backend_config_prefix = {json.dumps(o.backend_prefix)}
  target_account_ids       = var.target_account_ids[{json.dumps(first)}]
  buildspecs               = local.buildspecs
}}
{rest}"""


def scaffold_files(o: ScaffoldOptions) -> dict[str, str]:
    """Repo-relative path -> content of the scaffolded repo (pure, apart from the buildspecs'
    generator, which is pure too)."""
    from ..delivery.buildspec import generate_all

    files = {
        "pyproject.toml": _pyproject(o),
        "versions.tf": _VERSIONS_TF,
        "variables.tf": _VARIABLES_TF,
        "main.tf": _MAIN_TF,
        "outputs.tf": _OUTPUTS_TF,
        "modules/regional/main.tf": _REGIONAL_TF,
        "modules/regional/versions.tf": _MODULE_VERSIONS_TF,
        "modules/global/main.tf": _GLOBAL_TF,
        "modules/global/versions.tf": _MODULE_VERSIONS_TF,
        ".gitignore": _GITIGNORE,
        ".tflint.hcl": _TFLINT,
        "pipeline/main.tf": _pipeline_tf(o),
    }
    for env in o.envs:
        for team in o.teams:
            base = f"envs/{env}/{team}"
            files[f"{base}/variables.tfvars"] = (
                f"# PLACEHOLDER account: replace with the 12-digit AWS account id of team {team} in {env}.\n"
                f"account         = {json.dumps(PLACEHOLDER_ACCOUNT)}\n"
                f"allowed_regions = {_hcl_list(o.regions)}\n"
            )
            for region in o.regions:
                files[f"{base}/{region}.tfvars"] = f"# Values for {team} in {env}, {region} only.\n"
    for generated in generate_all():
        files[f"buildspecs/{generated.name}"] = generated.text
    return files


def write_scaffold(directory: Path, files: dict[str, str], force: bool = False) -> list[str]:
    """Write `files` under `directory`; never overwrite anything.

    Without `force`, `directory` must be missing or empty. With it, an existing folder (e.g. a git
    repo) is fine as long as none of the files exists yet. Every check runs before the first write,
    so a refusal leaves nothing half-written.
    """
    from ..results import write_atomic

    if directory.exists() and not directory.is_dir():
        raise ValidationError(f"{directory} is a file; give a folder to scaffold into")
    present = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    if present and not force:
        raise ValidationError(f"{directory} is not empty ({', '.join(present[:3])}"
                              f"{', ...' if len(present) > 3 else ''}); scaffold into a new folder, or "
                              "pass --force to add the files to it (nothing is overwritten)")
    clashes = [rel for rel in files if os.path.lexists(directory / rel)]
    if clashes:
        raise ValidationError(f"{directory / clashes[0]} already exists ({len(clashes)} of the files do); "
                              "tfdeploy scaffold never overwrites: move them away or use a new folder")
    written = []
    for rel, content in sorted(files.items()):
        write_atomic(directory / rel, content)
        written.append(rel)
    return written


def in_git_work_tree(directory: Path) -> bool:
    """Is `directory` inside a git work tree (a `.git` folder or file here or above)?"""
    here = directory.resolve()
    return any((d / ".git").exists() for d in (here, *here.parents))


def next_steps(directory: Path, o: ScaffoldOptions, cwd: Path) -> str:
    """What to do after `scaffold`, as commands that work from `cwd`: no `cd` into the folder one
    is in, no `git init` of a repo that exists (the scaffold is often added to one)."""
    env, team, region = o.envs[0], o.teams[0], o.regions[0]
    first = f"{env}_{region}/{team}/0.1"
    lines = []
    if directory.resolve() != cwd.resolve():
        lines.append(f"cd {directory}")
    lines.append("# replace the placeholder accounts (000000000000) in envs/*/*/variables.tfvars")
    commit = 'git add -A && git commit -m "infra repo from tfdeploy scaffold"'
    lines.append(commit if in_git_work_tree(directory) else f"git init -b main && {commit}")
    lines += [
        "tfdeploy lint --dir . && tfdeploy buildspec generate --check",
        f'git tag -a {first} -m "first release"',
        f"tfdeploy resolve --tag {first}",
        f"tfdeploy bootstrap --env {env}",
        f"tfdeploy plan --tag {first}",
        f"# pipeline/: set --pipeline-module-source (now {o.pipeline_module_source}), then apply it in "
        "the tooling account",
    ]
    return "\nNext steps:\n" + "\n".join(f"  {line}" for line in lines)
