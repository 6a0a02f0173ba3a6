"""Publish a tag to its env's pipeline: a full clone at the tag, zipped into the source bucket.

This is the tag-capture step of the reference pattern. CodePipeline's S3 source action cannot know
which tag started it, so the tag travels with the code: the zip holds a full clone (with `.git`,
so later stages resolve and check the tag from git) plus `tfdeploy-source.json` naming the tag,
its commit and its tagger. The object also carries the tag and commit as S3 metadata, so the
same tag+commit is never uploaded twice in a row.

Then publish starts the env's pipeline itself, pinned to the object version it uploaded and
naming the tag (see pipeline_start.py): every tag of an env shares one object key, so only the
version identifies a tag's upload when several tags are published at once.

Bucket: `<backend_prefix>-source-<env>` (versioned, created with the pipeline), key
`source/<env>/source.zip` (what modules/pipeline's S3 source action reads).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .. import __version__
from ..engine.gitsource import SourceRef, tag_source
from ..errors import ConfigError, TfdeployError, ValidationError
from ..model.settings import Settings
from ..model.tags import Tag, parse_tag
from ..results import write_atomic

METADATA_FILE = "tfdeploy-source.json"
MAX_BUCKET_NAME = 63


def source_bucket_name(settings: Settings, env: str) -> str:
    """`<backend_prefix>-source-<env>` (pure)."""
    name = f"{settings.require_backend_prefix()}-source-{env}"
    if len(name) > MAX_BUCKET_NAME:
        raise ConfigError(f"source bucket name {name!r} is {len(name)} characters (S3 allows "
                          f"{MAX_BUCKET_NAME}); use a shorter backend_prefix or env name")
    return name


def source_key(env: str) -> str:
    return f"source/{env}/source.zip"


@dataclass(frozen=True)
class PublishResult:
    tag: str
    commit: str
    bucket: str
    key: str
    uploaded: bool  # False: the object already held this tag+commit
    version_id: str | None
    size: int  # bytes uploaded (0 when nothing was uploaded)
    pipeline: str | None = None  # the pipeline started (None with start=False)
    execution_id: str | None = None
    release: str = ""  # env/team/version
    tags: tuple[str, ...] = ()  # the release's tags, in wave order (`tag` is the first)
    # claim mode: the tag was claimed already; nothing was published (see delivery/claims.py)
    already_claimed: bool = False
    claimed_by: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)


def source_metadata(info: SourceRef, published_at: datetime,
                    release_tags: tuple[str, ...] = ()) -> dict[str, Any]:
    """The content of tfdeploy-source.json (pure). `tag` is the release's first tag (what the
    execution's TFDEPLOY_TAG names); `tags` lists every cell of the release, in wave order."""
    tags = release_tags or (info.tag,)
    first = parse_tag(tags[0])
    return {
        "tag": info.tag,
        "release": f"{first.env}/{first.team}/{first.version}",
        "tags": list(tags),
        "commit": info.commit,
        "tagger": info.tagger,
        "tagger_email": info.tagger_email,
        "tag_date": info.date,
        "published_at": published_at.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "tfdeploy_version": __version__,
    }


