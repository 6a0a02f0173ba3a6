# Provider configuration comes from the environment (AWS_REGION, AWS_PROFILE);
# this repository never declares a provider "aws" block.
terraform {
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 6.0.0"
    }
  }
}

# A cost-conscious development VPC: two AZs sharing one NAT gateway.
module "network" {
  source = "../.."

  name             = "example-dev"
  cidr_block       = "10.90.0.0/16"
  az_count         = 2
  nat_gateway_mode = "single"

  tags = { CostCenter = "CC-0000" }
}

output "private_subnet_ids" {
  description = "Private subnets of the example VPC."
  value       = module.network.private_subnet_ids
}
