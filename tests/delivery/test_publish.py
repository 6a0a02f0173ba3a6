"""`tfdeploy publish`: a real repo and annotated tag, a versioned bucket in the moto sandbox."""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pytest
from tfdeploy.delivery.publish import source_bucket_name, source_key, source_metadata
from tfdeploy.engine.gitsource import SourceRef, tag_source
from tfdeploy.model.settings import merge_settings

from tests.conftest import git
from tests.delivery.conftest import PREFIX, TAG, create_pipeline, invoke
from tests.delivery.test_events import codecommit_event

BUCKET = f"{PREFIX}-source-dev"
KEY = "source/dev/source.zip"


def s3():
    return boto3.client("s3", region_name="us-east-1")


def make_bucket(name: str = BUCKET, versioned: bool = True, pipeline: bool = True) -> None:
    """The dev pipeline's source bucket (and the pipeline itself, which publish starts)."""
    s3().create_bucket(Bucket=name)
    if versioned:
        s3().put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if pipeline:
        create_pipeline("dev")


def publish(repo: Path, *args: str):
    return invoke(["publish", *args, "--repo", str(repo)])


def test_names_are_pure():
    settings = merge_settings({"backend_prefix": "acme"}, {}, {})
    assert source_bucket_name(settings, "dev") == "acme-source-dev"
    assert source_key("dev") == "source/dev/source.zip"
    info = SourceRef(TAG, "a" * 40, True, "Test", "test@example.com", "2026-11-21T10:00:00+00:00")
    meta = source_metadata(info, datetime(2026, 11, 21, 11, 0, tzinfo=timezone.utc))
    assert meta == {"tag": TAG, "commit": "a" * 40, "tagger": "Test", "tagger_email": "test@example.com",
                    "tag_date": "2026-11-21T10:00:00+00:00", "published_at": "2026-11-21T11:00:00+00:00",
                    "tfdeploy_version": meta["tfdeploy_version"],
                    # A single tag is a release of one.
                    "release": "dev/research/1.0", "tags": [TAG]}


def test_publish_twice_is_idempotent(infra_repo, aws_sandbox, tmp_path):
    make_bucket()
    commit = git(infra_repo, "rev-parse", f"{TAG}^{{commit}}").strip()

    first = publish(infra_repo, "--tag", TAG)
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f"published {TAG} ({commit[:12]}) to s3://{BUCKET}/{KEY}")
    head = s3().head_object(Bucket=BUCKET, Key=KEY)
    assert head["Metadata"]["tag"] == TAG and head["Metadata"]["commit"] == commit

    second = publish(infra_repo, "--tag", TAG)
    assert second.exit_code == 0
    assert second.stdout.startswith("already published")
    versions = s3().list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"]
    assert len(versions) == 1

    # The zip is a full clone at the tag plus the metadata file.
    body = s3().get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        names = set(archive.namelist())
        meta = json.loads(archive.read("tfdeploy-source.json"))
    assert {"main.tf", ".git/HEAD", "envs/dev/research/variables.tfvars"} <= names
    assert meta["tag"] == TAG and meta["commit"] == commit
    assert meta["tagger"] == "Test" and meta["tagger_email"] == "test@example.com"

    src = tmp_path / "src"
    src.mkdir()
    (tmp_path / "source.zip").write_bytes(body)
    subprocess.run(["unzip", "-q", str(tmp_path / "source.zip"), "-d", str(src)], check=True)
    assert git(src, "rev-parse", "HEAD").strip() == commit
    assert git(src, "rev-parse", f"{TAG}^{{commit}}").strip() == commit
    assert git(src, "rev-parse", "--verify", "refs/remotes/origin/main").strip() == commit
    assert git(src, "status", "--porcelain") == ""  # the metadata file is excluded, not untracked


