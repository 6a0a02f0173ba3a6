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

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

resource "aws_kms_key" "example" {
  description             = "Example key for the s3-bucket module"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  # In a key policy "*" means this key; administration and use are delegated
  # to the account's IAM policies.
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "AccountAdministration"
      Effect    = "Allow"
      Principal = { AWS = "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:root" }
      Action    = "kms:*"
      Resource  = "*"
    }]
  })
}

module "reports" {
  source = "../.."

  bucket_name                        = "example-reports-${data.aws_caller_identity.current.account_id}"
  kms_key_arn                        = aws_kms_key.example.arn
  noncurrent_version_expiration_days = 30

  tags = { DataClassification = "internal" }
}

output "bucket" {
  description = "Name of the example bucket."
  value       = module.reports.id
}
