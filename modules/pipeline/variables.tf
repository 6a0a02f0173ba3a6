variable "env" {
  description = "Environment this pipeline deploys. Only git tags starting with <env>_ start it."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,15}$", var.env))
    error_message = "env must be 2-16 lowercase letters or digits; an underscore would make the <env>_ tag prefix ambiguous."
  }
}

variable "buildspecs" {
  description = "Buildspec YAML of each CodeBuild project (keys source, tflint, checkov, plan, apply), set inline on the projects: the buildspecs are versioned with the pipeline, not read from the tagged tree, so a tag made before they were committed still deploys. Pass file(\"buildspecs/<stage>.yml\") of the files `tfdeploy buildspec generate` writes."
  type        = map(string)

  validation {
    condition     = length(var.buildspecs) == 5 && alltrue([for k in ["source", "tflint", "checkov", "plan", "apply"] : contains(keys(var.buildspecs), k)])
    error_message = "buildspecs must have exactly the keys source, tflint, checkov, plan and apply."
  }

  validation {
    condition     = alltrue([for k, v in var.buildspecs : length(trimspace(v)) > 0 && can(yamldecode(v).phases)])
    error_message = "every buildspec must be non-empty YAML with a phases section (what `tfdeploy buildspec generate` writes)."
  }
}

variable "name_prefix" {
  description = "Prefix of every resource name; resources are named <name_prefix>-<env>-..."
  type        = string
  default     = "tfdeploy"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,14}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-16 lowercase letters, digits or hyphens."
  }
}

variable "repository_name" {
  description = "CodeCommit repository holding the infrastructure code; its tag events start the pipeline."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,100}$", var.repository_name))
    error_message = "repository_name must be a valid CodeCommit repository name."
  }
}

variable "tf_backend_config_prefix" {
  description = "Prefix of the state buckets and lock tables (<prefix>-<env>, <prefix>-lock-<env>); passed to every build as TF_BACKEND_CONFIG_PREFIX."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{1,40}[a-z0-9]$", var.tf_backend_config_prefix))
    error_message = "tf_backend_config_prefix must be 3-42 lowercase letters, digits or hyphens."
  }
}

variable "state_kms_key_arn" {
  description = "KMS key of the state bucket and lock table when they use SSE-KMS; null when they use AES256."
  type        = string
  default     = null

  validation {
    condition     = var.state_kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.state_kms_key_arn))
    error_message = "state_kms_key_arn must be a KMS key ARN."
  }
}

variable "target_account_ids" {
  description = "Workload accounts this environment deploys to. The deploy builds may assume <target_role_name> in these accounts and nothing else."
  type        = list(string)

  validation {
    condition     = length(var.target_account_ids) > 0 && alltrue([for a in var.target_account_ids : can(regex("^[0-9]{12}$", a))])
    error_message = "target_account_ids must be a non-empty list of 12-digit account ids."
  }
}

variable "target_role_name" {
  description = "Role in each target account that Terraform assumes (created with the account, e.g. by Account Factory)."
  type        = string
  default     = "InfraBuildRole"

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,64}$", var.target_role_name))
    error_message = "target_role_name must be an IAM role name."
  }
}

variable "source_object_key" {
  description = "S3 key of the source bundle the Source stage watches. Null means source/<env>/source.zip, where tfdeploy publishes; change it only together with the publisher."
  type        = string
  default     = null

  validation {
    condition     = var.source_object_key == null || can(regex("^[A-Za-z0-9!_.*'()/-]+\\.zip$", var.source_object_key))
    error_message = "source_object_key must be an S3 key ending in .zip, without a leading slash."
  }
}

variable "require_scan_approval" {
  description = "Pause after the checkov scan for a person to accept its counts before planning."
  type        = bool
  default     = true
}

variable "require_apply_approval" {
  description = "Pause between plan and apply for a person to review the plan. Null means yes for staging and prod, no elsewhere."
  type        = bool
  default     = null
}

variable "approval_sns_topic_arn" {
  description = "SNS topic notified when an approval is waiting; null for none."
  type        = string
  default     = null

  validation {
    condition     = var.approval_sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:.+$", var.approval_sns_topic_arn))
    error_message = "approval_sns_topic_arn must be an SNS topic ARN."
  }
}

