terraform {
  # 1.10 is the first release with S3-native state locking (use_lockfile), which
  # the toolkit can select instead of the DynamoDB lock table.
  required_version = ">= 1.10.0, < 2.0.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # Upper bound: 6.0 renames data.aws_region.name and changes S3/ALB defaults;
      # upgrade deliberately, in its own release tag.
      version = ">= 5.40.0, < 6.0.0"
    }
  }

  # Partial configuration: tfdeploy passes bucket, key, region, lock table and
  # encryption per deployment (-backend-config), so one copy of this code can
  # keep a separate state for every team/env/Region.
  backend "s3" {}
}

# There is intentionally no provider "aws" block in this repository. tfdeploy
# generates it per deployment: Region from the git tag, assume_role into the
# target account's InfraBuildRole, and default tags.
