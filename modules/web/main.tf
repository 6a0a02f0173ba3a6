data "aws_region" "current" {}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  https      = var.certificate_arn != null

  # The response names the Region the provider targets, as in the reference
  # sample: browsing to each Region's ALB shows which cell answered.
  response_body = "${coalesce(var.service_label, var.name)} is serving from ${local.region}"

  # One bucket holds both ALB access logs (prefix alb/) and WAF logs. WAF only
  # delivers to buckets named aws-waf-logs-*; account and Region make the name
  # globally unique and keep every Region's logs in that Region.
  log_bucket_name = "aws-waf-logs-${var.name}-${local.account_id}-${local.region}"
  log_bucket_arn  = "arn:${local.partition}:s3:::${local.log_bucket_name}"
  alb_log_prefix  = "alb"

  ingress_ports = local.https ? [80, 443] : [80]
  ingress_rules = {
    for pair in setproduct(local.ingress_ports, var.ingress_cidr_blocks) :
    "${pair[0]}-${pair[1]}" => { port = pair[0], cidr = pair[1] }
  }
}

# ---------------------------------------------------------------------------
# Log bucket (SSE-S3: ALB access log delivery cannot write to SSE-KMS buckets)
# ---------------------------------------------------------------------------

data "aws_iam_policy_document" "log_delivery" {
  statement {
    sid       = "AlbAccessLogDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${local.log_bucket_arn}/${local.alb_log_prefix}/AWSLogs/${local.account_id}/*"]

    # The service principal works in every Region, unlike the legacy per-Region
    # ELB account ids, so no Region table is needed.
    principals {
      type        = "Service"
      identifiers = ["logdelivery.elasticloadbalancing.amazonaws.com"]
    }
  }

  statement {
    sid       = "WafLogDeliveryWrite"
    actions   = ["s3:PutObject"]
    resources = ["${local.log_bucket_arn}/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "s3:x-amz-acl"
      values   = ["bucket-owner-full-control"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:*"]
    }
  }

  statement {
    sid       = "WafLogDeliveryAclCheck"
    actions   = ["s3:GetBucketAcl"]
    resources = [local.log_bucket_arn]

    principals {
      type        = "Service"
      identifiers = ["delivery.logs.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:*"]
    }
  }
}

module "log_bucket" {
  source = "../s3-bucket"

  bucket_name                        = local.log_bucket_name
  kms_key_arn                        = null
  policy_documents                   = [data.aws_iam_policy_document.log_delivery.json]
  expiration_days                    = var.log_retention_days
  noncurrent_version_expiration_days = 30

  tags = var.tags
}

# ---------------------------------------------------------------------------
# Load balancer
# ---------------------------------------------------------------------------

resource "aws_security_group" "alb" {
  # A prefix, not a fixed name: with create_before_destroy the replacement must
  # coexist with the old group, and names are unique per VPC.
  name_prefix = "${var.name}-alb-"
  description = "External ALB of ${var.name}: listener ports from the allowed CIDRs, target port to the VPC only"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-alb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "listener" {
  #checkov:skip=CKV_AWS_260:This is an internet-facing ALB; port 80 from anywhere only answers with a redirect to HTTPS when a certificate is configured.
  for_each = local.ingress_rules

  security_group_id = aws_security_group.alb.id
  description       = each.value.port == 443 ? "HTTPS from ${each.value.cidr}" : "HTTP from ${each.value.cidr} (redirected to HTTPS when a certificate is set)"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr

  tags = var.tags
}

resource "aws_vpc_security_group_egress_rule" "targets" {
  security_group_id = aws_security_group.alb.id
  description       = "To targets inside the VPC only"
  ip_protocol       = "tcp"
  from_port         = var.target_port
  to_port           = var.target_port
  cidr_ipv4         = data.aws_vpc.this.cidr_block

  tags = var.tags
}

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_20:HTTP is redirected to HTTPS whenever certificate_arn is set; the plain-HTTP listener exists only with the explicit allow_plaintext_http opt-in, which staging and prod never get.
  name               = var.name
  load_balancer_type = "application"
  internal           = false
  subnets            = var.subnet_ids
  security_groups    = [aws_security_group.alb.id]

  # Requests with malformed header names are dropped rather than forwarded,
  # closing a class of request-smuggling and header-injection tricks.
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection

  access_logs {
    bucket  = module.log_bucket.id
    prefix  = local.alb_log_prefix
    enabled = true
  }

  tags = merge(var.tags, { Name = var.name })

  # The ALB checks it can write to the bucket when logging is enabled.
  depends_on = [module.log_bucket]
}