variable "notification_topic_arn" {
  description = "SNS topic told when an execution of this pipeline fails (an EventBridge rule targets it); null for none. The topic is yours: its policy must let events.amazonaws.com publish (see README)."
  type        = string
  default     = null

  validation {
    condition     = var.notification_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}(\\.fifo)?$", var.notification_topic_arn))
    error_message = "notification_topic_arn must be an SNS topic ARN."
  }
}

variable "promotion_source_env" {
  description = "The env before this one in the promotion order (the `environments` setting), e.g. \"qa\" for prod; null for the first env. The apply build may then read that env's ledger records (`_tfdeploy-ledger/*` of its state bucket, nothing else), which the promotion check needs; without it a promotion check is refused."
  type        = string
  default     = null

  validation {
    condition     = var.promotion_source_env == null || can(regex("^[a-z][a-z0-9]{1,15}$", var.promotion_source_env))
    error_message = "promotion_source_env must be an env name (2-16 lowercase letters or digits, as var.env)."
  }
}

variable "codebuild_image" {
  description = "CodeBuild image for every build; it must offer the Python runtime the buildspecs request (3.12). Pin it: a moving image changes the toolchain under a release."
  type        = string
  default     = "aws/codebuild/amazonlinux-x86_64-standard:5.0"
}

variable "codebuild_compute_type" {
  description = "CodeBuild compute size."
  type        = string
  default     = "BUILD_GENERAL1_SMALL"

  validation {
    condition     = can(regex("^BUILD_GENERAL1_(SMALL|MEDIUM|LARGE|XLARGE|2XLARGE)$", var.codebuild_compute_type))
    error_message = "codebuild_compute_type must be a BUILD_GENERAL1_* size."
  }
}

variable "build_timeout_minutes" {
  description = "Timeout of each build, in minutes."
  type        = number
  default     = 60

  validation {
    condition     = var.build_timeout_minutes >= 5 && var.build_timeout_minutes <= 480
    error_message = "build_timeout_minutes must be between 5 and 480."
  }
}

variable "vpc_config" {
  description = "Run the builds inside a VPC (private subnets with egress to AWS APIs and the Terraform registry or a mirror); null runs them in CodeBuild's network."
  type = object({
    vpc_id             = string
    subnet_ids         = list(string)
    security_group_ids = list(string)
  })
  default = null

  validation {
    condition     = var.vpc_config == null || try(length(var.vpc_config.subnet_ids) > 0 && length(var.vpc_config.security_group_ids) > 0, false)
    error_message = "vpc_config needs at least one subnet and one security group."
  }
}

variable "log_retention_days" {
  description = "Retention of the build log groups, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention period CloudWatch Logs accepts."
  }
}

variable "ledger_signing_key_arn" {
  description = "ARN of the ledger signing key (ledger.tf) another env's module created; null creates it here (do so in one env's module, the first)."
  type        = string
  default     = null

  validation {
    condition     = var.ledger_signing_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$", var.ledger_signing_key_arn))
    error_message = "ledger_signing_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "ledger_reader_arns" {
  description = "Principals (role ARNs, e.g. developers' read-only roles) the created ledger key's policy lets read its public key and verify (tfdeploy status, history, rollback); the account's IAM policies can grant the same."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "max_batch_builds" {
  description = "restrictions.maximumBuildsAllowed of the plan and apply batch builds: the most cells one release may have (one build per cell)."
  type        = number
  default     = 100

  validation {
    condition     = var.max_batch_builds >= 1 && var.max_batch_builds <= 1000
    error_message = "max_batch_builds must be between 1 and 1000."
  }
}

variable "batch_timeout_minutes" {
  description = "Timeout of a whole plan or apply batch (every wave of a release), in minutes."
  type        = number
  default     = 480

  validation {
    condition     = var.batch_timeout_minutes >= 5 && var.batch_timeout_minutes <= 2160
    error_message = "batch_timeout_minutes must be between 5 and 2160."
  }
}
