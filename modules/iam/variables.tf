variable "name" {
  description = "Name stem (e.g. research-dev). The role is <name>-workload; the workload's SSM parameters and log groups live under /<name>/."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}[a-z0-9]$", var.name))
    error_message = "name must be 3-42 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "trusted_services" {
  description = "Service principals that may assume the role, e.g. [\"ecs-tasks.amazonaws.com\"]."
  type        = list(string)

  validation {
    condition     = length(var.trusted_services) > 0 && alltrue([for s in var.trusted_services : can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", s))])
    error_message = "trusted_services must be a non-empty list of service principals ending in .amazonaws.com."
  }
}

variable "require_source_account" {
  description = "Require aws:SourceAccount to equal this account in the trust policy (confused-deputy protection). Services such as ECS tasks send it; turn off only for a service that does not."
  type        = bool
  default     = true
}

variable "permissions_boundary_arn" {
  description = "Managed policy set as the role's permissions boundary; null for none. The boundary caps what the role can ever do, whatever policies are attached later."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN."
  }
}

variable "path" {
  description = "IAM path of the role; lets SCPs and boundaries address all workload roles at once."
  type        = string
  default     = "/workload/"

  validation {
    condition     = can(regex("^/([A-Za-z0-9_.-]+/)*$", var.path))
    error_message = "path must start and end with / (e.g. /workload/)."
  }
}

variable "max_session_duration" {
  description = "Maximum session length in seconds."
  type        = number
  default     = 3600

  validation {
    condition     = var.max_session_duration >= 3600 && var.max_session_duration <= 43200
    error_message = "max_session_duration must be between 3600 and 43200 seconds."
  }
}

variable "tags" {
  description = "Tags added to the role."
  type        = map(string)
  default     = {}
}
