# ---------------------------------------------------------------------------
# Deployment identity. tfdeploy writes these into tfdeploy.auto.tfvars.json
# from the git tag <env>_<region|global>/<team>/<version> and the envs/ files.
# ---------------------------------------------------------------------------

variable "env" {
  description = "Environment the tag deploys to (the part before the underscore in the git tag). dev and qa may run without TLS; every other environment requires a certificate."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]*[a-z0-9])?$", var.env))
    error_message = "env must be lowercase letters, digits and hyphens, starting with a letter (no underscore: it ends the env part of a tag)."
  }
}

variable "region" {
  description = "AWS Region the provider targets. For a <env>_global tag this is the global Region the account-level resources are deployed from. Code reads the Region from data.aws_region, this value is only used to assert the provider agrees."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$", var.region))
    error_message = "region must look like an AWS Region code, e.g. us-east-1 or eu-central-1."
  }
}

variable "team" {
  description = "Team (workload) whose account is deployed; selects envs/<env>/<team>/. <team>-<env> names the ALB, its target group and log bucket, so together they are kept short."
  type        = string

  validation {
    condition     = can(regex("^[a-z]([a-z0-9-]*[a-z0-9])?$", var.team))
    error_message = "team must be lowercase letters, digits and hyphens, starting with a letter."
  }

  validation {
    condition     = length("${var.team}-${var.env}") <= 20
    error_message = "<team>-<env> must be at most 20 characters: it becomes the ALB name (32 max with suffixes) and part of a 63-character S3 bucket name."
  }
}

variable "account" {
  description = "12-digit id of the target workload account. The deployment fails if the assumed role is in any other account."
  type        = string

  validation {
    condition     = can(regex("^[0-9]{12}$", var.account))
    error_message = "account must be a 12-digit AWS account id, quoted as a string."
  }
}

# Terraform reserves the variable name "version" (it is a module-block
# meta-argument), so the tag's version arrives as release_version.
variable "release_version" {
  description = "Version part of the git tag (e.g. 1.0). The tag's version is the version of every module in this repository."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+){0,3}(-[0-9a-z]+(\\.[0-9a-z]+)*)?$", var.release_version))
    error_message = "release_version must be a version such as 1.0, 1.2.3 or 2.0.0-rc.1 (as in the git tag)."
  }
}

variable "allowed_regions" {
  description = "Regions this team/env may be deployed to (envs/<env>/<team>/variables.tfvars). Empty means unrestricted. tfdeploy refuses other Regions before Terraform runs; the regional stack re-checks against the provider's Region."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for r in var.allowed_regions : can(regex("^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$", r))])
    error_message = "Every entry of allowed_regions must be an AWS Region code."
  }
}

variable "tags" {
  description = "Team tags (cost centre, data classification, owner) added to every resource, on top of the provider default tags tfdeploy sets."
  type        = map(string)
  default     = {}
}

# ---------------------------------------------------------------------------
# Regional stack (module.regional): set per Region in envs/<env>/<team>/<region>.tfvars
# ---------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "IPv4 CIDR of this Region's VPC, /16 to /22. Must not overlap any other Region of the same account. Required for regional deployments; global deployments leave it unset (null)."
  type        = string
  default     = null

  validation {
    condition = var.vpc_cidr == null || (
      can(cidrhost(var.vpc_cidr, 0)) &&
      can(regex("^[0-9.]+/(1[6-9]|2[0-2])$", var.vpc_cidr))
    )
    error_message = "vpc_cidr must be an IPv4 CIDR between /16 and /22."
  }
}

variable "az_count" {
  description = "Number of Availability Zones the VPC spans (subnets, and NAT gateways when nat_gateway_mode is per_az)."
  type        = number
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number from 2 to 6; an ALB needs at least two AZs."
  }
}

variable "nat_gateway_mode" {
  description = "single: one NAT gateway for the VPC (cheaper, an AZ outage cuts private egress). per_az: one per AZ (production posture)."
  type        = string
  default     = "per_az"

  validation {
    condition     = contains(["single", "per_az"], var.nat_gateway_mode)
    error_message = "nat_gateway_mode must be single or per_az."
  }
}

variable "flow_log_retention_days" {
  description = "Retention of VPC flow logs and other regional CloudWatch log groups, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a retention period CloudWatch Logs accepts (e.g. 90, 365, 731)."
  }
}

variable "alb_certificate_arn" {
  description = "ACM certificate ARN for the ALB HTTPS listener, in the Region being deployed. When null the ALB serves plain HTTP, which is refused for staging and prod."
  type        = string
  default     = null

  validation {
    condition     = var.alb_certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+$", var.alb_certificate_arn))
    error_message = "alb_certificate_arn must be an ACM certificate ARN."
  }
}

variable "alb_ingress_cidrs" {
  description = "IPv4 CIDRs allowed to reach the external ALB."
  type        = list(string)
  default     = ["0.0.0.0/0"]

  validation {
    condition     = length(var.alb_ingress_cidrs) > 0 && alltrue([for c in var.alb_ingress_cidrs : can(cidrhost(c, 0))])
    error_message = "alb_ingress_cidrs must be a non-empty list of IPv4 CIDRs."
  }
}

variable "alb_deletion_protection" {
  description = "Protect the ALB from deletion. Leave true outside disposable environments."
  type        = bool
  default     = true
}

# ---------------------------------------------------------------------------
# Global stack (module.global): set in envs/<env>/<team>/global.tfvars
# ---------------------------------------------------------------------------

variable "workload_trusted_services" {
  description = "AWS service principals allowed to assume the workload role (e.g. ecs-tasks.amazonaws.com)."
  type        = list(string)
  default     = ["ecs-tasks.amazonaws.com"]

  validation {
    condition     = length(var.workload_trusted_services) > 0 && alltrue([for s in var.workload_trusted_services : can(regex("^[a-z0-9.-]+\\.amazonaws\\.com$", s))])
    error_message = "workload_trusted_services must be a non-empty list of service principals ending in .amazonaws.com."
  }
}

variable "permissions_boundary_arn" {
  description = "ARN of the IAM managed policy set as permissions boundary on the workload role; null for none. Organisations that delegate IAM to teams usually require one."
  type        = string
  default     = null

  validation {
    condition     = var.permissions_boundary_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:policy/.+$", var.permissions_boundary_arn))
    error_message = "permissions_boundary_arn must be an IAM policy ARN."
  }
}
