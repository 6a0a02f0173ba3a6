# One pipeline per environment in the central tooling account. Provider
# configuration comes from the environment; the repository has no provider block.
terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 6.0.0"
    }
  }
}

# One pipeline per environment: instantiate the module once for each of dev, qa,
# staging and prod, each with that environment's workload accounts. The account
# ids are placeholders (research and risk dev accounts).
module "pipeline_dev" {
  source = "../.."

  env                      = "dev"
  repository_name          = "infra"
  tf_backend_config_prefix = "acme-tfstate"
  target_account_ids       = ["111111111111", "211111111111"]

  # The buildspecs `tfdeploy buildspec generate` wrote into this repo, set
  # inline on the CodeBuild projects (versioned with the pipeline).
  buildspecs = { for stage in ["source", "tflint", "checkov", "plan", "apply"] :
    stage => file("${path.module}/../../../../buildspecs/${stage}.yml")
  }
}

output "tag_event_pattern" {
  description = "EventBridge pattern of the dev pipeline; compare with `tfdeploy events pattern --env dev`."
  value       = module.pipeline_dev.tag_event_pattern
}
