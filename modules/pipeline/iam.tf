locals {
  service_principals = {
    pipeline = "codepipeline.amazonaws.com"
    build    = "codebuild.amazonaws.com"
    events   = "events.amazonaws.com"
  }

  state_bucket_arn = "arn:${local.partition}:s3:::${var.tf_backend_config_prefix}-${var.env}"
  lock_table_arn   = "arn:${local.partition}:dynamodb:${local.region}:${local.account_id}:table/${var.tf_backend_config_prefix}-lock-${var.env}"
  target_role_arns = [for a in var.target_account_ids : "arn:${local.partition}:iam::${a}:role/${var.target_role_name}"]

  source_object_arn = "${module.source_bucket.arn}/${local.source_object_key}"
  # Built from its name: the pipeline refers to the build projects, so the
  # build roles cannot refer to the pipeline resource.
  pipeline_arn = "arn:${local.partition}:codepipeline:${local.region}:${local.account_id}:${local.name}"

  # IAM is global: names carry the Region so the same pipeline can also be
  # deployed to a second tooling Region.
  role_suffix = local.region
}

data "aws_iam_policy_document" "trust" {
  for_each = local.service_principals

  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = [each.value]
    }

    # Confused-deputy protection: only this account's pipelines, builds and rules.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# Every build role and the CodePipeline role read and write what the pipeline
# key encrypts (artifacts, source bundles, build output), so build_common and
# the pipeline policy include this document through source_policy_documents.
data "aws_iam_policy_document" "use_pipeline_key" {
  statement {
    sid = "UsePipelineKey"
    actions = [
      "kms:Decrypt",
      "kms:Encrypt",
      "kms:GenerateDataKey*",
      "kms:ReEncrypt*",
      "kms:DescribeKey",
    ]
    resources = [module.pipeline_key.arn]
  }
}

# ---------------------------------------------------------------------------
# CodeBuild roles: source (tag capture), scan (tflint, checkov), deploy (plan, apply)
# ---------------------------------------------------------------------------

