data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# Zones are discovered, never listed, so a new Region works without code
# changes. Stability comes from sorting and taking the first az_count names:
# zones AWS adds later get later letters and never shift existing subnets, and
# there is no state filter, so an impaired zone cannot shift them either.
# Opt-in zones (Local/Wavelength) are excluded: not every service runs there.
data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Pinning zone names per Region would break zero-code Region onboarding; the sorted slice of az_count zones is already closed against zones added later.
  filter {
    name   = "opt-in-status"
    values = ["opt-in-not-required"]
  }

  lifecycle {
    postcondition {
      condition     = length(self.names) >= var.az_count
      error_message = "az_count is ${var.az_count} but this Region only has ${length(self.names)} standard Availability Zones."
    }
  }
}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  azs        = slice(sort(data.aws_availability_zones.available.names), 0, var.az_count)

  # Fixed layout so adding an AZ later never renumbers existing subnets:
  # blocks 0-5 of /+3 are private subnets, block 7 is cut into /+6 public
  # subnets, block 6 is kept free for a future tier (e.g. databases).
  private_cidrs = [for i in range(var.az_count) : cidrsubnet(var.cidr_block, 3, i)]
  public_cidrs  = [for i in range(var.az_count) : cidrsubnet(cidrsubnet(var.cidr_block, 3, 7), 3, i)]

  nat_count = var.nat_gateway_mode == "single" ? 1 : var.az_count

  create_kms_key = var.kms_key_arn == null
  kms_key_arn    = local.create_kms_key ? module.flow_logs_key[0].arn : var.kms_key_arn

  flow_log_group_name = "/aws/vpc-flow-logs/${var.name}"
}

resource "aws_vpc" "this" {
  cidr_block           = var.cidr_block
  enable_dns_support   = true
  enable_dns_hostnames = true

  tags = merge(var.tags, { Name = var.name })
}

# Adopting the default security group with no rules removes AWS's
# allow-all-within-group default, so nothing can accidentally rely on it.
resource "aws_default_security_group" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-default-deny" })
}

resource "aws_subnet" "public" {
  count = var.az_count

  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = local.public_cidrs[count.index]
  # Public subnets host the ALB and NAT gateways only; nothing launched here
  # should get a public address implicitly.
  map_public_ip_on_launch = false

  tags = merge(var.tags, {
    Name = "${var.name}-public-${local.azs[count.index]}"
    Tier = "public"
  })
}

resource "aws_subnet" "private" {
  count = var.az_count

  vpc_id            = aws_vpc.this.id
  availability_zone = local.azs[count.index]
  cidr_block        = local.private_cidrs[count.index]

  tags = merge(var.tags, {
    Name = "${var.name}-private-${local.azs[count.index]}"
    Tier = "private"
  })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-public" })
}

resource "aws_route" "public_internet" {
  route_table_id         = aws_route_table.public.id
  destination_cidr_block = "0.0.0.0/0"
  gateway_id             = aws_internet_gateway.this.id
}

resource "aws_route_table_association" "public" {
  count = var.az_count

  subnet_id      = aws_subnet.public[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_eip" "nat" {
  count = local.nat_count

  domain = "vpc"

  tags = merge(var.tags, { Name = "${var.name}-nat-${local.azs[count.index]}" })

  depends_on = [aws_internet_gateway.this]
}

resource "aws_nat_gateway" "this" {
  count = local.nat_count

  allocation_id = aws_eip.nat[count.index].id
  subnet_id     = aws_subnet.public[count.index].id

  tags = merge(var.tags, { Name = "${var.name}-${local.azs[count.index]}" })

  depends_on = [aws_internet_gateway.this]
}

# One route table per AZ even with a single NAT gateway, so switching to
# per_az later only changes routes, not associations.
resource "aws_route_table" "private" {
  count = var.az_count

  vpc_id = aws_vpc.this.id

  tags = merge(var.tags, { Name = "${var.name}-private-${local.azs[count.index]}" })
}

resource "aws_route" "private_nat" {
  count = var.az_count

  route_table_id         = aws_route_table.private[count.index].id
  destination_cidr_block = "0.0.0.0/0"
  nat_gateway_id         = aws_nat_gateway.this[var.nat_gateway_mode == "single" ? 0 : count.index].id
}

resource "aws_route_table_association" "private" {
  count = var.az_count

  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[count.index].id
}

# Resolving the service name (rather than formatting com.amazonaws.<region>.s3)
# keeps this correct in partitions with different naming, such as China.
data "aws_vpc_endpoint_service" "s3" {
  count = var.enable_s3_gateway_endpoint ? 1 : 0

  service      = "s3"
  service_type = "Gateway"
}

resource "aws_vpc_endpoint" "s3" {
  count = var.enable_s3_gateway_endpoint ? 1 : 0

  vpc_id            = aws_vpc.this.id
  service_name      = data.aws_vpc_endpoint_service.s3[0].service_name
  vpc_endpoint_type = "Gateway"
  route_table_ids   = aws_route_table.private[*].id

  tags = merge(var.tags, { Name = "${var.name}-s3" })
}

# ---------------------------------------------------------------------------
# Flow logs
# ---------------------------------------------------------------------------

# Created here unless the caller brings its own key (kms_key_arn). CloudWatch
# Logs may use it for this log group only.
module "flow_logs_key" {
  source = "../logs-kms-key"
  count  = local.create_kms_key ? 1 : 0

  description            = "VPC flow logs of ${var.name} in ${local.region}"
  alias_name             = "${var.name}-vpc-flow-logs"
  log_group_arn_patterns = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.flow_log_group_name}"]

  tags = var.tags
}

# The key and alias were declared in this module before logs-kms-key existed.
# These moves keep the existing key (and what it encrypts) instead of replacing it.
moved {
  from = aws_kms_key.flow_logs[0]
  to   = module.flow_logs_key[0].aws_kms_key.this
}

moved {
  from = aws_kms_alias.flow_logs[0]
  to   = module.flow_logs_key[0].aws_kms_alias.this
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  name              = local.flow_log_group_name
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = local.kms_key_arn

  tags = var.tags
}

data "aws_iam_policy_document" "flow_logs_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }

    # Confused-deputy protection: only flow logs of this account and Region.
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ec2:${local.region}:${local.account_id}:vpc-flow-log/*"]
    }
  }
}

data "aws_iam_policy_document" "flow_logs_write" {
  statement {
    sid = "WriteThisLogGroupOnly"
    actions = [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogStreams",
    ]
    resources = ["${aws_cloudwatch_log_group.flow_logs.arn}:*"]
  }

  statement {
    sid       = "DescribeLogGroups"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:*"]
  }
}

# IAM is global, but this role only serves this Region's flow logs. It lives
# in the regional cell (named with the Region) so removing a Region removes
# it, and a mistake in one Region's role cannot affect another's logging.
resource "aws_iam_role" "flow_logs" {
  name               = "${var.name}-vpc-flow-logs-${local.region}"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume.json

  tags = var.tags
}

resource "aws_iam_role_policy" "flow_logs" {
  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs.id
  policy = data.aws_iam_policy_document.flow_logs_write.json
}

resource "aws_flow_log" "this" {
  vpc_id                   = aws_vpc.this.id
  traffic_type             = var.flow_log_traffic_type
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow_logs.arn
  iam_role_arn             = aws_iam_role.flow_logs.arn
  max_aggregation_interval = 60

  tags = merge(var.tags, { Name = var.name })
}
