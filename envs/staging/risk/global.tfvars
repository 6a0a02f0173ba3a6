# risk / staging / global (deployed from the global Region)
# PLACEHOLDER boundary: the organisation's policy capping every workload role.
permissions_boundary_arn = "arn:aws:iam::233333333333:policy/WorkloadPermissionsBoundary"
