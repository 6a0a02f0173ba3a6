output "role_arn" {
  description = "ARN of the workload role."
  value       = aws_iam_role.workload.arn
}

output "role_name" {
  description = "Name of the workload role, for attaching further task-specific policies."
  value       = aws_iam_role.workload.name
}

output "parameter_path" {
  description = "SSM parameter path the role can read (<path>/*)."
  value       = local.prefix
}
