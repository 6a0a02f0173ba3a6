"""Notifications (issue 12, item 10): a failed apply publishes to the `notify_topic_arn` SNS topic;
a notification that cannot be sent is one warning line and never changes the command's result.

End to end: real Terraform, moto's SNS delivering to an SQS queue subscribed to the topic.
"""

from __future__ import annotations

import json
import time
from datetime import datetime

import boto3
import pytest
from tfdeploy.errors import ConfigError
from tfdeploy.fleet.notify import EVENTS, build_message, notify, subject_line
from tfdeploy.model.settings import Settings, merge_settings

from tests.e2e.conftest import tag, tfdeploy
from tests.safety.helpers_celllock import CELL, TAG, last_line

FAILING = {"TF_VAR_apply_delay_seconds": "-1"}  # the provisioner runs `sleep -1`, which fails


def _topic_with_queue() -> tuple[str, str]:
    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="tfdeploy-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="tfdeploy-alerts-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    return topic, queue


def _received(queue: str, expected: int, wait_s: float = 5) -> list[dict]:
    """SNS envelopes delivered to the queue (Subject, Message, ...)."""
    sqs = boto3.client("sqs", region_name="us-east-1")
    found: list[dict] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and len(found) <= expected:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
        if len(found) == expected and not messages:
            break
    return found


def test_a_failed_apply_notifies_and_an_unsendable_notification_changes_nothing(repo):
    tag(repo, TAG)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    topic, queue = _topic_with_queue()

    failed = tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve", check=False,
                      env={**FAILING, "TFDEPLOY_NOTIFY_TOPIC_ARN": topic})
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    error = last_line(failed.stderr)
    assert error.startswith("tfdeploy: error: terraform apply failed")
    (envelope,) = _received(queue, 1)
    assert envelope["Subject"] == f"tfdeploy: apply failed: {TAG}"
    message = json.loads(envelope["Message"])
    assert message["event"] == "apply-failed"
    assert (message["tag"], message["cell"], message["result"]) == (TAG, CELL, "failed")
    assert message["error"] == error.removeprefix("tfdeploy: error: ")
    assert message["who"] and message["state"] == "s3://demo-tfstate-dev/research/dev-us-east-1/terraform.tfstate"
    assert abs((datetime.fromisoformat(message["when"]) - datetime.now().astimezone()).total_seconds()) < 120
    assert f"tfdeploy apply --tag {TAG}" in message["log"]

    # A successful apply sends nothing.
    tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve", env={"TFDEPLOY_NOTIFY_TOPIC_ARN": topic})
    assert _received(queue, 0, wait_s=2) == []

    # A topic that cannot be published to: the apply's own error and exit code, one warning line.
    gone = topic + "-deleted"
    again = tfdeploy(repo, "apply", "--tag", TAG, "--auto-approve", check=False,  # it fails planning
                     env={"TF_VAR_apply_delay_seconds": "soon", "TFDEPLOY_NOTIFY_TOPIC_ARN": gone})
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert last_line(again.stderr).startswith("tfdeploy: error: terraform plan failed")  # --auto-approve plans first
    warnings = [line for line in again.stderr.splitlines() if line.startswith("tfdeploy: warning: ")]
    assert len(warnings) == 1 and gone in warnings[0] and "apply-failed" in warnings[0]
    assert _received(queue, 0, wait_s=1) == []


def test_no_topic_no_notification(monkeypatch):
    # No AWS call at all: an unreachable endpoint would make it fail if it tried.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert notify("apply-failed", "subject", {"tag": TAG}, Settings(), {}) is False


def test_message_and_subject_are_complete_and_safe():
    when = datetime(2026, 3, 1, 12, 0, 0).astimezone()
    message = build_message("drift-detected", {"tag": TAG, "cell": CELL, "result": "drifted"},
                            {"CODEBUILD_BUILD_ID": "proj:1234", "CODEBUILD_BUILD_URL": "https://console/x",
                             "CODEBUILD_INITIATOR": "codepipeline/tfdeploy-dev"}, now=when)
    assert message["event"] == "drift-detected" and message["tag"] == TAG and message["result"] == "drifted"
    assert message["when"] == when.isoformat(timespec="seconds")
    assert message["who"] == "codepipeline/tfdeploy-dev"
    assert message["log"] == "CodeBuild build proj:1234: https://console/x"
    assert message["tfdeploy_version"]
    assert build_message("apply-failed", {"who": "me"}, {}, now=when)["who"] == "me"  # the caller's wins
    assert set(EVENTS) == {"apply-failed", "promotion-refused", "drift-detected", "fleet-failed"}
    with pytest.raises(ValueError):
        build_message("apply-succeeded", {}, {})
    # SNS: at most 100 printable ASCII characters, no line breaks.
    subject = subject_line("tfdeploy: apply failed:\n" + "é" * 40 + "x" * 200)
    assert len(subject) <= 100 and subject.isascii() and subject.isprintable()


@pytest.mark.parametrize("value, ok", [
    ("arn:aws:sns:us-east-1:123456789012:tfdeploy-alerts", True),
    ("arn:aws-us-gov:sns:us-gov-west-1:123456789012:alerts.fifo", True),
    ("arn:aws:sns:us-east-1:123456789012:alerts\n", False),
    ("arn:aws:sqs:us-east-1:123456789012:alerts", False),
    ("arn:aws:sns:us-east-1:12345:alerts", False),
    ("tfdeploy-alerts", False),
])
def test_notify_topic_arn_setting_is_an_sns_topic_arn(value, ok):
    if ok:
        assert merge_settings({"notify_topic_arn": value}, {}, {}).notify_topic_arn == value
    else:
        with pytest.raises(ConfigError, match="notify_topic_arn"):
            merge_settings({}, {"TFDEPLOY_NOTIFY_TOPIC_ARN": value}, {})
