data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # The repository's ARN and HTTPS clone URL follow documented formats, so they are derived from
  # its name rather than read with data.aws_codecommit_repository: no read permission or API call
  # at plan time (and moto's GetRepository answer cannot be decoded by the AWS provider, which
  # kept the module from being applied against the sandbox).
  repository_arn       = "arn:${local.partition}:codecommit:${local.region}:${local.account_id}:${var.repository_name}"
  repository_clone_url = "https://git-codecommit.${local.region}.${data.aws_partition.current.dns_suffix}/v1/repos/${var.repository_name}"

  name              = "${var.name_prefix}-${var.env}"
  source_object_key = coalesce(var.source_object_key, "source/${var.env}/source.zip")

  # Plan review is mandatory where real customers are affected.
  require_apply_approval = coalesce(var.require_apply_approval, contains(["staging", "prod"], var.env))

  # Matches tag creation only (not branches, not tag updates or deletions),
  # and only tags of this environment: dev_us-east-1/research/1.0 starts the
  # dev pipeline, never qa's. tfdeploy prints the same pattern.
  tag_event_pattern = {
    source      = ["aws.codecommit"]
    detail-type = ["CodeCommit Repository State Change"]
    detail = {
      event         = ["referenceCreated"]
      referenceType = ["tag"]
      referenceName = [{ prefix = "${var.env}_" }]
    }
  }

  # tfdeploy publishes tags to <backend prefix>-source-<env> (in its state
  # Region), so that name is a contract. The artifact bucket is internal and
  # carries account and Region to stay globally unique.
  source_bucket_name   = "${var.tf_backend_config_prefix}-source-${var.env}"
  artifact_bucket_name = "${local.name}-artifacts-${local.account_id}-${local.region}"

  log_group_prefix = "/aws/codebuild/${local.name}"
}

# ---------------------------------------------------------------------------
# Encryption key for artifacts, source bundles and build logs
# ---------------------------------------------------------------------------

# The pipeline and build roles get their use of the key from their IAM
# policies; CloudWatch Logs may use it for the build log groups only.
module "pipeline_key" {
  source = "../logs-kms-key"

  description            = "Artifacts, source bundles and build logs of the ${local.name} pipeline"
  alias_name             = "${local.name}-pipeline"
  log_group_arn_patterns = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_prefix}-*"]

  tags = var.tags
}

# The key and alias were declared in this module before logs-kms-key existed.
# These moves keep the existing key (and what it encrypts) instead of replacing it.
moved {
  from = aws_kms_key.pipeline
  to   = module.pipeline_key.aws_kms_key.this
}

moved {
  from = aws_kms_alias.pipeline
  to   = module.pipeline_key.aws_kms_alias.this
}

# ---------------------------------------------------------------------------
# Buckets
# ---------------------------------------------------------------------------

module "artifact_bucket" {
  source = "../s3-bucket"

  bucket_name                        = local.artifact_bucket_name
  kms_key_arn                        = module.pipeline_key.arn
  expiration_days                    = 90
  noncurrent_version_expiration_days = 30

  tags = var.tags
}

# Versioned so every pipeline execution references the exact bundle captured
# for its tag, even if a newer tag has overwritten the key since.
module "source_bucket" {
  source = "../s3-bucket"

  bucket_name                        = local.source_bucket_name
  kms_key_arn                        = module.pipeline_key.arn
  noncurrent_version_expiration_days = 365

  tags = var.tags
}

# ---------------------------------------------------------------------------
# Build logs
# ---------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "build" {
  for_each = local.build_projects

  name              = "${local.log_group_prefix}-${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = module.pipeline_key.arn

  tags = var.tags
}
