# The dev state backend in the central tooling account, managed by Terraform
# instead of `tfdeploy bootstrap`; repeat per environment (or use for_each).
# Provider configuration comes from the environment; the repository has no
# provider block.
terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 6.0.0"
    }
  }
}

variable "state_kms_key_arn" {
  description = "KMS key that encrypts all state buckets and lock tables."
  type        = string
}

module "backend_dev" {
  source = "../.."

  prefix      = "acme-tfstate"
  env         = "dev"
  kms_key_arn = var.state_kms_key_arn
}

output "backend_config" {
  description = "Values for terraform init -backend-config."
  value       = module.backend_dev.backend_config
}
