"""The tag-creation trigger: the pattern itself, and the pattern applied by moto's EventBridge."""

from __future__ import annotations

import json
import time
import uuid

import boto3
import pytest
from tfdeploy.delivery.events import event_pattern, tag_from_event
from tfdeploy.errors import TagError, ValidationError

from tests.delivery.conftest import invoke

EXPECTED_DEV = {
    "source": ["aws.codecommit"],
    "detail-type": ["CodeCommit Repository State Change"],
    "detail": {
        "event": ["referenceCreated"],
        "referenceType": ["tag"],
        "referenceName": [{"prefix": "dev_"}],
    },
}


def codecommit_event(name: str, reference_type: str = "tag", event: str = "referenceCreated") -> dict:
    """A CodeCommit "Repository State Change" event, shaped like the documented examples."""
    prefix = "refs/tags/" if reference_type == "tag" else "refs/heads/"
    detail = {
        "callerUserArn": "arn:aws:iam::123456789012:user/release-bot",
        "commitId": "3e5983e6a1b54cfa2f2d1b0b1b63d2f1d7f8a9b0",
        "event": event,
        "referenceFullName": prefix + name,
        "referenceName": name,
        "referenceType": reference_type,
        "repositoryId": "12345678-1234-5678-abcd-12345678abcd",
        "repositoryName": "infra",
    }
    if event == "referenceDeleted":
        detail["oldCommitId"] = detail.pop("commitId")
    return {"version": "0", "id": str(uuid.uuid4()), "detail-type": "CodeCommit Repository State Change",
            "source": "aws.codecommit", "account": "123456789012", "time": "2026-11-21T10:23:43Z",
            "region": "us-east-1", "resources": ["arn:aws:codecommit:us-east-1:123456789012:infra"],
            "detail": detail}


def test_pattern_is_exactly_the_documented_one():
    assert event_pattern("dev") == EXPECTED_DEV
    assert event_pattern("qa")["detail"]["referenceName"] == [{"prefix": "qa_"}]
    with pytest.raises(ValidationError):
        event_pattern("Dev_")


def test_pattern_command_prints_json():
    result = invoke(["events", "pattern", "--env", "dev"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == EXPECTED_DEV


def test_tag_from_event():
    assert tag_from_event(codecommit_event("dev_us-east-1/research/1.0")) == "dev_us-east-1/research/1.0"
    with pytest.raises(ValidationError, match="only the creation of a tag"):
        tag_from_event(codecommit_event("main", reference_type="branch"))
    with pytest.raises(ValidationError, match="only the creation of a tag"):
        tag_from_event(codecommit_event("dev_us-east-1/research/1.0", event="referenceDeleted"))
    with pytest.raises(TagError, match="event tag: invalid tag"):
        tag_from_event(codecommit_event("dev_mars-1/research/1.0"))
    with pytest.raises(ValidationError, match="no detail object"):
        tag_from_event({"source": "aws.codecommit"})


def test_eventbridge_delivers_only_dev_tag_creations(aws_sandbox):
    """put_rule with the pattern, an SQS queue as target, real-shaped events through moto."""
    events = boto3.client("events", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="dev-pipeline-trigger")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="dev-tag-created", EventPattern=json.dumps(event_pattern("dev")))
    events.put_targets(Rule="dev-tag-created", Targets=[{"Id": "queue", "Arn": arn}])

    sent = [
        codecommit_event("dev_us-east-1/research/1.0"),                          # match
        codecommit_event("main", reference_type="branch"),                        # a branch
        codecommit_event("dev_us-east-1/research/0.9", event="referenceDeleted"),  # a deleted tag
        codecommit_event("dev_us-east-1/research/1.0", event="referenceUpdated"),  # a moved tag
        codecommit_event("qa_us-east-1/research/1.0"),                            # another env
        codecommit_event("dev-x_us-east-1/research/1.0"),                         # dev-... env
        codecommit_event("dev_global/risk/2.0"),                                  # match
    ]
    for event in sent:
        response = events.put_events(Entries=[{
            "Source": event["source"], "DetailType": event["detail-type"],
            "Resources": event["resources"], "Detail": json.dumps(event["detail"]),
        }])
        assert response["FailedEntryCount"] == 0

    received: list[dict] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=1).get("Messages", [])
        received += [json.loads(m["Body"]) for m in messages]
        if not messages and len(received) >= 2:
            break
    names = sorted(tag_from_event(body) for body in received)
    assert names == ["dev_global/risk/2.0", "dev_us-east-1/research/1.0"]