resource "aws_lb_target_group" "this" {
  name        = "${var.name}-tg"
  vpc_id      = var.vpc_id
  target_type = "ip"
  protocol    = "HTTPS"
  port        = var.target_port

  deregistration_delay = 30

  health_check {
    protocol            = "HTTPS"
    path                = var.health_check_path
    matcher             = "200-399"
    healthy_threshold   = 3
    unhealthy_threshold = 3
    interval            = 15
    timeout             = 5
  }

  tags = var.tags
}

resource "aws_lb_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  # No application is attached yet, so the listener answers itself; workloads
  # add listener rules that forward to the target group.
  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = local.response_body
      status_code  = "200"
    }
  }

  tags = var.tags
}

resource "aws_lb_listener" "http_redirect" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      protocol    = "HTTPS"
      port        = "443"
      status_code = "HTTP_301"
    }
  }

  tags = var.tags
}

resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2:Plain HTTP only without a certificate and with the explicit allow_plaintext_http opt-in (dev/qa); the precondition below refuses it otherwise.
  #checkov:skip=CKV_AWS_103:Same listener: TLS settings do not apply to the opt-in plain-HTTP listener.
  count = local.https ? 0 : 1

  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "fixed-response"

    fixed_response {
      content_type = "text/plain"
      message_body = local.response_body
      status_code  = "200"
    }
  }

  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.allow_plaintext_http
      error_message = "No certificate_arn was given and allow_plaintext_http is false: set a certificate for this Region."
    }
  }
}

# ---------------------------------------------------------------------------
# WAF
# ---------------------------------------------------------------------------

resource "aws_wafv2_web_acl" "this" {
  name        = var.name
  description = "Baseline protection of the ${var.name} ALB"
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  # Rules are written out rather than generated so scanners (and reviewers)
  # see exactly which managed groups are active.

  # Sources on Amazon's threat-intelligence lists, evaluated first.
  rule {
    name     = "AWSManagedRulesAmazonIpReputationList"
    priority = 10

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesAmazonIpReputationList"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-AWSManagedRulesAmazonIpReputationList"
      sampled_requests_enabled   = true
    }
  }

  # Tor exits and anonymising proxies are blocked; cloud-hosted callers
  # (partner integrations run there) are only counted.
  rule {
    name     = "AWSManagedRulesAnonymousIpList"
    priority = 20

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesAnonymousIpList"
        vendor_name = "AWS"

        rule_action_override {
          name = "HostingProviderIPList"

          action_to_use {
            count {}
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-AWSManagedRulesAnonymousIpList"
      sampled_requests_enabled   = true
    }
  }

  # OWASP-style baseline (XSS, LFI, oversized bodies...).
  rule {
    name     = "AWSManagedRulesCommonRuleSet"
    priority = 30

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesCommonRuleSet"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-AWSManagedRulesCommonRuleSet"
      sampled_requests_enabled   = true
    }
  }

  # Known exploit payloads, including Log4j (CVE-2021-44228) lookups.
  rule {
    name     = "AWSManagedRulesKnownBadInputsRuleSet"
    priority = 40

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
        vendor_name = "AWS"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-AWSManagedRulesKnownBadInputsRuleSet"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 50

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit              = var.waf_rate_limit
        aggregate_key_type = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${var.name}-rate-limit-per-ip"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = var.name
    sampled_requests_enabled   = true
  }

  tags = var.tags
}

resource "aws_wafv2_web_acl_association" "this" {
  resource_arn = aws_lb.this.arn
  web_acl_arn  = aws_wafv2_web_acl.this.arn
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  resource_arn            = aws_wafv2_web_acl.this.arn
  log_destination_configs = [module.log_bucket.arn]

  # Credentials and session tokens must not end up in log storage.
  redacted_fields {
    single_header {
      name = "authorization"
    }
  }

  redacted_fields {
    single_header {
      name = "cookie"
    }
  }
}
