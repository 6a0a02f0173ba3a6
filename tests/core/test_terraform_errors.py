"""One-line explanations of Terraform failures (pure)."""

from tfdeploy.engine.terraform import TerraformResult, explain_failure, lock_holder

LOCKED = """
\u2577
\u2502 Error: Error acquiring the state lock
\u2502
\u2502 Error message: operation error DynamoDB: PutItem, ConditionalCheckFailedException
\u2502 Lock Info:
\u2502   ID:        5f1c0a8e-1111-2222-3333-444455556666
\u2502   Path:      acme-dev/research/dev-us-east-1/terraform.tfstate
\u2502   Operation: OperationTypeApply
\u2502   Who:       ci@builder
\u2502   Version:   1.15.5
\u2502   Created:   2026-11-21 22:00:00.1 +0000 UTC
\u2502   Info:
\u2575
"""


def _result(stderr, code=1):
    return TerraformResult(("terraform",), code, "", stderr)


def test_lock_holder_is_parsed():
    assert lock_holder(LOCKED) == {
        "ID": "5f1c0a8e-1111-2222-3333-444455556666",
        "Path": "acme-dev/research/dev-us-east-1/terraform.tfstate",
        "Operation": "OperationTypeApply", "Who": "ci@builder",
        "Created": "2026-11-21 22:00:00.1 +0000 UTC"}
    assert lock_holder("Error: something else") is None


def test_lock_error_names_holder_and_unlock_command():
    line = explain_failure("apply", _result(LOCKED))
    assert "locked by ci@builder" in line and "OperationTypeApply" in line
    assert ("tfdeploy locks, then tfdeploy unlock --tag TAG --lock-id 5f1c0a8e-1111-2222-3333-444455556666"
            in line)
    tagged = explain_failure("apply", _result(LOCKED), tag="dev_us-east-1/research/1.0")
    assert "tfdeploy unlock --tag dev_us-east-1/research/1.0 --lock-id 5f1c0a8e" in tagged
    assert "\n" not in line


def test_first_error_and_a_hint():
    stderr = "\u2577\n\u2502 Error: Failed to query available provider packages\n\u2502\n\u2502 Could not retrieve...\n\u2575\n"
    line = explain_failure("init", _result(stderr))
    assert line.startswith("terraform init failed (exit 1): Failed to query available provider packages; ")
    assert "provider_installation mirror" in line


def test_no_error_line_falls_back_to_the_last_line():
    assert explain_failure("plan", _result("boom\nlast words\n", 3)) == "terraform plan failed (exit 3): last words"
