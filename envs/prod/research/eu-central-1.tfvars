# research / prod / eu-central-1
# Unique per account and Region so the VPCs can later be peered or attached to a transit gateway.
vpc_cidr = "10.51.0.0/16"

# PLACEHOLDER certificate (ACM, in eu-central-1, in the research prod account).
alb_certificate_arn = "arn:aws:acm:eu-central-1:144444444444:certificate/0a1b2c3d-0000-4000-8000-000000000002"
