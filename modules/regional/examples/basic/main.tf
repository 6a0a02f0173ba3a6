# How the root composition calls this cell; tfdeploy normally supplies these
# values from the git tag and envs/. Provider configuration comes from the
# environment (AWS_REGION, AWS_PROFILE); the repository has no provider block.
terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 6.0.0"
    }
  }
}

module "regional" {
  source = "../.."

  name             = "example-dev"
  expected_region  = "eu-central-1"
  expected_account = "111111111111"
  allowed_regions  = ["us-east-1", "eu-central-1"]
  release_version  = "1.0"

  vpc_cidr             = "10.92.0.0/16"
  az_count             = 2
  nat_gateway_mode     = "single"
  allow_plaintext_http = true
}

output "alb_dns_name" {
  description = "Browse here; the response names the Region."
  value       = module.regional.alb_dns_name
}