def clone_at_tag(repo_root: Path, info: SourceRef, dest: Path, default_branch: str = "main") -> None:
    """A full clone of `repo_root` checked out (detached) at the tag's commit.

    The clone keeps `origin/<default_branch>`: later stages refuse a tag that is not on it.
    """
    proc = subprocess.run(
        ["git", "-c", "advice.detachedHead=false", "clone", "--quiet", "--branch", info.tag,
         "--", str(repo_root), str(dest)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise TfdeployError(f"git clone of {repo_root} at {info.tag} failed: "
                            f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
    branch_ref = f"refs/remotes/origin/{default_branch}"
    if (_git(dest, "rev-parse", "--verify", "--quiet", branch_ref).returncode != 0
            and _git(repo_root, "rev-parse", "--verify", "--quiet", branch_ref).returncode == 0):
        # The source is itself a clone (CodeBuild's checkout) whose branch is only a remote ref.
        _git(dest, "fetch", "--quiet", "origin", f"+{branch_ref}:{branch_ref}")
    head = _git(dest, "rev-parse", "HEAD").stdout.strip()
    if head != info.commit:
        raise TfdeployError(f"clone of {info.tag} is at {head[:12]}, expected {info.commit[:12]}; "
                            "the tag moved while publishing, try again")


def zip_tree(root: Path, zip_path: Path) -> int:
    """Zip everything under `root` (dot files and `.git` included); return the zip's size.

    Directory entries are written too: git needs its empty directories (`.git/refs/heads`).
    Symlinks are stored as links, never followed, so nothing outside the clone is packed.
    """
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED,
                         strict_timestamps=False) as archive:
        for dirpath, dirnames, filenames in os.walk(root):  # does not descend into linked dirs
            dirnames.sort()
            base = Path(dirpath)
            for name in sorted([*dirnames, *filenames]):
                full = base / name
                rel = full.relative_to(root).as_posix()
                if full.is_symlink():
                    link = zipfile.ZipInfo(rel)
                    link.create_system = 3  # unix: external_attr holds the mode bits
                    link.external_attr = (stat.S_IFLNK | 0o777) << 16
                    archive.writestr(link, os.readlink(full))
                elif full.is_dir():
                    archive.write(full, rel, compress_type=zipfile.ZIP_STORED)
                else:
                    archive.write(full, rel)
    return zip_path.stat().st_size


def sandbox_endpoint(environ: Mapping[str, str]) -> str | None:
    """The local sandbox's endpoint when one is active, else None (real AWS, or AWS_ENDPOINT_URL_*)."""
    try:
        from ..aws.sandbox import active_endpoint  # type: ignore[attr-defined]
    except ImportError:
        active_endpoint = None
    if active_endpoint is not None:
        return active_endpoint(environ)
    return environ.get("TFDEPLOY_SANDBOX_ENDPOINT") or None


def s3_client(region: str, environ: Mapping[str, str]):
    import boto3
    from botocore.config import Config

    endpoint = sandbox_endpoint(environ)
    if endpoint is None:
        # boto3 honours AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL by itself.
        return boto3.client("s3", region_name=region)
    credentials: dict[str, str] = {}
    try:
        from ..aws.sandbox import aws_env  # type: ignore[attr-defined]
    except ImportError:
        aws_env = None
    if aws_env is not None:
        env = aws_env(endpoint, environ)
        credentials = {k: env[v] for k, v in (("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
                                               ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
                                               ("aws_session_token", "AWS_SESSION_TOKEN")) if env.get(v)}
    session = boto3.session.Session(**credentials)
    return session.client("s3", region_name=region, endpoint_url=endpoint,
                          config=Config(s3={"addressing_style": "path"}))


def _aws_error(exc: Exception, what: str) -> TfdeployError:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(exc, NoCredentialsError):
        return TfdeployError(f"{what}: no AWS credentials; configure them (or start the sandbox: "
                             "tfdeploy sandbox up)")
    if isinstance(exc, EndpointConnectionError):
        return TfdeployError(f"{what}: cannot reach {exc.kwargs.get('endpoint_url', 'S3')}; "
                             "check the network or the sandbox endpoint")
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return TfdeployError(f"{what}: {error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": "))
    return TfdeployError(f"{what}: {exc}")


def _check_bucket(s3, bucket: str, env: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise ConfigError(f"env {env!r} has no pipeline: source bucket {bucket} does not exist; "
                              "create the env's pipeline (modules/pipeline) first") from None
        raise _aws_error(exc, f"cannot use source bucket {bucket}") from None
    except BotoCoreError as exc:
        raise _aws_error(exc, f"cannot use source bucket {bucket}") from None
    try:
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    except (ClientError, BotoCoreError) as exc:
        raise _aws_error(exc, f"cannot read versioning of {bucket}") from None
    if status != "Enabled":
        raise ConfigError(f"source bucket {bucket} is not versioned; CodePipeline's S3 source needs "
                          "versioning: enable it on the bucket (modules/pipeline does)")


def _current(s3, bucket: str, key: str) -> dict[str, str] | None:
    """The metadata of the object now at the key (None when there is none)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        head = s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise _aws_error(exc, f"cannot read s3://{bucket}/{key}") from None
    except BotoCoreError as exc:
        raise _aws_error(exc, f"cannot read s3://{bucket}/{key}") from None
    return {**head.get("Metadata", {}), "_version_id": head.get("VersionId") or ""}


def check_pipeline_env(tag: Tag, settings: Settings) -> None:
    if tag.env not in settings.environments:
        raise ConfigError(f"env {tag.env!r} has no pipeline: it is not one of the environments "
                          f"({', '.join(settings.environments)}) in [tool.tfdeploy]")


def release_order(tag_names: Sequence[str], settings: Settings) -> tuple[str, ...]:
    """A release's tags in wave order (model/waves.py): the first is what the execution names."""
    from ..model.waves import group_waves
    from .batch import check_release

    tags = [parse_tag(name, settings.extra_regions) for name in dict.fromkeys(tag_names)]
    check_release(tags)
    return tuple(t.name for wave in group_waves(tags, settings.waves, settings.max_parallel_builds)
                 for t in wave)


def tags_digest(tags: Sequence[str]) -> str:
    """A short digest of a release's tags, kept as object metadata (S3 metadata is small)."""
    import hashlib

    return hashlib.sha256("\n".join(sorted(tags)).encode()).hexdigest()[:16]


def publish(
    tag_name: str | Sequence[str],
    repo_root: Path,
    settings: Settings,
    environ: Mapping[str, str],
    *,
    now: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    progress: Callable[[str], None] = lambda line: None,
    start: bool = True,
    claim_mode: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> PublishResult:
    """Publish a tag, or a release (tags of one env, team and version at one commit), to its env's
    source bucket as ONE bundle (no upload when the same tags at the same commit are already the
    newest version) and, with `start`, start ONE execution of the env's pipeline pinned to it."""
    names = release_order([tag_name] if isinstance(tag_name, str) else list(tag_name), settings)
    tag = parse_tag(names[0], settings.extra_regions)
    check_pipeline_env(tag, settings)
    bucket, key = source_bucket_name(settings, tag.env), source_key(tag.env)
    # Same checks as plan (exists, annotated); the branch check stays with plan, which runs on
    # the published clone (it keeps origin/<default_branch> for that).
    info = tag_source(repo_root, tag.name, skip_branch_check=True)
    for other in names[1:]:
        other_info = tag_source(repo_root, other, skip_branch_check=True)
        if other_info.commit != info.commit:
            raise ValidationError(f"a release is tags of one commit, but {tag.name} is at {info.commit[:12]} "
                                  f"and {other} at {other_info.commit[:12]}; move the tags to one commit "
                                  "or publish them separately")
    if not start and claim_mode:
        raise ValidationError("claiming a pushed tag starts its release's execution; drop --no-start")

    s3 = s3_client(settings.state_region, environ)
    _check_bucket(s3, bucket, tag.env)
    pipeline, codepipeline = None, None
    if start:
        from .pipeline_start import codepipeline_client, pipeline_name

        # Checked before uploading: an upload no execution will ever take is worse than none.
        pipeline = pipeline_name(settings, tag.env)
        codepipeline = codepipeline_client(settings.state_region, environ)
        _check_pipeline(codepipeline, pipeline, tag.env)
    from . import claims

    by = environ.get("CODEBUILD_BUILD_ID") or "tfdeploy publish"
    release = f"{tag.env}/{tag.team}/{tag.version}"
    if claim_mode:
        return _publish_claimed(tag, info, repo_root, settings, environ, s3, bucket, key, release, by,
                                codepipeline, pipeline, now, progress, sleep)
    if start:
        for name in names:  # "deploy this again": a later event for these tags starts nothing more
            claims.claim(s3, bucket, name, info.commit, release, by, force=True)
    return _upload_and_start(names, tag, info, repo_root, settings, s3, bucket, key, release, by,
                             codepipeline, pipeline, start, now, progress)


def _publish_claimed(tag: Tag, info: SourceRef, repo_root: Path, settings: Settings, environ: Mapping[str, str],
                     s3: Any, bucket: str, key: str, release: str, by: str, codepipeline: Any,
                     pipeline: str | None, now: Callable[[], datetime], progress: Callable[[str], None],
                     sleep: Callable[[float], None] | None) -> PublishResult:
    """A pushed tag's event (delivery/claims.py): publish its release once, whichever of the
    release's events arrives first; the others wait for that one and name its execution."""
    from . import claims

    def already(holder: Mapping[str, Any]) -> PublishResult:
        return PublishResult(tag=tag.name, commit=info.commit, bucket=bucket, key=key, uploaded=False,
                             version_id=None, size=0, execution_id=holder.get("execution_id") or None,
                             release=str(holder.get("release", release)), tags=(tag.name,),
                             already_claimed=True, claimed_by=str(holder.get("claimed_by", "")))

    def candidates() -> list[str]:
        return _release_candidates(repo_root, tag, info.commit, settings, exclude=())

    def start_with(names: list[str]) -> PublishResult:
        ordered = release_order(names, settings)
        first = parse_tag(ordered[0], settings.extra_regions)
        return _upload_and_start(ordered, first, tag_source(repo_root, first.name, skip_branch_check=True),
                                 repo_root, settings, s3, bucket, key, release, by, codepipeline, pipeline,
                                 True, now, progress)

    if not claims.gathering(environ):
        # One execution per pushed tag (the stage builds cannot start a release's batch yet).
        mine = claims.claim(s3, bucket, tag.name, info.commit, release, by)
        if not mine.won:
            return already(mine.holder)
        try:
            return start_with([tag.name])
        except BaseException:
            claims.release_claims(s3, bucket, [tag.name], info.commit)
            raise
    outcome = claims.publish_once(s3, bucket, tag.name, info.commit, release, by, candidates, start_with,
                                  claims.settle_seconds(environ), progress=progress,
                                  **({"sleep": sleep} if sleep else {}))
    if isinstance(outcome, dict):
        return already(outcome)
    return outcome


def _upload_and_start(names: tuple[str, ...], tag: Tag, info: SourceRef, repo_root: Path, settings: Settings,
                      s3: Any, bucket: str, key: str, release: str, by: str, codepipeline: Any,
                      pipeline: str | None, start: bool, now: Callable[[], datetime],
                      progress: Callable[[str], None]) -> PublishResult:
    digest = tags_digest(names)
    current = _current(s3, bucket, key)
    if (current and current.get("tag") == tag.name and current.get("commit") == info.commit
            and current.get("tags-digest", tags_digest([tag.name])) == digest):
        result = PublishResult(tag=tag.name, commit=info.commit, bucket=bucket, key=key,
                               uploaded=False, version_id=current["_version_id"] or None, size=0,
                               release=release, tags=names)
        return _claimed(_started(result, codepipeline, pipeline, progress), s3, by) if start else result

    with tempfile.TemporaryDirectory(prefix="tfdeploy-publish-") as tmp:
        clone = Path(tmp) / "src"
        progress(f"cloning {repo_root} at {tag.name} ({info.commit[:12]})")
        clone_at_tag(repo_root, info, clone, settings.default_branch)
        metadata = source_metadata(info, now(), names)
        write_atomic(clone / METADATA_FILE, json.dumps(metadata, indent=2) + "\n")
        # Keep the clone's `git status` clean: the metadata file is not part of the release.
        exclude = clone / ".git" / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with open(exclude, "a", encoding="utf-8") as handle:
            handle.write(f"\n/{METADATA_FILE}\n")
        archive = Path(tmp) / "source.zip"
        size = zip_tree(clone, archive)
        progress(f"uploading {size} bytes to s3://{bucket}/{key}")
        extra: dict[str, Any] = {}
        if settings.kms_key_id:
            extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": settings.kms_key_id}
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            with open(archive, "rb") as body:
                response = s3.put_object(
                    Bucket=bucket, Key=key, Body=body, ContentType="application/zip",
                    Metadata={"tag": tag.name, "commit": info.commit, "tfdeploy-version": __version__,
                              "release": release, "tags-digest": digest, "cells": str(len(names))},
                    **extra,
                )
        except (ClientError, BotoCoreError) as exc:
            raise _aws_error(exc, f"upload to s3://{bucket}/{key} failed") from None
    result = PublishResult(tag=tag.name, commit=info.commit, bucket=bucket, key=key, uploaded=True,
                           version_id=response.get("VersionId"), size=size, release=release, tags=names)
    return _claimed(_started(result, codepipeline, pipeline, progress), s3, by) if start else result


def _claimed(result: PublishResult, s3: Any, by: str) -> PublishResult:
    """Name the execution in the release's claims (an event for one of its tags then says so)."""
    from .claims import record_execution

    if result.execution_id:
        record_execution(s3, result.bucket, result.tags, result.commit, result.release, by, result.execution_id)
    return result


def _release_candidates(repo_root: Path, tag: Tag, commit: str, settings: Settings,
                        exclude: Sequence[str]) -> list[str]:
    """Tags of the same env, team and version at `commit` (fetched afresh when there is a remote:
    the source build's checkout learns of tags pushed during the settle window)."""
    from ..engine.tagindex import list_tags

    if _git(repo_root, "remote", "get-url", "origin").returncode == 0:
        _git(repo_root, "fetch", "--force", "--quiet", "--tags", "origin")
    return sorted(e.name for e in list_tags(repo_root, settings.extra_regions)
                  if e.tag is not None and e.annotated and e.commit == commit and e.name not in exclude
                  and (e.tag.env, e.tag.team, e.tag.version) == (tag.env, tag.team, tag.version))


def _check_pipeline(codepipeline: Any, name: str, env: str) -> None:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        codepipeline.get_pipeline(name=name)
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) == "PipelineNotFoundException":
            raise ConfigError(f"env {env!r} has no pipeline {name}: create it (modules/pipeline), set "
                              "pipeline_name_prefix to the name prefix it was created with, or pass "
                              "--no-start to only upload") from None
        raise _aws_error(exc, f"cannot read pipeline {name}") from None
    except BotoCoreError as exc:
        raise _aws_error(exc, f"cannot read pipeline {name}") from None


def _started(result: PublishResult, codepipeline: Any, pipeline: str | None,
             progress: Callable[[str], None]) -> PublishResult:
    """Start `pipeline` pinned to the result's object version; the result with the execution."""
    from dataclasses import replace

    from .pipeline_start import start_execution, start_request

    assert pipeline is not None
    if not result.version_id:
        raise TfdeployError(f"s3://{result.bucket}/{result.key} has no version id, so no execution "
                            "can be pinned to it; enable versioning on the bucket (modules/pipeline does)")
    progress(f"starting {pipeline} at version {result.version_id} of s3://{result.bucket}/{result.key}")
    execution = start_execution(codepipeline, start_request(pipeline, result.version_id, result.tag),
                                result.tag)
    return replace(result, pipeline=pipeline, execution_id=execution)


def load_event_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValidationError(f"cannot read event file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"event file {path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValidationError(f"event file {path} must hold one JSON object (an EventBridge event)")
    return data
