locals {
  # Pipeline-level variables handed to every Terraform build; the buildspecs
  # derive the backend (<prefix>-<env>, <prefix>-lock-<env>) from them.
  # TFDEPLOY_EXPECTED_TAG is the tag `tfdeploy publish` started this execution
  # for: `tfdeploy ci` refuses a source bundle of any other tag, so an
  # execution can never deploy a tag that was pushed after it started.
  build_environment = jsonencode([
    { name = "TF_BACKEND_CONFIG_PREFIX", value = "#{variables.TF_BACKEND_CONFIG_PREFIX}", type = "PLAINTEXT" },
    { name = "ENV", value = "#{variables.ENV}", type = "PLAINTEXT" },
    { name = "TFDEPLOY_EXPECTED_TAG", value = "#{variables.TFDEPLOY_TAG}", type = "PLAINTEXT" },
  ])

  # The plan and apply stage builds of a release of several cells start its
  # batch (delivery/release_stage.py): they need the execution (the prefix of
  # each cell's plan artifact, shared by the plan and apply stages of one
  # execution) and the bundle's object version (every cell build's source).
  batch_stage_environment = jsonencode(concat(jsondecode(local.build_environment), [
    { name = "TFDEPLOY_EXECUTION_ID", value = "#{codepipeline.PipelineExecutionId}", type = "PLAINTEXT" },
    { name = "TFDEPLOY_SOURCE_VERSION", value = "#{SourceVariables.VersionId}", type = "PLAINTEXT" },
  ]))

  approval_notification = var.approval_sns_topic_arn == null ? {} : { NotificationArn = var.approval_sns_topic_arn }
}

resource "aws_codepipeline" "this" {
  name     = local.name
  role_arn = aws_iam_role.pipeline.arn

  # V2 for pipeline-level variables. QUEUED: every pushed tag is deployed in
  # order; the default (SUPERSEDED) could silently skip a Region's deployment
  # when two tags arrive close together. Nothing starts an execution but
  # `tfdeploy publish` (StartPipelineExecution with the uploaded object's
  # version as the source revision and the tag as TFDEPLOY_TAG): no polling,
  # no S3 event rule, so no execution picks up "the latest" object.
  pipeline_type  = "V2"
  execution_mode = "QUEUED"

  artifact_store {
    type     = "S3"
    location = module.artifact_bucket.id

    encryption_key {
      type = "KMS"
      id   = module.pipeline_key.arn
    }
  }

  variable {
    name          = "TF_BACKEND_CONFIG_PREFIX"
    default_value = var.tf_backend_config_prefix
    description   = "Prefix of the state bucket and lock table"
  }

  variable {
    name          = "ENV"
    default_value = var.env
    description   = "Environment this pipeline deploys"
  }

  # No default: an execution started without the tag (e.g. "Release change"
  # in the console) must not run with a guessed one.
  variable {
    name        = "TFDEPLOY_TAG"
    description = "The tag this execution deploys; set by tfdeploy publish"
  }

  stage {
    name = "Source"

    action {
      name             = "SourceBundle"
      category         = "Source"
      owner            = "AWS"
      provider         = "S3"
      version          = "1"
      output_artifacts = ["source_output"]
      # Its VersionId is the source of every cell build of a release's batch.
      namespace = "SourceVariables"

      configuration = {
        S3Bucket    = module.source_bucket.id
        S3ObjectKey = local.source_object_key
        # Never polled and no S3 event rule: each execution is started by
        # tfdeploy publish with sourceRevisions = the exact object version.
        PollForSourceChanges = "false"
      }
    }
  }

  stage {
    name = "Lint"

    action {
      name            = "tflint"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source_output"]
      run_order       = 1

      configuration = {
        ProjectName          = aws_codebuild_project.this["tflint"].name
        EnvironmentVariables = local.build_environment
      }
    }
  }

  stage {
    name = "SecurityScan"

    action {
      name            = "checkov"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source_output"]
      run_order       = 1
      # buildspecs/checkov.yml exports CHECKOV_PASSED, CHECKOV_FAILED and
      # CHECKOV_SKIPPED (even when the scan fails), shown by the approval.
      namespace = "Checkov"

      configuration = {
        ProjectName          = aws_codebuild_project.this["checkov"].name
        EnvironmentVariables = local.build_environment
      }
    }

    dynamic "action" {
      for_each = var.require_scan_approval ? [1] : []
      content {
        name      = "ReviewCheckovFindings"
        category  = "Approval"
        owner     = "AWS"
        provider  = "Manual"
        version   = "1"
        run_order = 2

        configuration = merge(local.approval_notification, {
          CustomData = "checkov for ${var.env}: #{Checkov.CHECKOV_PASSED} passed, #{Checkov.CHECKOV_FAILED} failed, #{Checkov.CHECKOV_SKIPPED} skipped. Approve to continue to plan."
        })
      }
    }
  }

  stage {
    name = "Plan"

    action {
      name             = "terraform-plan"
      category         = "Build"
      owner            = "AWS"
      provider         = "CodeBuild"
      version          = "1"
      input_artifacts  = ["source_output"]
      output_artifacts = ["plan"]
      run_order        = 1
      # PLAN_SUMMARY and PLAN_REPORT (a release: its plan matrix in one line and
      # the HTML report of its plans) for the approval.
      namespace = "Plan"

      configuration = {
        ProjectName          = aws_codebuild_project.this["plan"].name
        EnvironmentVariables = local.batch_stage_environment
      }
    }
  }

  stage {
    name = "Apply"

    # The approval sits in the Apply stage (before the apply action) so that
    # disabling it in lower environments does not change the stage list.
    dynamic "action" {
      for_each = local.require_apply_approval ? [1] : []
      content {
        name      = "ReviewPlan"
        category  = "Approval"
        owner     = "AWS"
        provider  = "Manual"
        version   = "1"
        run_order = 1

        configuration = merge(local.approval_notification, {
          CustomData = "Apply to ${var.env}: #{Plan.PLAN_SUMMARY}. Plans: #{Plan.PLAN_REPORT} (a release: the plan matrix, a link to each cell's plan log); else the terraform-plan build log of this execution."
        })
      }
    }

    action {
      name            = "terraform-apply"
      category        = "Build"
      owner           = "AWS"
      provider        = "CodeBuild"
      version         = "1"
      input_artifacts = ["source_output", "plan"]
      run_order       = 2

      # The secondary input "plan" appears as CODEBUILD_SRC_DIR_plan, where
      # tfdeploy finds the saved plan: what was reviewed is what is applied.
      configuration = {
        ProjectName          = aws_codebuild_project.this["apply"].name
        PrimarySource        = "source_output"
        EnvironmentVariables = local.batch_stage_environment
      }
    }
  }

  tags = var.tags
}
