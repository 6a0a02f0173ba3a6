output "id" {
  description = "Name of the bucket."
  value       = aws_s3_bucket.this.id
}

output "arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn
}

output "sse_algorithm" {
  description = "Default encryption in force: aws:kms or AES256."
  value       = var.kms_key_arn == null ? "AES256" : "aws:kms"
}
