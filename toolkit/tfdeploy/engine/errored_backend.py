"""Errored states kept in the cell's state bucket, when the local disk cannot keep them.

    _tfdeploy-errored/<cell>/<UTC timestamp>-<id>.tfstate            the state, never overwritten
    _tfdeploy-errored/<cell>/<UTC timestamp>-<id>.tfstate.recovered  written once it was pushed back

Same bucket, encryption and access as the state itself, under a prefix no state key can take
(state keys start with a team name, which starts with a letter). Objects are written with
`If-None-Match: *` and read back before tfdeploy says they are kept; the base the failed apply
started from (engine/errored.py) rides along as object metadata. Nothing here deletes an object:
a recovered state is marked by a second object beside it.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Mapping

from ..errors import TfdeployError

ERRORED_PREFIX = "_tfdeploy-errored/"
RECOVERED_SUFFIX = ".recovered"
_ENCRYPTION = {"ServerSideEncryption": "AES256"}  # as the ledger's objects (fleet/ledger.py)


@dataclass(frozen=True)
class RemoteState:
    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def cell_prefix(cell: str) -> str:
    return f"{ERRORED_PREFIX}{cell}/"


def new_key(cell: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{cell_prefix(cell)}{stamp}-{uuid.uuid4().hex[:12]}.tfstate"


def parse_url(url: str) -> RemoteState | None:
    """`s3://bucket/_tfdeploy-errored/...` -> RemoteState, else None (pure)."""
    if not url.startswith("s3://") or "/" not in url[5:]:
        return None
    bucket, key = url[5:].split("/", 1)
    return RemoteState(bucket, key) if key.startswith(ERRORED_PREFIX) and key.endswith(".tfstate") else None


def _s3(region: str, environ: Mapping[str, str], endpoint: str | None) -> Any:
    from ..aws.clients import client

    return client("s3", region, environ, endpoint)


def put_state(bucket: str, region: str, cell: str, body: bytes, base: Mapping[str, Any] | None,
              environ: Mapping[str, str], endpoint: str | None) -> str:
    """Write a new errored-state object (never over another) and read it back; its s3:// URL."""
    s3 = _s3(region, environ, endpoint)
    key = new_key(cell)
    metadata = {"base": json.dumps(dict(base))} if base is not None else {}
    s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*", ContentType="application/json",
                  Metadata=metadata, **_ENCRYPTION)
    if s3.get_object(Bucket=bucket, Key=key)["Body"].read() != body:
        raise TfdeployError(f"s3://{bucket}/{key} does not read back as written")
    return f"s3://{bucket}/{key}"


def remote_keeper(session: Any) -> Any:
    """The `remote` that engine.errored.rescue uses for this session's cell (its state bucket)."""
    backend = session.deployment.backend

    def keep(body: bytes, base: Mapping[str, Any] | None) -> str:
        return put_state(backend.bucket, backend.region, session.tag.cell, body, base, os.environ,
                         session.sandbox_endpoint)

    return keep


def list_states(bucket: str, region: str, cell: str, environ: Mapping[str, str],
                endpoint: str | None) -> list[RemoteState]:
    """The cell's errored states in the bucket not yet recovered, oldest first."""
    from botocore.exceptions import ClientError

    s3 = _s3(region, environ, endpoint)
    keys: set[str] = set()
    try:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=cell_prefix(cell)):
            keys.update(obj["Key"] for obj in page.get("Contents", []))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
            return []
        raise
    return [RemoteState(bucket, key) for key in sorted(keys)
            if key.endswith(".tfstate") and key + RECOVERED_SUFFIX not in keys]


def read_state(state: RemoteState, region: str, environ: Mapping[str, str],
               endpoint: str | None) -> tuple[bytes, dict[str, Any] | None]:
    """The object's bytes and the base it follows (None when not recorded)."""
    got = _s3(region, environ, endpoint).get_object(Bucket=state.bucket, Key=state.key)
    try:
        raw = json.loads(got.get("Metadata", {}).get("base", ""))
        base = {"lineage": str(raw["lineage"]), "serial": int(raw["serial"])}
    except (ValueError, KeyError, TypeError):
        base = None
    return got["Body"].read(), base


def mark_recovered(state: RemoteState, region: str, environ: Mapping[str, str], endpoint: str | None,
                   pushed_at: str) -> str:
    """Mark a pushed object recovered (a marker beside it; the state object stays)."""
    from botocore.exceptions import ClientError

    key = state.key + RECOVERED_SUFFIX
    try:
        _s3(region, environ, endpoint).put_object(
            Bucket=state.bucket, Key=key, Body=json.dumps({"pushed_at": pushed_at}).encode(),
            IfNoneMatch="*", ContentType="application/json", **_ENCRYPTION)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "412"):
            raise
    return f"s3://{state.bucket}/{key}"
