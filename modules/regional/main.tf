# One Region's cell: everything here is created once per Region and shares
# nothing with other Regions, so a failed or rolled-back deployment in one
# Region cannot affect another.

module "context" {
  source = "../context"

  expected_region  = var.expected_region
  expected_account = var.expected_account
  allowed_regions  = var.allowed_regions
}

module "network" {
  source = "../network"

  name                    = var.name
  cidr_block              = var.vpc_cidr
  az_count                = var.az_count
  nat_gateway_mode        = var.nat_gateway_mode
  flow_log_retention_days = var.log_retention_days

  tags = var.tags
}

module "web" {
  source = "../web"

  name                 = var.name
  vpc_id               = module.network.vpc_id
  subnet_ids           = module.network.public_subnet_ids
  certificate_arn      = var.certificate_arn
  allow_plaintext_http = var.allow_plaintext_http
  ingress_cidr_blocks  = var.ingress_cidr_blocks
  deletion_protection  = var.alb_deletion_protection
  log_retention_days   = var.log_retention_days

  # The web module appends the Region; together they tell a tester exactly
  # which cell and release answered.
  service_label = "${var.name} ${var.release_version}"

  tags = var.tags
}
