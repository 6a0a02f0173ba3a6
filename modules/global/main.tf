# Account-level resources, deployed once from the global Region. IAM is global:
# a change here reaches every Region of the account at once, so keep this
# namespace small and change it in its own release.

module "context" {
  source = "../context"

  expected_region  = var.expected_region
  expected_account = var.expected_account
}

module "workload_role" {
  source = "../iam"

  name                     = var.name
  trusted_services         = var.workload_trusted_services
  permissions_boundary_arn = var.permissions_boundary_arn

  tags = var.tags
}
