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

variable "certificate_arn" {
  description = "ACM certificate for the example ALB, in the Region you deploy to."
  type        = string
}

module "network" {
  source = "../../../network"

  name             = "example-web"
  cidr_block       = "10.91.0.0/16"
  az_count         = 2
  nat_gateway_mode = "single"
}

module "web" {
  source = "../.."

  name            = "example-web"
  vpc_id          = module.network.vpc_id
  subnet_ids      = module.network.public_subnet_ids
  certificate_arn = var.certificate_arn
  service_label   = "example-web 1.0"
}

output "url" {
  description = "Browse here; the response names the Region."
  value       = "https://${module.web.alb_dns_name}/"
}
