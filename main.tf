locals {
  # One name stem per team and environment. Region-scoped resources append the
  # Region (or rely on being regional) so the same stem is safe in every Region.
  name = "${var.team}-${var.env}"

  # Plain HTTP is tolerated only where no customer data flows.
  allow_plaintext_http = contains(["dev", "qa"], var.env)
}

# Regional namespace: one instance per Region, deployed by <env>_<region>/... tags
# with -target=module.regional and a state key of <team>/<env>-<region>.
module "regional" {
  source = "./modules/regional"

  name             = local.name
  expected_region  = var.region
  expected_account = var.account
  allowed_regions  = var.allowed_regions
  release_version  = var.release_version

  vpc_cidr                = var.vpc_cidr
  az_count                = var.az_count
  nat_gateway_mode        = var.nat_gateway_mode
  log_retention_days      = var.flow_log_retention_days
  certificate_arn         = var.alb_certificate_arn
  allow_plaintext_http    = local.allow_plaintext_http
  ingress_cidr_blocks     = var.alb_ingress_cidrs
  alb_deletion_protection = var.alb_deletion_protection

  tags = var.tags
}

# Global namespace: account-level resources, deployed once from the global Region
# by <env>_global/... tags with -target=module.global and a state key of
# <team>/<env>-global.
module "global" {
  source = "./modules/global"

  name             = local.name
  expected_region  = var.region
  expected_account = var.account

  workload_trusted_services = var.workload_trusted_services
  permissions_boundary_arn  = var.permissions_boundary_arn

  tags = var.tags
}
