"""Running Terraform for one cell: the tagged source, its work dir, generated files, the Terraform process and its stages."""
