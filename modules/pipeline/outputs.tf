output "pipeline_name" {
  description = "Name of the environment's pipeline."
  value       = aws_codepipeline.this.name
}

output "pipeline_arn" {
  description = "ARN of the environment's pipeline."
  value       = aws_codepipeline.this.arn
}

output "tag_event_pattern" {
  description = "EventBridge pattern (JSON) matching tag creation with this environment's prefix; `tfdeploy` prints the same pattern."
  value       = aws_cloudwatch_event_rule.tag_created.event_pattern
}

output "source_bucket" {
  description = "Versioned bucket the source-capture build uploads bundles to."
  value       = module.source_bucket.id
}

output "source_object_key" {
  description = "Key of the source bundle the pipeline watches."
  value       = local.source_object_key
}

output "artifact_bucket" {
  description = "Bucket holding pipeline artifacts (source and plan outputs)."
  value       = module.artifact_bucket.id
}

output "kms_key_arn" {
  description = "KMS key encrypting artifacts, source bundles and build logs."
  value       = module.pipeline_key.arn
}

output "codebuild_projects" {
  description = "CodeBuild project names by stage (source, tflint, checkov, plan, apply)."
  value       = { for k, p in aws_codebuild_project.this : k => p.name }
}

output "build_role_arns" {
  description = "CodeBuild role ARNs by kind (source, scan, deploy). Target accounts' InfraBuildRole must trust the deploy role (and the scan role if tflint deep checking is turned on)."
  value       = { for k, r in aws_iam_role.build : k => r.arn }
}

output "pipeline_role_arn" {
  description = "ARN of the CodePipeline service role."
  value       = aws_iam_role.pipeline.arn
}

output "execution_failed_rule_arn" {
  description = "ARN of the EventBridge rule sending failed executions to notification_topic_arn (null without a topic); use it as aws:SourceArn in the topic policy."
  value       = one(aws_cloudwatch_event_rule.execution_failed[*].arn)
}

output "ledger_signing_key_arn" {
  description = "ARN of the ledger signing key: the repo's ledger_signing_key setting, and ledger_signing_key_arn of the other envs' modules."
  value       = local.ledger_key_arn
}

output "ledger_signing_key_alias" {
  description = "Alias of the ledger signing key this module created (null when given ledger_signing_key_arn)."
  value       = one(aws_kms_alias.ledger[*].name)
}

output "batch_role_arn" {
  description = "ARN of the CodeBuild batch service role of the plan and apply projects."
  value       = aws_iam_role.batch.arn
}
