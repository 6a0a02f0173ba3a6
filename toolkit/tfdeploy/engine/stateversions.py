"""The versions of a cell's state object, and what restoring one of them would change.

The state bucket is versioned (bootstrap turns it on), so every write of a state is kept as an S3
object version. `list_versions` reads them (newest first, delete markers included); the state
documents of the newest `limit` are read to show their serial, lineage and resources.

A restore never touches S3 versions itself: the chosen content is handed to `terraform state push`,
which takes the state lock (both lock modes) and checks lineage and serial like any Terraform write,
and S3 keeps it as one more version. An old version has a lower serial than the current state,
which push rightly refuses, so `restore_document` re-issues it as the current state's successor
(current lineage, serial + 1): only when the lineages match, since another lineage is another state.
The pure parts (summaries, the change list, the document to push) are separate from the S3 I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import TfdeployError, ValidationError
from ..model.backend import BackendConfig
from .errored import StateSummary, summarize_state

DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class StateVersion:
    """One S3 version of the state object (a delete marker has no body)."""

    version_id: str
    last_modified: datetime
    size: int
    current: bool
    delete_marker: bool
    summary: StateSummary | None = None  # None: not read (past the limit) or a delete marker
    unreadable: str | None = None  # why the body is not a Terraform state

    def to_dict(self) -> dict[str, Any]:
        s = self.summary
        return {"version_id": self.version_id, "last_modified": self.last_modified.isoformat(),
                "size": self.size, "current": self.current, "delete_marker": self.delete_marker,
                "serial": s.serial if s else None, "lineage": s.lineage if s else None,
                "resources": len(s.addresses) if s else None, "unreadable": self.unreadable}


def parse_state(body: bytes) -> dict[str, Any]:
    """A state document from an object body; ValueError when it is not one (pure)."""
    data = json.loads(body)
    if not isinstance(data, dict) or "serial" not in data or "lineage" not in data:
        raise ValueError("no serial/lineage")
    return data


def short_lineage(lineage: str | None) -> str:
    return (lineage or "-")[:8]


def describe(version: StateVersion) -> str:
    """One line of `state history` (pure)."""
    when = version.last_modified.strftime("%Y-%m-%d %H:%M:%SZ")
    mark = "current" if version.current else ""
    if version.delete_marker:
        return f"{version.version_id}  {when}  delete marker (the state object was deleted)  {mark}".rstrip()
    s = version.summary
    if version.unreadable:
        body = f"not a Terraform state ({version.unreadable})"
    elif s is None:
        body = "not read (past --limit)"
    else:
        body = f"serial {s.serial}, lineage {short_lineage(s.lineage)}, {len(s.addresses)} resource(s)"
    return f"{version.version_id}  {when}  {version.size:>8} B  {body}  {mark}".rstrip()


def changes(current: StateSummary, restored: StateSummary) -> tuple[list[str], list[str]]:
    """Resource addresses a restore adds back and removes, by address (pure)."""
    return (sorted(set(restored.addresses) - set(current.addresses)),
            sorted(set(current.addresses) - set(restored.addresses)))


def restore_document(old: dict[str, Any], current: dict[str, Any] | None,
                     force: bool) -> tuple[dict[str, Any], bool]:
    """The document to push for a restore, and whether push needs -force (pure).

    Raises TfdeployError for another lineage without `force`."""
    if not current or not current.get("lineage"):
        return old, False  # nothing to follow: Terraform accepts any state over an empty one
    if old.get("lineage") != current["lineage"]:
        if not force:
            raise TfdeployError(
                f"not restored: version has lineage {old.get('lineage')}, the current state "
                f"{current['lineage']}: it is another state, not an earlier one; check with tfdeploy "
                "state history, then pass --force to write it anyway")
        return {**old, "serial": int(current.get("serial") or 0) + 1}, True
    return {**old, "serial": int(current.get("serial") or 0) + 1}, False


class StateObject:
    """The S3 versions of one state object (sandbox-aware client)."""

    def __init__(self, backend: BackendConfig, env: str, environ: Mapping[str, str], endpoint: str | None):
        from ..aws.clients import client

        self.backend = backend
        self.env = env  # for the bootstrap hint
        self.s3 = client("s3", backend.region, environ, endpoint)

    @property
    def url(self) -> str:
        return f"s3://{self.backend.bucket}/{self.backend.key}"

    def _raw_versions(self) -> list[dict[str, Any]]:
        b = self.backend
        found: list[dict[str, Any]] = []
        try:
            pages = self.s3.get_paginator("list_object_versions").paginate(Bucket=b.bucket, Prefix=b.key)
            for page in pages:
                # Prefix also matches <key>.tflock and tfdeploy's lock-mode record: exact key only.
                found += [{**v, "_marker": False} for v in page.get("Versions", []) if v["Key"] == b.key]
                found += [{**m, "_marker": True} for m in page.get("DeleteMarkers", []) if m["Key"] == b.key]
        except Exception as exc:
            raise self._error(exc, "list the versions of") from None
        # S3 lists a key's versions newest first, but versions and delete markers separately.
        return sorted(found, key=lambda v: v["LastModified"], reverse=True)

    def list_versions(self, limit: int = DEFAULT_LIMIT) -> tuple[list[StateVersion], bool]:
        """The newest `limit` versions with their state summaries, and whether there are more."""
        raw = self._raw_versions()
        versions = []
        for item in raw[:limit]:
            summary, unreadable = None, None
            if not item["_marker"]:
                try:
                    summary = summarize_state(parse_state(self.read(item["VersionId"])))
                except ValueError as exc:
                    unreadable = str(exc)[:80]
            versions.append(StateVersion(str(item["VersionId"]), item["LastModified"], int(item.get("Size", 0)),
                                         bool(item.get("IsLatest")), item["_marker"], summary, unreadable))
        return versions, len(raw) > limit

    def read(self, version_id: str) -> bytes:
        try:
            return self.s3.get_object(Bucket=self.backend.bucket, Key=self.backend.key,
                                      VersionId=version_id)["Body"].read()
        except Exception as exc:
            raise self._error(exc, f"read version {version_id} of") from None

    def version(self, version_id: str) -> StateVersion:
        """One version, checked to be a version of this key (not a marker, not another key's)."""
        for item in self._raw_versions():
            if item["VersionId"] == version_id:
                if item["_marker"]:
                    raise ValidationError(f"{version_id} is a delete marker of {self.url}, not a state; "
                                          "pick a version from tfdeploy state history")
                return StateVersion(version_id, item["LastModified"], int(item.get("Size", 0)),
                                    bool(item.get("IsLatest")), False)
        raise ValidationError(f"{version_id} is not a version of {self.url}; pick one from tfdeploy "
                              "state history --tag TAG")

    def _error(self, exc: Exception, what: str) -> TfdeployError:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return TfdeployError(f"state bucket {self.backend.bucket} does not exist; run: tfdeploy "
                                 f"bootstrap --env {self.env}")
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return TfdeployError(f"cannot {what} {self.url}: {reason}")
