data "aws_region" "current" {}

data "aws_partition" "current" {}

locals {
  bucket_name = "${var.prefix}-${var.env}"
  table_name  = "${var.prefix}-lock-${var.env}"
  bucket_arn  = "arn:${data.aws_partition.current.partition}:s3:::${local.bucket_name}"
}

# State history is the audit trail and the rollback path. Old versions expire
# through the lifecycle rule only; nobody may purge them by hand.
data "aws_iam_policy_document" "protect_history" {
  statement {
    sid       = "DenyStateHistoryPurge"
    effect    = "Deny"
    actions   = ["s3:DeleteObjectVersion"]
    resources = ["${local.bucket_arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }
}

module "state_bucket" {
  source = "../s3-bucket"

  bucket_name                        = local.bucket_name
  kms_key_arn                        = var.kms_key_arn
  policy_documents                   = [data.aws_iam_policy_document.protect_history.json]
  noncurrent_version_expiration_days = var.noncurrent_version_expiration_days
  access_log_bucket                  = var.access_log_bucket

  tags = var.tags
}

resource "aws_dynamodb_table" "lock" {
  #checkov:skip=CKV_AWS_119:Encrypted with kms_key_arn when given; otherwise with the AWS managed key (as tfdeploy bootstrap does), since lock rows hold no state data.
  count = var.create_lock_table ? 1 : 0

  name         = local.table_name
  billing_mode = "PAY_PER_REQUEST"
  hash_key     = "LockID"

  attribute {
    name = "LockID"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  # Without kms_key_arn this is the AWS managed key (aws/dynamodb).
  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  deletion_protection_enabled = true

  tags = var.tags

  # Losing the table while a deployment holds a lock corrupts that deployment;
  # removing it must be a deliberate two-step change.
  lifecycle {
    prevent_destroy = true
  }
}
