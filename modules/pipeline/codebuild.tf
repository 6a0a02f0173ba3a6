locals {
  # The plan and apply projects: TFDEPLOY_ARTIFACT_BUCKET is where a release's
  # cell builds keep each cell's plan; the timeouts go into the stage build's
  # StartBuildBatch (delivery/release_stage.py).
  batch_project_env = {
    TARGET_ROLE_NAME               = var.target_role_name
    TFDEPLOY_ARTIFACT_BUCKET       = module.artifact_bucket.id
    TFDEPLOY_CELL_TIMEOUT_MINUTES  = tostring(var.build_timeout_minutes)
    TFDEPLOY_BATCH_TIMEOUT_MINUTES = tostring(var.batch_timeout_minutes)
  }

  # role: "source" captures the tag, "scan" only reads code, "deploy" touches
  # state and the target accounts. Only the source project is started by
  # EventBridge; the others run as pipeline actions. Each project's buildspec
  # is var.buildspecs[<key>], inline: it is versioned with the pipeline, so a
  # tag made before buildspecs/ existed (or with older ones) still deploys.
  build_projects = {
    source = {
      role        = "source"
      description = "Captures the pushed git tag with a full clone into the source bucket"
      # `tfdeploy ci source` derives the bucket (<prefix>-source-<env>) and the
      # key (source/<env>/source.zip) from these, and starts the pipeline
      # <pipeline_name_prefix>-<env> (the setting, from its env var) with the
      # uploaded object version; TFDEPLOY_TAG comes per build from the
      # EventBridge target.
      env = {
        ENV                           = var.env
        TF_BACKEND_CONFIG_PREFIX      = var.tf_backend_config_prefix
        TFDEPLOY_PIPELINE_NAME_PREFIX = var.name_prefix
      }
    }
    tflint = {
      role        = "scan"
      description = "Lints the Terraform code with tflint"
      env         = {}
    }
    checkov = {
      role        = "scan"
      description = "Scans the Terraform code with checkov and exports the result counts"
      env         = {}
    }
    plan = {
      role        = "deploy"
      description = "Runs terraform plan for the deployment the tag names"
      env         = local.batch_project_env
    }
    apply = {
      role        = "deploy"
      description = "Applies the plan produced by the plan stage"
      env         = local.batch_project_env
    }
  }
}

locals {
  batch_projects = ["plan", "apply"]
  # By name, not by resource: the roles' policies must not depend on the projects that use them.
  batch_project_arns = [for k in local.batch_projects :
  "arn:${local.partition}:codebuild:${local.region}:${local.account_id}:project/${local.name}-${k}"]
}

resource "aws_codebuild_project" "this" {
  for_each = local.build_projects

  name           = "${local.name}-${each.key}"
  description    = each.value.description
  service_role   = aws_iam_role.build[each.value.role].arn
  encryption_key = module.pipeline_key.arn
  # A plan or apply stage build of a release waits for its whole batch, so it
  # may run as long as the batch (plus its summary); each cell build of the
  # batch gets build_timeout_minutes (buildTimeoutInMinutesOverride, sent by
  # the stage build from TFDEPLOY_CELL_TIMEOUT_MINUTES).
  build_timeout = (each.key == "source" ? 15 : contains(local.batch_projects, each.key)
  ? min(var.batch_timeout_minutes + 10, 2160) : var.build_timeout_minutes)

  source {
    type      = each.key == "source" ? "CODECOMMIT" : "CODEPIPELINE"
    location  = each.key == "source" ? local.repository_clone_url : null
    buildspec = var.buildspecs[each.key]
    # Full history and tags, so the bundle is exactly what the tag pointed at
    # and can be audited later.
    git_clone_depth = each.key == "source" ? 0 : null
  }

  artifacts {
    type = each.key == "source" ? "NO_ARTIFACTS" : "CODEPIPELINE"
  }

  # Plugin, pip and tflint caches named in the buildspecs survive between
  # builds on the same host without an extra bucket.
  cache {
    type  = "LOCAL"
    modes = ["LOCAL_CUSTOM_CACHE"]
  }

  environment {
    type            = "LINUX_CONTAINER"
    image           = var.codebuild_image
    compute_type    = var.codebuild_compute_type
    privileged_mode = false

    dynamic "environment_variable" {
      for_each = each.value.env
      content {
        name  = environment_variable.key
        value = environment_variable.value
      }
    }
  }

  # The plan and apply stages run a release's cells as one batch build: the
  # stage build starts it with StartBuildBatch and the buildspec tfdeploy
  # generated for the release (docs/pipeline/batch-releases.md). The batch
  # role only starts, stops and retries this project's builds; each cell build
  # runs as the project's own (deploy) role.
  dynamic "build_batch_config" {
    for_each = contains(local.batch_projects, each.key) ? [1] : []
    content {
      service_role      = aws_iam_role.batch.arn
      combine_artifacts = false
      timeout_in_mins   = var.batch_timeout_minutes

      restrictions {
        maximum_builds_allowed = var.max_batch_builds
        compute_types_allowed  = [var.codebuild_compute_type]
      }
    }
  }

  logs_config {
    cloudwatch_logs {
      group_name = aws_cloudwatch_log_group.build[each.key].name
      status     = "ENABLED"
    }

    s3_logs {
      status = "DISABLED"
    }
  }

  dynamic "vpc_config" {
    for_each = var.vpc_config == null ? [] : [var.vpc_config]
    content {
      vpc_id             = vpc_config.value.vpc_id
      subnets            = vpc_config.value.subnet_ids
      security_group_ids = vpc_config.value.security_group_ids
    }
  }

  tags = var.tags
}
