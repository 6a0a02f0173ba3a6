"""What a user checks in the state bucket, read straight from the (moto) S3 API."""

from __future__ import annotations

import json

import boto3


def s3():
    return boto3.client("s3", region_name="us-east-1")


def all_keys(bucket: str) -> list[str]:
    """Every object in the bucket: states, lock files and tfdeploy's lock-mode records."""
    return sorted(o["Key"] for o in s3().list_objects_v2(Bucket=bucket).get("Contents", []))


def state_keys(bucket: str) -> list[str]:
    """State objects only."""
    return [key for key in all_keys(bucket) if key.endswith(".tfstate")]


def state_of(bucket: str, key: str) -> dict:
    return json.loads(s3().get_object(Bucket=bucket, Key=key)["Body"].read())
