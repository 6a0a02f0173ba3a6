"""A small, provider-free example infra repo (used by `tfdeploy demo` and the tests).

Its modules use only Terraform's builtin `terraform_data`, so it plans and applies offline while
still exercising everything tfdeploy does: two namespaces (module.regional / module.global),
envs/ for two teams, per-Region tfvars and a real S3 backend.
"""

from __future__ import annotations

import json
from pathlib import Path

EXAMPLE_TEAMS = {"research": "111111111111", "risk": "222222222222"}

_ROOT_TF = """\
terraform {
  required_version = ">= 1.10"
  backend "s3" {}
}

variable "env" {
  type        = string
  description = "Environment name from the tag."
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
  description = "The team's AWS account id for this environment."
}

variable "release_version" {
  type        = string
  description = "Version from the tag (`version` is a reserved variable name in Terraform)."
}

variable "allowed_regions" {
  type        = list(string)
  description = "Regions this team may deploy to (empty: any)."
  default     = []
}

variable "greeting" {
  type        = string
  description = "Message the regional cell carries."
  default     = "hello"
}

variable "apply_delay_seconds" {
  type        = number
  description = "Seconds the regional apply sleeps (lets tests hold the state lock)."
  default     = 0
}

module "regional" {
  source              = "./modules/regional"
  env                 = var.env
  region              = var.region
  team                = var.team
  version_label       = var.release_version
  greeting            = var.greeting
  apply_delay_seconds = var.apply_delay_seconds
}

module "global" {
  source        = "./modules/global"
  env           = var.env
  team          = var.team
  account       = var.account
  version_label = var.release_version
}

output "regional_message" {
  description = "What the regional cell says (regional deployments)."
  value       = module.regional.message
}

output "workload_role" {
  description = "The account-level role name (global deployments)."
  value       = module.global.role_name
}
"""

_REGIONAL_TF = """\
variable "env" {
  type = string
}

variable "region" {
  type = string
}

variable "team" {
  type = string
}

variable "version_label" {
  type = string
}

variable "greeting" {
  type = string
}

variable "apply_delay_seconds" {
  type = number
}

resource "terraform_data" "cell" {
  input = {
    name    = "${var.team}-${var.env}-${var.region}"
    message = "${var.greeting} from ${var.region}"
    version = var.version_label
  }

  provisioner "local-exec" {
    command = "sleep ${var.apply_delay_seconds}"
  }
}

output "message" {
  value = terraform_data.cell.output.message
}
"""

_GLOBAL_TF = """\
variable "env" {
  type = string
}

variable "team" {
  type = string
}

variable "account" {
  type = string
}

variable "version_label" {
  type = string
}

resource "terraform_data" "account_baseline" {
  input = {
    role    = "${var.team}-${var.env}-workload"
    account = var.account
    version = var.version_label
  }
}

output "role_name" {
  value = terraform_data.account_baseline.output.role
}
"""


def example_files(backend_prefix: str = "demo-tfstate", lock: str = "s3",
                  state_layout: str = "central", ledger_signing_key: str = "") -> dict[str, str]:
    """Path -> content of the example repo (pure). `ledger_signing_key`: e.g. the sandbox's
    `alias/tfdeploy-ledger` (aws/signingkey.py), so its records are signed offline too."""
    files = {
        "main.tf": _ROOT_TF,
        "modules/regional/main.tf": _REGIONAL_TF,
        "modules/global/main.tf": _GLOBAL_TF,
        ".gitignore": ".tfdeploy/\n.terraform/\n",
        "pyproject.toml": (
            "[tool.tfdeploy]\n"
            f"backend_prefix = {json.dumps(backend_prefix)}\n"
            'state_region = "us-east-1"\n'
            'global_region = "us-east-1"\n'
            'environments = ["dev", "qa"]\n'
            f"state_layout = {json.dumps(state_layout)}\n"
            f"lock = {json.dumps(lock)}\n"
            + (f"ledger_signing_key = {json.dumps(ledger_signing_key)}\n" if ledger_signing_key else "")
        ),
    }
    for team, account in EXAMPLE_TEAMS.items():
        for env in ("dev", "qa"):
            base = f"envs/{env}/{team}"
            files[f"{base}/variables.tfvars"] = (
                f'account         = "{account}"\n'
                'allowed_regions = ["us-east-1", "eu-central-1"]\n'
            )
            files[f"{base}/us-east-1.tfvars"] = 'greeting = "hello from N. Virginia"\n'
    return files


def write_example_repo(root: Path, **options: str) -> None:
    """Write the example files under `root` (creating folders)."""
    for rel, content in example_files(**options).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
