variable "name" {
  description = "Name stem of the load balancer and its resources (e.g. research-dev). At most 20 characters so that derived names fit the ALB and S3 limits."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "vpc_id" {
  description = "VPC the load balancer and target group belong to."
  type        = string
}

variable "subnet_ids" {
  description = "Public subnets for the load balancer, in at least two Availability Zones."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 2
    error_message = "An Application Load Balancer needs subnets in at least two Availability Zones."
  }
}

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listener. When set, port 80 only redirects to HTTPS. When null, port 80 serves the response in plain text, which requires allow_plaintext_http."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "allow_plaintext_http" {
  description = "Explicit opt-in to run without a certificate (plain HTTP). Meant for throwaway environments only."
  type        = bool
  default     = false
}

variable "ssl_policy" {
  description = "Security policy of the HTTPS listener. The default negotiates TLS 1.3 and 1.2 with forward-secret ciphers only."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = can(regex("^ELBSecurityPolicy-(TLS13-1-[23]|FS-1-2|TLS-1-2)", var.ssl_policy))
    error_message = "ssl_policy must be an ELB policy that refuses TLS versions below 1.2."
  }
}

variable "ingress_cidr_blocks" {
  description = "IPv4 CIDRs allowed to connect to the load balancer."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.ingress_cidr_blocks) > 0 && alltrue([for c in var.ingress_cidr_blocks : can(cidrhost(c, 0))])
    error_message = "ingress_cidr_blocks must be a non-empty list of IPv4 CIDRs."
  }
}

variable "target_port" {
  description = "Port the targets listen on. Targets are reached over HTTPS so traffic stays encrypted inside the VPC."
  type        = number
  default     = 443

  validation {
    condition     = var.target_port >= 1 && var.target_port <= 65535
    error_message = "target_port must be a TCP port."
  }
}

variable "health_check_path" {
  description = "HTTP path the target group health check requests."
  type        = string
  default     = "/health"

  validation {
    condition     = startswith(var.health_check_path, "/")
    error_message = "health_check_path must start with /."
  }
}

variable "service_label" {
  description = "Text naming the service in the fixed response (e.g. \"research-dev 1.0\"); the Region is appended from the provider. Defaults to name."
  type        = string
  default     = null
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion."
  type        = bool
  default     = true
}

variable "log_retention_days" {
  description = "Days ALB access logs and WAF logs are kept in the log bucket."
  type        = number
  default     = 365

  validation {
    condition     = var.log_retention_days >= 1
    error_message = "log_retention_days must be at least 1."
  }
}

variable "waf_rate_limit" {
  description = "Requests per client IP per 5 minutes above which the WAF blocks the client."
  type        = number
  default     = 2000

  validation {
    condition     = var.waf_rate_limit >= 100
    error_message = "waf_rate_limit must be at least 100 (the AWS WAF minimum)."
  }
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
