# risk / prod / global (deployed from the global Region)
# PLACEHOLDER boundary: the organisation's policy capping every workload role.
permissions_boundary_arn = "arn:aws:iam::244444444444:policy/WorkloadPermissionsBoundary"
