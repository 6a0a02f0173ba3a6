output "region" {
  description = "Region of this cell, as reported by the provider."
  value       = module.context.region
}

output "vpc_id" {
  description = "ID of the Region's VPC."
  value       = module.network.vpc_id
}

output "public_subnet_ids" {
  description = "Public subnets (load balancer, NAT)."
  value       = module.network.public_subnet_ids
}

output "private_subnet_ids" {
  description = "Private subnets for workloads."
  value       = module.network.private_subnet_ids
}

output "alb_dns_name" {
  description = "DNS name of the external load balancer."
  value       = module.web.alb_dns_name
}

output "target_group_arn" {
  description = "Target group workloads register with."
  value       = module.web.target_group_arn
}
