# Outputs of the namespace that was not targeted are simply absent from that
# deployment's state; each namespace has its own state file.

output "region" {
  description = "Region the regional stack was deployed to, as reported by the provider."
  value       = module.regional.region
}

output "vpc_id" {
  description = "ID of the regional VPC."
  value       = module.regional.vpc_id
}

output "private_subnet_ids" {
  description = "IDs of the regional private subnets, one per AZ."
  value       = module.regional.private_subnet_ids
}

output "alb_dns_name" {
  description = "DNS name of the external ALB; browsing to it returns a message naming the Region."
  value       = module.regional.alb_dns_name
}

output "alb_target_group_arn" {
  description = "ARN of the ALB target group that workloads register with."
  value       = module.regional.target_group_arn
}

output "workload_role_arn" {
  description = "ARN of the account-level workload IAM role."
  value       = module.global.workload_role_arn
}
