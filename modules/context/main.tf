# The provider is generated outside this repository, so a wrong Region or a
# mis-resolved role would otherwise deploy silently into the wrong place. These
# postconditions stop the plan before any resource is touched.

data "aws_region" "current" {
  lifecycle {
    postcondition {
      condition     = self.name == var.expected_region
      error_message = "The provider targets ${self.name} but the deployment is for ${var.expected_region}; check the generated provider configuration."
    }

    postcondition {
      condition     = length(var.allowed_regions) == 0 || contains(var.allowed_regions, self.name)
      error_message = "Region ${self.name} is not in allowed_regions (${join(", ", var.allowed_regions)}) for this team and environment."
    }
  }
}

data "aws_caller_identity" "current" {
  lifecycle {
    postcondition {
      condition     = self.account_id == var.expected_account
      error_message = "Credentials resolve to account ${self.account_id} but the deployment targets ${var.expected_account}; the assumed role is wrong."
    }
  }
}

data "aws_partition" "current" {}
