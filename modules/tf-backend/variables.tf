variable "prefix" {
  description = "Backend name prefix (tfdeploy's backend_prefix / TF_BACKEND_CONFIG_PREFIX). The bucket is <prefix>-<env> and the lock table <prefix>-lock-<env>."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$", var.prefix)) && !can(regex("--", var.prefix))
    error_message = "prefix must be 3-42 lowercase letters, digits and single hyphens, so that <prefix>-<env> is a valid bucket name."
  }
}

variable "env" {
  description = "Environment whose deployments keep their state here. One backend per environment limits the blast radius of a mistake to that environment."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,15}$", var.env))
    error_message = "env must be 2-16 lowercase letters or digits (no underscore: it separates env and Region in git tags)."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the state bucket (SSE-KMS) and the lock table. Null selects AES256 for the bucket and the AWS managed key for the table, as tfdeploy bootstrap does."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias: DynamoDB needs the key ARN)."
  }
}

variable "create_lock_table" {
  description = "Create the DynamoDB lock table. Set false when every consumer uses S3-native locking (use_lockfile = true, Terraform >= 1.10)."
  type        = bool
  default     = true
}

variable "noncurrent_version_expiration_days" {
  description = "Days superseded state versions are kept. They are the rollback and audit history of every deployment, so keep this long."
  type        = number
  default     = 365

  validation {
    condition     = var.noncurrent_version_expiration_days >= 30
    error_message = "Keep at least 30 days of state history."
  }
}

variable "access_log_bucket" {
  description = "Bucket receiving S3 server access logs for the state bucket; null to rely on CloudTrail data events."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to the bucket and the table."
  type        = map(string)
  default     = {}
}
