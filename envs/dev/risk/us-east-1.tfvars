# risk / dev / us-east-1
# Unique per account and Region so the VPCs can later be peered or attached to a transit gateway.
vpc_cidr = "10.120.0.0/16"
