variable "description" {
  description = "Description of the key: what it encrypts, for whom and where."
  type        = string
}

variable "alias_name" {
  description = "Alias of the key, without the alias/ prefix (e.g. research-dev-vpc-flow-logs)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9/_-]{1,250}$", var.alias_name)) && !startswith(var.alias_name, "aws/")
    error_message = "alias_name must be 1-250 letters, digits, slashes, underscores or hyphens, without the alias/ prefix, and must not start with aws/."
  }
}

variable "log_group_arn_patterns" {
  description = "Log group ARNs CloudWatch Logs may use the key for (kms:EncryptionContext:aws:logs:arn, matched with ArnLike): exact ARNs, or patterns with * and ? wildcards."
  type        = list(string)

  validation {
    condition     = length(var.log_group_arn_patterns) > 0 && alltrue([for a in var.log_group_arn_patterns : can(regex("^arn:aws[a-z-]*:logs:[a-z0-9-]+:[0-9]{12}:log-group:.+$", a))])
    error_message = "log_group_arn_patterns must name at least one log group ARN (arn:<partition>:logs:<region>:<account>:log-group:<name or pattern>)."
  }
}

variable "tags" {
  description = "Tags added to the key."
  type        = map(string)
  default     = {}
}
