output "alb_arn" {
  description = "ARN of the load balancer."
  value       = aws_lb.this.arn
}

output "alb_dns_name" {
  description = "Public DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Route 53 hosted zone id of the load balancer, for alias records."
  value       = aws_lb.this.zone_id
}

output "security_group_id" {
  description = "Security group of the load balancer; allow it on the targets' security group for target_port."
  value       = aws_security_group.alb.id
}

output "target_group_arn" {
  description = "Target group that workloads register with and forward listener rules to."
  value       = aws_lb_target_group.this.arn
}

output "listener_arn" {
  description = "Listener that serves requests: HTTPS when a certificate is set, otherwise the plain-HTTP listener."
  value       = local.https ? aws_lb_listener.https[0].arn : aws_lb_listener.http[0].arn
}

output "log_bucket" {
  description = "Bucket holding ALB access logs (prefix alb/) and WAF logs."
  value       = module.log_bucket.id
}

output "web_acl_arn" {
  description = "ARN of the WAF web ACL attached to the load balancer."
  value       = aws_wafv2_web_acl.this.arn
}
