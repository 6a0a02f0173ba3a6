"""TEST DOUBLE for tflint -- not tflint.

tflint cannot be installed on the test machines (no reachable registry ships it), so the lint
stage's tflint step is exercised against this stand-in. It only imitates tflint's command-line
surface that tfdeploy uses:

  tflint --version                          prints a version line
  tflint --init [--config F]                succeeds (or fails when TFLINT_DOUBLE_INIT_FAIL=1)
  tflint --recursive --format json ...      prints tflint-shaped JSON: the file named by
                                            TFLINT_DOUBLE_OUTPUT, else two canned issues;
                                            exit 2 when there are issues (tflint >= 0.50)

Every call appends {"argv": [...], "cwd": ...} as one JSON line to $TFLINT_DOUBLE_LOG.
It never reads the Terraform it is pointed at, so it proves wiring and parsing, not linting.
"""

from __future__ import annotations

import json
import os
import sys

CANNED = {
    "issues": [
        {
            "rule": {
                "name": "terraform_unused_declarations",
                "severity": "warning",
                "link": "https://github.com/terraform-linters/tflint-ruleset-terraform/blob/v0.10.0/"
                        "docs/rules/terraform_unused_declarations.md",
            },
            "message": 'variable "unused" is declared but not used',
            "range": {"filename": "main.tf", "start": {"line": 3, "column": 1},
                      "end": {"line": 3, "column": 19}},
            "callers": [],
        },
        {
            "rule": {
                "name": "aws_instance_invalid_type",
                "severity": "error",
                "link": "https://github.com/terraform-linters/tflint-ruleset-aws/blob/v0.38.0/"
                        "docs/rules/aws_instance_invalid_type.md",
            },
            "message": '"t1.2xlarge" is an invalid value as instance_type',
            "range": {"filename": "modules/app/main.tf", "start": {"line": 7, "column": 19},
                      "end": {"line": 7, "column": 31}},
            "callers": [],
        },
    ],
    "errors": [],
}


def main(argv: list[str]) -> int:
    log = os.environ.get("TFLINT_DOUBLE_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"argv": argv, "cwd": os.getcwd()}) + "\n")
    if "--version" in argv or "-v" in argv:
        print("TFLint version 0.0.0-test-double")
        return 0
    if "--init" in argv:
        if os.environ.get("TFLINT_DOUBLE_INIT_FAIL") == "1":
            print('Failed to install a plugin; Plugin "aws" not found: could not reach github.com',
                  file=sys.stderr)
            return 1
        print("All plugins are already installed")
        return 0
    output = os.environ.get("TFLINT_DOUBLE_OUTPUT")
    if output:
        with open(output, encoding="utf-8") as handle:
            text = handle.read()
    else:
        text = json.dumps(CANNED)
    print(text)
    try:
        issues = json.loads(text).get("issues")
    except ValueError:
        return 1
    return 2 if issues else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
