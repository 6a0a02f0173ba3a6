# research / staging / ap-southeast-1
# Unique per account and Region so the VPCs can later be peered or attached to a transit gateway.
vpc_cidr = "10.42.0.0/16"

# PLACEHOLDER certificate (ACM, in ap-southeast-1, in the research staging account).
alb_certificate_arn = "arn:aws:acm:ap-southeast-1:133333333333:certificate/0a1b2c3d-0000-4000-8000-000000000003"
