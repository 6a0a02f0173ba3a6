# ---------------------------------------------------------------------------
# Ledger signing key: tfdeploy signs every ledger record with it (the repo's
# ledger_signing_key setting) and trusts, as promotion evidence, only records
# whose signature holds. One key serves every env's pipeline of a repo: the
# first env's module creates it (ledger_signing_key_arn = null), the others
# are given its ARN (module.<first>.ledger_signing_key_arn).
#
# Who may sign: only the deploy build roles of this account's pipelines with
# this name_prefix (<name_prefix>-<env>-codebuild-deploy-<region>). The key
# policy denies kms:Sign to every other principal, so an IAM policy granting
# it elsewhere (or an admin's kms:*) still cannot sign; changing the key
# policy itself (kms:PutKeyPolicy) is what an admin would need.
# ---------------------------------------------------------------------------

locals {
  create_ledger_key     = var.ledger_signing_key_arn == null
  ledger_key_arn        = local.create_ledger_key ? aws_kms_key.ledger[0].arn : var.ledger_signing_key_arn
  ledger_signer_pattern = "arn:${local.partition}:iam::${local.account_id}:role/${var.name_prefix}-*-codebuild-deploy-*"
}

resource "aws_kms_key" "ledger" {
  #checkov:skip=CKV_AWS_7:An asymmetric SIGN_VERIFY key cannot be rotated by KMS; a new key means a new ledger_signing_key.
  count = local.create_ledger_key ? 1 : 0

  description              = "Signs tfdeploy ledger records of the ${var.name_prefix} pipelines (ledger_signing_key)"
  customer_master_key_spec = "ECC_NIST_P256"
  key_usage                = "SIGN_VERIFY"
  enable_key_rotation      = false
  deletion_window_in_days  = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "OnlyPipelineDeployBuildsSign"
        Effect    = "Deny"
        Principal = { AWS = "*" }
        Action    = "kms:Sign"
        Resource  = "*"
        Condition = {
          ArnNotLike = { "aws:PrincipalArn" = local.ledger_signer_pattern }
        }
      },
      ], length(var.ledger_reader_arns) == 0 ? [] : [
      {
        Sid       = "ReadersVerify"
        Effect    = "Allow"
        Principal = { AWS = var.ledger_reader_arns }
        Action    = ["kms:GetPublicKey", "kms:Verify", "kms:DescribeKey"]
        Resource  = "*"
      },
    ])
  })

  tags = var.tags
}

resource "aws_kms_alias" "ledger" {
  count = local.create_ledger_key ? 1 : 0

  name          = "alias/${var.name_prefix}-ledger"
  target_key_id = aws_kms_key.ledger[0].key_id
}

# The deploy builds (plan, apply) sign the records they write and verify the
# previous env's records before an apply (the promotion check).
data "aws_iam_policy_document" "ledger_sign" {
  statement {
    sid       = "SignLedgerRecords"
    actions   = ["kms:Sign", "kms:GetPublicKey", "kms:Verify", "kms:DescribeKey"]
    resources = [local.ledger_key_arn]
  }
}
