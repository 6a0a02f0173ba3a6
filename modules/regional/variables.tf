variable "name" {
  description = "Name stem of the team and environment (e.g. research-dev); the same stem is used in every Region."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "expected_region" {
  description = "Region the deployment was requested for; the provider must target it."
  type        = string
}

variable "expected_account" {
  description = "Account id the deployment was requested for; the credentials must belong to it."
  type        = string
}

variable "allowed_regions" {
  description = "Regions this team/env may use; empty allows any."
  type        = list(string)
  default     = []
}

variable "release_version" {
  description = "Release (git tag version) being deployed; shown in the load balancer's response."
  type        = string
}

variable "vpc_cidr" {
  description = "IPv4 CIDR of this Region's VPC. Required: a regional deployment without one fails here, global deployments never evaluate it."
  type        = string
}

variable "az_count" {
  description = "Availability Zones to span."
  type        = number
  default     = 3
}

variable "nat_gateway_mode" {
  description = "single or per_az NAT gateways."
  type        = string
  default     = "per_az"
}

variable "log_retention_days" {
  description = "Retention of the Region's logs (flow logs, ALB and WAF logs), in days."
  type        = number
  default     = 365
}

variable "certificate_arn" {
  description = "ACM certificate of this Region for the HTTPS listener; null for plain HTTP where allowed."
  type        = string
  default     = null
}

variable "allow_plaintext_http" {
  description = "Permit running without a certificate (non-production environments only)."
  type        = bool
  default     = false
}

variable "ingress_cidr_blocks" {
  description = "CIDRs allowed to reach the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "alb_deletion_protection" {
  description = "Protect the load balancer from deletion."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
