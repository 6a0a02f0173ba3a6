output "bucket_name" {
  description = "State bucket (<prefix>-<env>)."
  value       = module.state_bucket.id
}

output "bucket_arn" {
  description = "ARN of the state bucket, for IAM policies of the roles that run Terraform."
  value       = module.state_bucket.arn
}

output "lock_table_name" {
  description = "Lock table (<prefix>-lock-<env>), or null when S3-native locking is used."
  value       = var.create_lock_table ? aws_dynamodb_table.lock[0].name : null
}

output "lock_table_arn" {
  description = "ARN of the lock table, or null when S3-native locking is used."
  value       = var.create_lock_table ? aws_dynamodb_table.lock[0].arn : null
}

output "backend_config" {
  description = "Settings for `terraform init -backend-config=...` (the key is per deployment and added by tfdeploy)."
  value = merge(
    {
      bucket  = module.state_bucket.id
      region  = data.aws_region.current.name
      encrypt = true
    },
    var.kms_key_arn == null ? {} : { kms_key_id = var.kms_key_arn },
    var.create_lock_table ? { dynamodb_table = local.table_name } : { use_lockfile = true },
  )
}
