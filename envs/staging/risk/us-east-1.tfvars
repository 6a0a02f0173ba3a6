# risk / staging / us-east-1
# Unique per account and Region so the VPCs can later be peered or attached to a transit gateway.
vpc_cidr = "10.140.0.0/16"

# PLACEHOLDER certificate (ACM, in us-east-1, in the risk staging account).
alb_certificate_arn = "arn:aws:acm:us-east-1:233333333333:certificate/0a1b2c3d-0000-4000-8000-000000000001"
