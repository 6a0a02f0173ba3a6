"""tfdeploy: deploy versioned Terraform to many AWS accounts and Regions from git tags."""

__version__ = "0.1.0"
