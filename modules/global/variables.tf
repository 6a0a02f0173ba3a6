variable "name" {
  description = "Name stem of the team and environment (e.g. research-dev)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,18}[a-z0-9]$", var.name))
    error_message = "name must be 3-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "expected_region" {
  description = "The global Region the account-level resources are deployed from; the provider must target it."
  type        = string
}

variable "expected_account" {
  description = "Account id the deployment was requested for; the credentials must belong to it."
  type        = string
}

variable "workload_trusted_services" {
  description = "Service principals allowed to assume the workload role."
  type        = list(string)
  default     = ["ecs-tasks.amazonaws.com"]
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary for the workload role; null for none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
