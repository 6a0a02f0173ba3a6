"""tfdeploy: deploy versioned Terraform to many AWS accounts and Regions from git tags."""

__version__ = "0.1.0"
# The name on PyPI (`pip install tfdeploy-toolkit`): PyPI's `tfdeploy` is an unrelated 2017
# TensorFlow project. The import name and the commands stay `tfdeploy`.
DISTRIBUTION = "tfdeploy-toolkit"
