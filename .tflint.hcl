# tflint configuration for the whole repository: the root composition,
# modules/* and their examples/.
#
#   tflint --init                                        # fetch the pinned plugins
#   tflint --recursive --config "$(pwd)/.tflint.hcl"     # lint every directory
#
# The tfdeploy lint stage runs the same commands. Needs tflint >= 0.54
# (call_module_type).
#
# terraform ruleset, "recommended" preset: every variable typed, every module
# with required_version and version-constrained required_providers, no unused
# variables/locals/data sources, no deprecated syntax, pinned module sources.
# The two documentation rules below go beyond the preset; tests/infra enforces
# the same contract offline.
#
# aws ruleset: static checks of AWS arguments (invalid instance types, names,
# enum values and the like) before any plan. deep_check stays off: with it on,
# tflint calls AWS APIs to check that referenced resources exist, which needs
# credentials in the target account, and the lint stage runs before any role
# is assumed. Turn it on locally (deep_check = true plus AWS credentials for
# the account you are linting against) when you want those checks.
#
# Plugin versions are pinned so a new ruleset release cannot fail a pipeline
# for a tag that passed before; bump them in their own change.

config {
  # Follow calls into ./modules; the repository uses no remote modules.
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

rule "terraform_naming_convention" {
  enabled = true
  format  = "snake_case"
}
