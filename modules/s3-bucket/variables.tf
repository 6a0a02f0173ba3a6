variable "bucket_name" {
  description = "Globally unique bucket name. Callers build it from their naming convention (e.g. <prefix>-<env>, or including account and Region)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$", var.bucket_name)) && !can(regex("--|^xn--|-s3alias$", var.bucket_name))
    error_message = "bucket_name must be 3-63 lowercase letters, digits and hyphens, and must not use reserved prefixes or suffixes."
  }
}

variable "kms_key_arn" {
  description = "KMS key for default encryption (SSE-KMS with an S3 bucket key). Null selects SSE-S3 (AES256), for consumers that cannot write to KMS-encrypted buckets, such as ALB access logs."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key or alias ARN."
  }
}

variable "policy_documents" {
  description = "Extra bucket policy documents (JSON, e.g. from aws_iam_policy_document) merged with the TLS-only deny statements this module always adds."
  type        = list(string)
  default     = []
}

variable "expiration_days" {
  description = "Days after which current object versions expire; null keeps them until deleted."
  type        = number
  default     = null

  validation {
    condition     = var.expiration_days == null || try(var.expiration_days >= 1, false)
    error_message = "expiration_days must be null or at least 1."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days a superseded object version is kept before it is deleted. Versioning is always on; this bounds what it costs."
  type        = number
  default     = 90

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "access_log_bucket" {
  description = "Bucket receiving S3 server access logs for this bucket; null disables them (the account's CloudTrail data events are then the audit trail)."
  type        = string
  default     = null
}

variable "eventbridge_notifications" {
  description = "Send this bucket's object events to EventBridge (used to start pipelines on new source objects)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags added to the bucket."
  type        = map(string)
  default     = {}
}