def test_a_new_commit_under_a_new_tag_is_a_new_version(infra_repo, aws_sandbox):
    make_bucket()
    assert publish(infra_repo, "--tag", TAG).exit_code == 0
    (infra_repo / "README.md").write_text("v1.1\n")
    git(infra_repo, "add", ".")
    git(infra_repo, "commit", "-qm", "next")
    git(infra_repo, "tag", "-a", "dev_us-east-1/research/1.1", "-m", "1.1")
    result = publish(infra_repo, "--tag", "dev_us-east-1/research/1.1", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["uploaded"] is True
    assert len(s3().list_object_versions(Bucket=BUCKET, Prefix=KEY)["Versions"]) == 2


def test_event_file(infra_repo, aws_sandbox, tmp_path):
    make_bucket()
    event = tmp_path / "event.json"
    event.write_text(json.dumps(codecommit_event(TAG)))
    result = publish(infra_repo, "--event-file", str(event))
    assert result.exit_code == 0, result.output
    assert s3().head_object(Bucket=BUCKET, Key=KEY)["Metadata"]["tag"] == TAG

    event.write_text(json.dumps(codecommit_event("main", reference_type="branch")))
    refused = publish(infra_repo, "--event-file", str(event))
    assert refused.exit_code == 2
    assert "only the creation of a tag" in refused.stderr

    both = publish(infra_repo, "--event-file", str(event), "--tag", TAG)
    assert both.exit_code == 2 and "exactly one of --tag" in both.stderr


@pytest.mark.parametrize("tag,message", [
    ("qa_us-east-1/research/1.0", f"env 'qa' has no pipeline: source bucket {PREFIX}-source-qa does not exist"),
    ("prod_us-east-1/research/1.0", "env 'prod' has no pipeline: it is not one of the environments (dev, qa)"),
])
def test_env_without_pipeline_is_one_clean_line(infra_repo, aws_sandbox, tag, message):
    make_bucket()
    git(infra_repo, "tag", "-a", tag, "-m", "release")
    result = publish(infra_repo, "--tag", tag)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfdeploy: error: ") and message in lines[0]


def test_refusals(infra_repo, aws_sandbox):
    make_bucket()
    git(infra_repo, "tag", "dev_us-east-1/research/1.2")  # lightweight
    light = publish(infra_repo, "--tag", "dev_us-east-1/research/1.2")
    assert light.exit_code == 2 and "lightweight tag" in light.stderr

    missing = publish(infra_repo, "--tag", "dev_us-east-1/research/9.9")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr

    s3().delete_bucket(Bucket=BUCKET)
    make_bucket(versioned=False, pipeline=False)
    unversioned = publish(infra_repo, "--tag", TAG)
    assert unversioned.exit_code == 2 and "is not versioned" in unversioned.stderr


def test_tag_source_reads_the_tagger(infra_repo):
    info = tag_source(infra_repo, TAG)
    assert info.annotated and info.tagger == "Test" and info.tagger_email == "test@example.com"
    assert info.commit == git(infra_repo, "rev-parse", "HEAD").strip()


def test_publish_from_a_codebuild_style_checkout(infra_repo, aws_sandbox, tmp_path):
    """CodeBuild's checkout: detached at the tag, the default branch only as origin/main."""
    make_bucket()
    checkout = tmp_path / "codebuild-src"
    subprocess.run(["git", "clone", "-q", str(infra_repo), str(checkout)], check=True)
    git(checkout, "checkout", "-q", "--detach", TAG)
    git(checkout, "branch", "-D", "main")
    assert publish(checkout, "--tag", TAG).exit_code == 0
    body = s3().get_object(Bucket=BUCKET, Key=KEY)["Body"].read()
    (tmp_path / "source.zip").write_bytes(body)
    src = tmp_path / "src"
    subprocess.run(["unzip", "-q", str(tmp_path / "source.zip"), "-d", str(src)], check=True)
    commit = git(infra_repo, "rev-parse", "HEAD").strip()
    assert git(src, "rev-parse", "--verify", "refs/remotes/origin/main").strip() == commit


_DETAIL = {"event": "referenceCreated", "referenceType": "tag", "referenceName": TAG}


@pytest.mark.parametrize("event,message", [
    ({"detail": {}}, "event has no detail.event (the change, e.g. 'referenceCreated')"),
    ({}, "event has no detail object"),
    ({"detail": "x"}, "event has no detail object"),
    ([], "event file "),
    ({"detail": {"event": "referenceCreated"}}, "event has no detail.referenceType ('tag' or 'branch')"),
    ({"detail": {**_DETAIL, "referenceName": None}}, "event has no detail.referenceName (the tag's name)"),
    ({"detail": {k: v for k, v in _DETAIL.items() if k != "referenceName"}},
     "event has no detail.referenceName (the tag's name)"),
    ({"detail": {**_DETAIL, "referenceName": ""}}, "event detail.referenceName is '', not the tag's name"),
    ({"detail": {**_DETAIL, "referenceName": ["a"]}}, "event detail.referenceName is \"['a']\", not the tag's name"),
    ({"detail": {**_DETAIL, "event": 7}}, "event detail.event is '7', not the change"),
    ({"detail": {**_DETAIL, "referenceType": "branch"}}, "event is 'referenceCreated' of a 'branch'; only the creation of a tag"),
    ({"source": "aws.s3", "detail": _DETAIL}, "event is 'aws.s3' / 'None', not a CodeCommit Repository State Change event"),
    ({"detail": {**_DETAIL, "referenceName": "dev_us-east-1/research/v1"}}, "event tag: invalid tag"),
])
def test_every_malformed_event_is_one_line_naming_what_is_missing(infra_repo, tmp_path, event, message):
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    result = publish(infra_repo, "--event-file", str(path))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"tfdeploy: error: {message}"), lines
    assert "None' of a 'None" not in lines[0]