data "aws_iam_policy_document" "build_common" {
  for_each = toset(["source", "scan", "deploy"])

  source_policy_documents = [data.aws_iam_policy_document.use_pipeline_key.json]

  statement {
    sid     = "WriteOwnBuildLogs"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [
      for k, v in local.build_projects : "${aws_cloudwatch_log_group.build[k].arn}:*" if v.role == each.key
    ]
  }

  dynamic "statement" {
    for_each = var.vpc_config == null ? [] : [1]
    content {
      sid = "DescribeNetworkForVpcBuilds"
      actions = [
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeVpcs",
      ]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = var.vpc_config == null ? [] : [1]
    content {
      sid     = "ManageBuildNetworkInterfaces"
      actions = ["ec2:CreateNetworkInterface", "ec2:DeleteNetworkInterface"]
      resources = concat(
        ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*"],
        [for s in var.vpc_config.subnet_ids : "arn:${local.partition}:ec2:${local.region}:${local.account_id}:subnet/${s}"],
        [for g in var.vpc_config.security_group_ids : "arn:${local.partition}:ec2:${local.region}:${local.account_id}:security-group/${g}"],
      )
    }
  }

  dynamic "statement" {
    for_each = var.vpc_config == null ? [] : [1]
    content {
      sid       = "AttachInterfacesForCodeBuildOnly"
      actions   = ["ec2:CreateNetworkInterfacePermission"]
      resources = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:network-interface/*"]

      condition {
        test     = "StringEquals"
        variable = "ec2:AuthorizedService"
        values   = ["codebuild.amazonaws.com"]
      }

      condition {
        test     = "ArnEquals"
        variable = "ec2:Subnet"
        values   = [for s in var.vpc_config.subnet_ids : "arn:${local.partition}:ec2:${local.region}:${local.account_id}:subnet/${s}"]
      }
    }
  }
}

data "aws_iam_policy_document" "build_source" {
  source_policy_documents = [data.aws_iam_policy_document.build_common["source"].json]

  statement {
    sid       = "CloneInfraRepository"
    actions   = ["codecommit:GitPull"]
    resources = [local.repository_arn]
  }

  # tfdeploy checks the bucket exists and is versioned, reads the current
  # bundle's metadata (to skip re-publishing the same tag), then uploads.
  statement {
    sid       = "CheckSourceBucket"
    actions   = ["s3:ListBucket", "s3:GetBucketVersioning"]
    resources = [module.source_bucket.arn]
  }

  statement {
    sid       = "PublishSourceBundle"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = [local.source_object_arn]
  }

  # tfdeploy publish starts this environment's pipeline with the uploaded
  # object version and the tag (one execution per tag).
  statement {
    sid       = "StartOwnPipeline"
    actions   = ["codepipeline:StartPipelineExecution"]
    resources = [local.pipeline_arn]
  }
}

data "aws_iam_policy_document" "build_scan" {
  source_policy_documents = [data.aws_iam_policy_document.build_common["scan"].json]

  # tflint and checkov results are published as JUnit test reports.
  statement {
    sid = "PublishScanReports"
    actions = [
      "codebuild:CreateReportGroup",
      "codebuild:CreateReport",
      "codebuild:UpdateReport",
      "codebuild:BatchPutTestCases",
    ]
    resources = [
      for k in ["tflint", "checkov"] : "arn:${local.partition}:codebuild:${local.region}:${local.account_id}:report-group/${local.name}-${k}-*"
    ]
  }

  statement {
    sid       = "ReadPipelineArtifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${module.artifact_bucket.arn}/*"]
  }

  # The lint stage runs terraform init against the real backend (to resolve
  # the deployment from the tag), which only needs to read state.
  statement {
    sid       = "ListStateBucket"
    actions   = ["s3:ListBucket"]
    resources = [local.state_bucket_arn]
  }

  statement {
    sid       = "ReadState"
    actions   = ["s3:GetObject"]
    resources = ["${local.state_bucket_arn}/*"]
  }

  dynamic "statement" {
    for_each = var.state_kms_key_arn == null ? [] : [var.state_kms_key_arn]
    content {
      sid       = "DecryptState"
      actions   = ["kms:Decrypt", "kms:DescribeKey"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "build_deploy" {
  source_policy_documents = [
    data.aws_iam_policy_document.build_common["deploy"].json,
    data.aws_iam_policy_document.ledger_sign.json, # ledger.tf
  ]

  statement {
    sid       = "ReadWritePipelineArtifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${module.artifact_bucket.arn}/*"]
  }

  statement {
    sid       = "ListStateBucket"
    actions   = ["s3:ListBucket"]
    resources = [local.state_bucket_arn]
  }

  # Delete is for S3-native lock files (<key>.tflock); versioning keeps every
  # state revision regardless.
  statement {
    sid       = "ReadWriteState"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    resources = ["${local.state_bucket_arn}/*"]
  }

  statement {
    sid       = "StateLocking"
    actions   = ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem"]
    resources = [local.lock_table_arn]
  }

  dynamic "statement" {
    for_each = var.state_kms_key_arn == null ? [] : [var.state_kms_key_arn]
    content {
      sid       = "EncryptState"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:DescribeKey"]
      resources = [statement.value]
    }
  }

  # The plan and apply stage builds start the release's batch (one build per
  # cell) on their own project and wait for it, reading each running build's
  # phase for the log (BatchGetBuilds); a stage build that is stopped stops the
  # batch it started (StopBuildBatch), so no cell deploys with no one watching
  # (delivery/release_stage.py). Nothing else: no iam:PassRole (the batch
  # service role is the project's, not overridden).
  statement {
    sid = "RunReleaseBatches"
    actions = [
      "codebuild:StartBuildBatch", "codebuild:BatchGetBuildBatches", "codebuild:StopBuildBatch",
      "codebuild:BatchGetBuilds",
    ]
    resources = local.batch_project_arns
  }

  # Each cell build of a release's batch gets the published bundle itself (an
  # S3 source at the execution's object version: a batch cannot be handed the
  # stage's CodePipeline input), fetched by CodeBuild with the project's role.
  statement {
    sid       = "ReadReleaseSourceBundle"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [local.source_object_arn]
  }

  # Promotion order: the apply checks the previous env's ledger (records only,
  # never its state) for a successful apply of the same commit.
  dynamic "statement" {
    for_each = var.promotion_source_env == null ? [] : [var.promotion_source_env]
    content {
      sid       = "ListPreviousEnvLedger"
      actions   = ["s3:ListBucket"]
      resources = ["arn:${local.partition}:s3:::${var.tf_backend_config_prefix}-${statement.value}"]
      condition {
        test     = "StringLike"
        variable = "s3:prefix"
        values   = ["_tfdeploy-ledger/*"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.promotion_source_env == null ? [] : [var.promotion_source_env]
    content {
      sid       = "ReadPreviousEnvLedger"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::${var.tf_backend_config_prefix}-${statement.value}/_tfdeploy-ledger/*"]
    }
  }

  # The only way into a workload account: its InfraBuildRole, nothing else.
  statement {
    sid       = "AssumeTargetInfraBuildRoles"
    actions   = ["sts:AssumeRole"]
    resources = local.target_role_arns
  }
}

locals {
  build_role_policies = {
    source = data.aws_iam_policy_document.build_source.json
    scan   = data.aws_iam_policy_document.build_scan.json
    deploy = data.aws_iam_policy_document.build_deploy.json
  }
}

resource "aws_iam_role" "build" {
  for_each = local.build_role_policies

  name                 = "${local.name}-codebuild-${each.key}-${local.role_suffix}"
  description          = "CodeBuild ${each.key} role of the ${local.name} pipeline"
  assume_role_policy   = data.aws_iam_policy_document.trust["build"].json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_role_policy" "build" {
  for_each = local.build_role_policies

  name   = "codebuild-${each.key}"
  role   = aws_iam_role.build[each.key].id
  policy = each.value
}

# ---------------------------------------------------------------------------
# CodePipeline role
# ---------------------------------------------------------------------------

data "aws_iam_policy_document" "pipeline" {
  source_policy_documents = [data.aws_iam_policy_document.use_pipeline_key.json]

  statement {
    sid       = "ReadSourceBundle"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [local.source_object_arn]
  }

  statement {
    sid       = "CheckSourceBucketVersioning"
    actions   = ["s3:GetBucketVersioning"]
    resources = [module.source_bucket.arn, module.artifact_bucket.arn]
  }

  statement {
    sid       = "ReadWriteArtifacts"
    actions   = ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObject"]
    resources = ["${module.artifact_bucket.arn}/*"]
  }

  statement {
    sid       = "RunStageBuilds"
    actions   = ["codebuild:StartBuild", "codebuild:BatchGetBuilds"]
    resources = [for k, p in aws_codebuild_project.this : p.arn if k != "source"]
  }

  dynamic "statement" {
    for_each = var.approval_sns_topic_arn == null ? [] : [var.approval_sns_topic_arn]
    content {
      sid       = "NotifyApprovers"
      actions   = ["sns:Publish"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role" "pipeline" {
  name                 = "${local.name}-codepipeline-${local.role_suffix}"
  description          = "Service role of the ${local.name} pipeline"
  assume_role_policy   = data.aws_iam_policy_document.trust["pipeline"].json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_role_policy" "pipeline" {
  name   = "codepipeline"
  role   = aws_iam_role.pipeline.id
  policy = data.aws_iam_policy_document.pipeline.json
}

# ---------------------------------------------------------------------------
# EventBridge role: start the tag capture
# ---------------------------------------------------------------------------

data "aws_iam_policy_document" "events" {
  statement {
    sid       = "StartTagCapture"
    actions   = ["codebuild:StartBuild"]
    resources = [aws_codebuild_project.this["source"].arn]
  }

}

resource "aws_iam_role" "events" {
  name                 = "${local.name}-events-${local.role_suffix}"
  description          = "Lets EventBridge start the ${local.name} tag capture"
  assume_role_policy   = data.aws_iam_policy_document.trust["events"].json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_role_policy" "events" {
  name   = "start-tag-capture"
  role   = aws_iam_role.events.id
  policy = data.aws_iam_policy_document.events.json
}

# ---------------------------------------------------------------------------
# CodeBuild batch service role: what CodeBuild uses to run a batch's builds
# ---------------------------------------------------------------------------

data "aws_iam_policy_document" "batch" {
  statement {
    sid       = "RunBatchBuilds"
    actions   = ["codebuild:StartBuild", "codebuild:StopBuild", "codebuild:RetryBuild"]
    resources = local.batch_project_arns
  }
}

resource "aws_iam_role" "batch" {
  name                 = "${local.name}-codebuild-batch-${local.role_suffix}"
  description          = "CodeBuild batch role of the ${local.name} pipeline (starts the cell builds of a release)"
  assume_role_policy   = data.aws_iam_policy_document.trust["build"].json
  max_session_duration = 3600

  tags = var.tags
}

resource "aws_iam_role_policy" "batch" {
  name   = "codebuild-batch"
  role   = aws_iam_role.batch.id
  policy = data.aws_iam_policy_document.batch.json
}
