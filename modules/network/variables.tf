variable "name" {
  description = "Name stem for every resource (e.g. research-dev). Regional IAM names append the Region."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name))
    error_message = "name must be 3-32 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "cidr_block" {
  description = "IPv4 CIDR of the VPC, /16 to /22. Private subnets get 1/8 of it each, public subnets 1/64 each; one 1/8 block is left unallocated for later tiers."
  type        = string

  validation {
    condition     = var.cidr_block != null
    error_message = "cidr_block is required: set vpc_cidr in envs/<env>/<team>/<region>.tfvars for this Region."
  }

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && can(regex("^[0-9.]+/(1[6-9]|2[0-2])$", var.cidr_block))
    error_message = "cidr_block must be an IPv4 CIDR between /16 and /22."
  }
}

variable "az_count" {
  description = "Number of Availability Zones to spread subnets across (2-6). Only zones that need no opt-in are used."
  type        = number
  default     = 3

  validation {
    condition     = var.az_count >= 2 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number from 2 to 6."
  }
}

variable "nat_gateway_mode" {
  description = "single: one NAT gateway shared by all private subnets. per_az: one NAT gateway per AZ so an AZ failure cannot cut egress elsewhere."
  type        = string
  default     = "per_az"

  validation {
    condition     = contains(["single", "per_az"], var.nat_gateway_mode)
    error_message = "nat_gateway_mode must be single or per_az."
  }
}

variable "flow_log_retention_days" {
  description = "Retention of the VPC flow log group, in days."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a retention period CloudWatch Logs accepts."
  }
}

variable "flow_log_traffic_type" {
  description = "Traffic captured by the flow log: ALL, ACCEPT or REJECT."
  type        = string
  default     = "ALL"

  validation {
    condition     = contains(["ALL", "ACCEPT", "REJECT"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ALL, ACCEPT or REJECT."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN to encrypt the flow log group with. Null creates a dedicated key with rotation in this Region."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "enable_s3_gateway_endpoint" {
  description = "Route S3 traffic from private subnets through a gateway endpoint instead of the NAT gateways (free, keeps it on the AWS network)."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
