# research / prod
# PLACEHOLDER account id: replace with the real research prod account before the first deployment.
account = "144444444444"

# tfdeploy refuses any other Region for this team and environment.
allowed_regions = ["us-east-1", "eu-central-1", "ap-southeast-1"]

az_count         = 3
nat_gateway_mode = "per_az"

flow_log_retention_days = 731
alb_deletion_protection = true

tags = {
  CostCenter         = "CC-1001"
  DataClassification = "internal"
  Owner              = "research-platform@example.com"
}
