# risk / prod
# PLACEHOLDER account id: replace with the real risk prod account before the first deployment.
account = "244444444444"

# tfdeploy refuses any other Region for this team and environment.
allowed_regions = ["us-east-1", "eu-central-1"]

az_count         = 3
nat_gateway_mode = "per_az"

flow_log_retention_days = 731
alb_deletion_protection = true

tags = {
  CostCenter         = "CC-2002"
  DataClassification = "confidential"
  Owner              = "risk-platform@example.com"
}
