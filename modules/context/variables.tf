variable "expected_region" {
  description = "Region the deployment was requested for (from the git tag). The provider's Region must equal it."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$", var.expected_region))
    error_message = "expected_region must be an AWS Region code."
  }
}

variable "expected_account" {
  description = "12-digit account id the deployment was requested for. The credentials in use must belong to it."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.expected_account))
    error_message = "expected_account must be a 12-digit account id."
  }
}

variable "allowed_regions" {
  description = "Regions the caller may deploy to; empty allows any."
  type        = list(string)
  default     = []
}
