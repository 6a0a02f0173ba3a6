"""Terraform state locks held in an env's backend, in both lock modes.

DynamoDB mode: an item per held lock in the lock table (`LockID` = `<bucket>/<key>`, `Info` = the
lock's JSON); the `<bucket>/<key>-md5` rows are state digests, not locks. S3 mode: an object
`<key>.tflock` next to the state holding the same JSON. Both are listed whatever the repo's
`lock` setting says, so a lock taken in the other mode is never missed.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..model.backend import bucket_name, lock_table_name, state_region
from ..model.settings import Settings
from ..model.tags import Tag

STATE_SUFFIX = ".tflock"


@dataclass(frozen=True)
class StateLock:
    mode: str  # "dynamodb" or "s3"
    bucket: str
    key: str  # the state object's key
    lock_id: str
    operation: str
    who: str
    created: str
    cell: str | None  # None when no tag of the repo maps to this state key
    tags: tuple[str, ...]
    where: str  # the table or object holding the lock

    def age(self, now: datetime | None = None) -> str:
        started = parse_created(self.created)
        if started is None:
            return "?"
        seconds = int(((now or datetime.now(UTC)) - started).total_seconds())
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "tags": list(self.tags), "age": self.age()}


def parse_created(text: str) -> datetime | None:
    """Terraform's `Created` (`2026-11-21 22:00:00.1234567 +0000 UTC`) -> datetime (pure)."""
    try:
        date, clock = text.split()[:2]
        return datetime.fromisoformat(f"{date}T{clock.split('.')[0]}+00:00")
    except ValueError:
        return None


@dataclass(frozen=True)
class Place:
    bucket: str
    region: str
    table: str


def places(settings: Settings, tags: Iterable[Tag], envs: Iterable[str]) -> tuple[list[Place], dict[str, list[Tag]]]:
    """Buckets/tables to look in and `<bucket>/<key>` -> the tags whose state it is (pure)."""
    dynamo = dataclasses.replace(settings, lock="dynamodb")
    found: dict[tuple[str, str, str], Place] = {}
    owners: dict[str, list[Tag]] = {}
    for tag in tags:
        from ..model.backend import backend_for

        region = tag.region or settings.global_region
        backend = backend_for(tag, settings, region)
        owners.setdefault(f"{backend.bucket}/{backend.key}", []).append(tag)
        place = Place(backend.bucket, backend.region, lock_table_name(dynamo, tag.env, region) or "")
        found[(place.bucket, place.region, place.table)] = place
    if settings.state_layout == "central":
        for env in envs:  # the env's bucket even when no tag of the repo names it yet
            region = settings.state_region
            place = Place(bucket_name(settings, env, region), state_region(settings, region),
                          lock_table_name(dynamo, env, region) or "")
            found[(place.bucket, place.region, place.table)] = place
    return list(found.values()), owners


def _lock(mode: str, bucket: str, key: str, info: Mapping[str, Any], owners: Mapping[str, list[Tag]],
          where: str) -> StateLock:
    tags = owners.get(f"{bucket}/{key}", [])
    return StateLock(mode=mode, bucket=bucket, key=key, lock_id=str(info.get("ID", "")),
                     operation=str(info.get("Operation", "")), who=str(info.get("Who", "")),
                     created=str(info.get("Created", "")), cell=tags[0].cell if tags else None,
                     tags=tuple(sorted(t.name for t in tags)), where=where)


def list_locks(settings: Settings, tags: Iterable[Tag], envs: Iterable[str],
               environ: Mapping[str, str]) -> list[StateLock]:
    """Every state lock held in the backends of these tags and envs."""
    from botocore.exceptions import ClientError

    from ..aws.clients import client
    from ..aws.sandbox import active_endpoint

    endpoint = active_endpoint(environ)
    where, owners = places(settings, tags, envs)
    locks: list[StateLock] = []
    for place in where:
        s3 = client("s3", place.region, environ, endpoint=endpoint)
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=place.bucket)
            for page in pages:
                for obj in page.get("Contents", []):
                    if obj["Key"].endswith(STATE_SUFFIX):
                        body = _lockfile_body(s3, place.bucket, obj["Key"])
                        if body is None:
                            continue
                        key = obj["Key"][: -len(STATE_SUFFIX)]
                        locks.append(_lock("s3", place.bucket, key, _json(body), owners,
                                           f"s3://{place.bucket}/{obj['Key']}"))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchBucket", "404"):
                raise
        if not place.table:
            continue
        dynamodb = client("dynamodb", place.region, environ, endpoint=endpoint)
        try:
            for page in dynamodb.get_paginator("scan").paginate(TableName=place.table):
                for item in page.get("Items", []):
                    lock_id = item.get("LockID", {}).get("S", "")
                    if "Info" not in item or not lock_id.startswith(f"{place.bucket}/"):
                        continue
                    key = lock_id[len(place.bucket) + 1:]
                    locks.append(_lock("dynamodb", place.bucket, key, _json(item["Info"].get("S", "")),
                                       owners, f"DynamoDB table {place.table}"))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
    return merge_modes(locks)


def _lockfile_body(s3: Any, bucket: str, key: str) -> bytes | None:
    """A listed lockfile's body; None when its holder released it after the listing named it
    (a run between its plan and its apply does so), which is a lock no longer held."""
    from botocore.exceptions import ClientError

    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise


def merge_modes(locks: Iterable[StateLock]) -> list[StateLock]:
    """One entry per held lock (pure). The dynamodb mode takes the S3 lockfile too (one writer
    whatever the mode), so one lock shows up in both places with the same ID: it is a dynamodb-mode
    lock held in both."""
    merged: dict[tuple[str, str, str], StateLock] = {}
    for lock in locks:
        key = (lock.bucket, lock.key, lock.lock_id)
        seen = merged.get(key)
        if seen is None:
            merged[key] = lock
        elif seen.mode != lock.mode:
            dynamo, s3 = (seen, lock) if seen.mode == "dynamodb" else (lock, seen)
            merged[key] = dataclasses.replace(dynamo, where=f"{dynamo.where} + {s3.where}")
    return sorted(merged.values(), key=lambda lock: (lock.cell or "", lock.key, lock.mode))


def _json(raw: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def held_lock(bucket: str, key: str, region: str, table: str | None, environ: Mapping[str, str],
              endpoint: str | None) -> dict[str, Any] | None:
    """The lock held on one state object right now, in either mode (the DynamoDB item `LockID` =
    `<bucket>/<key>` with its `Info`, or the `<key>.tflock` object), as Terraform's LockInfo
    (ID, Operation, Who, Created, ...); None when nothing holds it. Read the way `list_locks`
    reads every lock, for one key: what a run names when another run holds its state."""
    from ..aws.clients import client

    try:
        body = client("s3", region, environ, endpoint=endpoint).get_object(
            Bucket=bucket, Key=key + STATE_SUFFIX)["Body"].read()
        info = _json(body)
        if info:
            return info
    except Exception:  # noqa: BLE001 - no lockfile (or unreadable): the table may still hold it
        pass
    if not table:
        return None
    try:
        item = client("dynamodb", region, environ, endpoint=endpoint).get_item(
            TableName=table, Key={"LockID": {"S": f"{bucket}/{key}"}}, ConsistentRead=True).get("Item") or {}
    except Exception:  # noqa: BLE001 - cannot tell: not held as far as we know
        return None
    return _json(item["Info"].get("S", "")) or None if "Info" in item else None
