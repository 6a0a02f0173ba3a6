"""What a cell's state object says, before and after a run: the ledger's evidence of what Terraform did.

A run's record must not be decided by how the command ended (a signal, a lost lock, a crash) but
by what Terraform wrote. Terraform bumps the state's `serial` on every write and keeps its
`lineage`, so one GET before Terraform starts and one after tell whether the state changed; the
resources of the cell's namespace (module.regional / module.global) tell what changed. Both reads
cost one GET each; the comparison is pure.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StateMark:
    """The state object at one moment: missing (`exists` False), or its serial, lineage and the
    namespace's resources (address -> digest of its instances)."""

    exists: bool
    serial: int | None = None
    lineage: str | None = None
    resources: Mapping[str, str] = field(default_factory=dict)

    def to_details(self) -> dict[str, Any]:
        """For a record: serial and lineage, and the resources while they are few (a reader then
        counts what a dead run changed; past that, it says the counts are unknown)."""
        details: dict[str, Any] = {"exists": self.exists, "serial": self.serial, "lineage": self.lineage}
        if len(self.resources) <= KEEP_RESOURCES:
            details["resources"] = dict(self.resources)
        return details


MISSING = StateMark(exists=False)
KEEP_RESOURCES = 100  # resources a started record keeps (~60 bytes each)


def _address(resource: Mapping[str, Any]) -> str:
    prefix = f"{resource['module']}." if resource.get("module") else ""
    data = "data." if resource.get("mode") == "data" else ""
    return f"{prefix}{data}{resource.get('type')}.{resource.get('name')}"


def mark_of(document: Mapping[str, Any] | None, namespace: str) -> StateMark:
    """The mark of a parsed state document (pure); `namespace`: the cell's target module."""
    if document is None:
        return MISSING
    resources = {}
    for resource in document.get("resources") or []:
        if not isinstance(resource, Mapping) or resource.get("mode") == "data":
            continue
        module = str(resource.get("module") or "")
        if namespace and module != namespace and not module.startswith(namespace + "."):
            continue
        instances = json.dumps(resource.get("instances") or [], sort_keys=True).encode()
        resources[_address(resource)] = hashlib.sha256(instances).hexdigest()[:16]
    serial = document.get("serial")
    return StateMark(exists=True, serial=int(serial) if isinstance(serial, int) else None,
                     lineage=str(document.get("lineage") or "") or None, resources=resources)


def changed(before: StateMark, after: StateMark) -> bool:
    """Did Terraform write the state between the two marks (pure)?"""
    return (before.exists, before.serial, before.lineage) != (after.exists, after.serial, after.lineage)


def counts(before: StateMark, after: StateMark) -> tuple[int, int, int]:
    """(added, changed, destroyed) resources of the namespace between the two marks (pure)."""
    old, new = before.resources, after.resources
    added = sum(1 for a in new if a not in old)
    destroyed = sum(1 for a in old if a not in new)
    updated = sum(1 for a in new if a in old and new[a] != old[a])
    return added, updated, destroyed


def read_mark(bucket: str, key: str, region: str, namespace: str, environ: Mapping[str, str],
              endpoint: str | None) -> StateMark:
    """One GET of the state object. Raises OSError-free TfdeployError when S3 cannot tell (the
    caller records that it could not), MISSING when there is no state (or no bucket) yet."""
    from ..aws.clients import client
    from ..errors import TfdeployError

    s3 = client("s3", region, environ, endpoint)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except Exception as exc:
        code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "NoSuchBucket", "404"):
            return MISSING
        raise TfdeployError(f"cannot read s3://{bucket}/{key}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    try:
        document = json.loads(body)
    except ValueError:
        raise TfdeployError(f"s3://{bucket}/{key} is not a readable Terraform state") from None
    return mark_of(document if isinstance(document, dict) else None, namespace)
