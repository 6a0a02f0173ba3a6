data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  prefix     = "/${var.name}"

  # The role is global and used by the workload in every Region, so Region is
  # the only wildcard; account and name prefix pin everything else.
  parameter_arn = "arn:${local.partition}:ssm:*:${local.account_id}:parameter${local.prefix}/*"
  log_group_arn = "arn:${local.partition}:logs:*:${local.account_id}:log-group:${local.prefix}/*"
}

data "aws_iam_policy_document" "trust" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = var.trusted_services
    }

    dynamic "condition" {
      for_each = var.require_source_account ? [local.account_id] : []
      content {
        test     = "StringEquals"
        variable = "aws:SourceAccount"
        values   = [condition.value]
      }
    }
  }
}

data "aws_iam_policy_document" "workload" {
  statement {
    sid = "ReadOwnParameters"
    actions = [
      "ssm:GetParameter",
      "ssm:GetParameters",
      "ssm:GetParametersByPath",
    ]
    resources = [local.parameter_arn]
  }

  # SecureString parameters: decrypt only when SSM asks on the workload's
  # behalf for one of its own parameters, never direct use of the key.
  statement {
    sid       = "DecryptOwnParametersViaSsm"
    actions   = ["kms:Decrypt"]
    resources = ["arn:${local.partition}:kms:*:${local.account_id}:key/*"]

    condition {
      test     = "StringLike"
      variable = "kms:ViaService"
      values   = ["ssm.*.amazonaws.com"]
    }

    condition {
      test     = "StringLike"
      variable = "kms:EncryptionContext:PARAMETER_ARN"
      values   = [local.parameter_arn]
    }
  }

  statement {
    sid = "WriteOwnLogs"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
    ]
    resources = [
      local.log_group_arn,
      "${local.log_group_arn}:log-stream:*",
    ]
  }
}

resource "aws_iam_role" "workload" {
  name                 = "${var.name}-workload"
  path                 = var.path
  description          = "Runtime role of the ${var.name} workload in every Region of this account"
  assume_role_policy   = data.aws_iam_policy_document.trust.json
  permissions_boundary = var.permissions_boundary_arn
  max_session_duration = var.max_session_duration

  tags = var.tags
}

# Inline rather than managed: the permissions live and die with the role and
# cannot be attached to anything else by mistake.
resource "aws_iam_role_policy" "workload" {
  name   = "workload-baseline"
  role   = aws_iam_role.workload.id
  policy = data.aws_iam_policy_document.workload.json
}
