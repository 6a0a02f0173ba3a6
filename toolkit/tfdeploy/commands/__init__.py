"""Click commands grouped by capability; `tfdeploy.cli` registers them."""
