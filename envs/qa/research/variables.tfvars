# research / qa
# PLACEHOLDER account id: replace with the real research qa account before the first deployment.
account = "122222222222"

# tfdeploy refuses any other Region for this team and environment.
allowed_regions = ["us-east-1", "eu-central-1", "ap-southeast-1"]

# Two AZs and one NAT gateway keep non-production cost down.
az_count         = 2
nat_gateway_mode = "single"

flow_log_retention_days = 90
alb_deletion_protection = false

tags = {
  CostCenter         = "CC-1001"
  DataClassification = "internal"
  Owner              = "research-platform@example.com"
}
