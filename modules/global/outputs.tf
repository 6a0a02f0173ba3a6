output "account_id" {
  description = "Account the global resources were deployed to, as verified against the credentials."
  value       = module.context.account_id
}

output "workload_role_arn" {
  description = "ARN of the workload role."
  value       = module.workload_role.role_arn
}

output "workload_role_name" {
  description = "Name of the workload role."
  value       = module.workload_role.role_name
}
