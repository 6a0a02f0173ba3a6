output "region" {
  description = "Region of the provider, verified equal to expected_region."
  value       = data.aws_region.current.name
}

output "account_id" {
  description = "Account id of the credentials, verified equal to expected_account."
  value       = data.aws_caller_identity.current.account_id
}

output "partition" {
  description = "AWS partition (aws, aws-cn, aws-us-gov) for building ARNs."
  value       = data.aws_partition.current.partition
}
