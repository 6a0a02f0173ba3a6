"""Quality gates: lint (fmt, validate, tflint) and scan (checkov), with one findings model."""
