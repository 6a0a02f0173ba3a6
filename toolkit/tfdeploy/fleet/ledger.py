"""The deployment ledger: one record per apply, destroy or drift check of a cell, kept beside its state.

Storage: append-only JSON objects in the cell's own state bucket (same bucket, encryption and
access as the state), under a prefix no state key can take (state keys start with a team name,
and a team name starts with a letter, never `_`):

    _tfdeploy-ledger/<cell>/<finished_at compact>-<id>.json   one per record, never overwritten
    _tfdeploy-ledger/_latest/<cell>.json                      the newest records, for `status`

A record object is written with `If-None-Match: *`, so it is never overwritten (and writing the
same record twice, when a kept one is flushed, is a no-op). The summary is rewritten with a
conditional write on its ETag and retried on conflict, so two runs appending at once both land.

Every summary sits under one prefix of its own so that `status` learns every summary's ETag from
one listing page per 1,000 cells, and GETs only the summaries whose ETag differs from the copy it
kept in `.tfdeploy/ledger-cache/<bucket>.json`. The cache is only ever a copy of an object S3
still lists with that same ETag, so a record written a moment ago elsewhere is always seen.
Earlier versions kept the summary at `_tfdeploy-ledger/<cell>/_latest.json`: read when a cell has
no summary at the new place, and folded into the new summary by every write (never deleted).

Pure parts (keys, merging, cell names) are separate from the S3 calls below them.
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from ..aws.clients import access_hint
from ..errors import TfdeployError, ValidationError
from ..model.backend import backend_for, bucket_name
from ..model.regions import KNOWN_REGIONS
from ..model.settings import Settings
from ..model.tags import ENV_RE, GLOBAL, TEAM_RE, Tag, parse_tag
from . import ledgercache
from .ledgersnapshot import READ_AFTER_MISSES, WRITE_AFTER_GETS, Snapshot, usable

LEDGER_PREFIX = "_tfdeploy-ledger/"
SUMMARY_PREFIX = f"{LEDGER_PREFIX}_latest/"  # no cell starts with `_`: an env name starts with a letter
SUMMARY_NAME = "_latest.json"  # the summary's name inside a cell's folder, before SUMMARY_PREFIX
SUMMARY_KEEP = 20  # records kept in a cell's summary (plus the last success and drift, see below)
OUTBOX_DIR = "ledger-outbox"
ACTIONS = ("apply", "destroy", "drift")
# started: written before Terraform starts (its final record follows, or a reader reconciles it,
# fleet/reconcile.py); interrupted: stopped by a signal or a crash, the state says what changed;
# refused: nothing was changed (e.g. another run holds the state lock). Only `succeeded` is
# evidence that a change ran (promotion, rollback, status).
RESULTS = ("succeeded", "failed", "drifted", "in-sync", "started", "interrupted", "refused")
_CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_SUMMARY_ATTEMPTS = 12
READ_THREADS = 32  # S3 answers a GET in ~20-50 ms: more threads hide that latency
SANDBOX_READ_THREADS = 16  # the local moto answers at once: past 16, threads only fight over the GIL


class LedgerError(TfdeployError):
    """The ledger could not be read or written."""


class NoBucket(LedgerError):
    """The bucket a record goes to does not exist (yet): nothing can have been deployed there."""


def new_id() -> str:
    return uuid.uuid4().hex[:12]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Record:
    tag: str
    commit: str
    cell: str
    env: str
    team: str
    scope: str  # a Region code or "global"
    version: str
    action: str  # "apply" | "destroy" | "drift"
    result: str  # one of RESULTS
    add: int
    change: int
    destroy: int
    caller: str  # STS GetCallerIdentity ARN ("" when unknown)
    started_at: str  # ISO 8601 UTC
    finished_at: str
    plan_sha256: str
    tfdeploy_version: str
    build_id: str  # CodeBuild build id or ""
    override: str = ""  # promotion-check override reason, "" when none
    details: dict = field(default_factory=dict)  # e.g. the error line, drifted addresses
    id: str = field(default_factory=new_id)  # unique: makes writing a record idempotent
    # Set when `ledger_signing_key` is set (fleet/signing.py): the key's ARN, the algorithm, and the
    # base64 signature over every other field.
    signing_key: str = ""
    signature_alg: str = ""
    signature: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        """Tolerant of fields added by newer versions (ignored) and missing optional ones."""
        known = _record_fields()
        if len(data) == len(known) and known.issuperset(data):
            # Exactly this version's fields (every record read back from S3 or a cache): set them
            # as `__init__` would, without its 23 frozen `__setattr__`s. `status` builds 100,000.
            record = object.__new__(cls)
            record.__dict__.update(data)
            return record
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def order(self) -> tuple[str, str]:
        return (self.finished_at, self.id)


def _record_fields() -> frozenset[str]:
    # Computed once: `status` builds ten thousand records and `fields()` is not free.
    global _FIELDS
    if _FIELDS is None:
        _FIELDS = frozenset(f.name for f in fields(Record))
    return _FIELDS


_FIELDS: frozenset[str] | None = None


def record_for(tag: Tag, **values: Any) -> Record:
    """A record for `tag` (pure): the tag's parts filled in, the rest from `values`."""
    return Record(tag=tag.name, cell=tag.cell, env=tag.env, team=tag.team, scope=tag.scope_name,
                  version=tag.version, **values)


# --- where records live (pure) ------------------------------------------------------------------

@dataclass(frozen=True)
class Place:
    """A state bucket and the Region its client talks to."""

    bucket: str
    region: str


def place_for(tag: Tag, settings: Settings) -> Place:
    """The bucket holding the cell's state, hence its records."""
    backend = backend_for(tag, settings, tag.region or settings.global_region)
    return Place(backend.bucket, backend.region)


def cell_prefix(cell: str) -> str:
    return f"{LEDGER_PREFIX}{cell}/"


def record_key(record: Record) -> str:
    """`_tfdeploy-ledger/<cell>/<finished_at>-<id>.json`; names sort oldest first."""
    stamp = "".join(ch for ch in record.finished_at if ch.isalnum() or ch == ".")
    return f"{cell_prefix(record.cell)}{stamp}-{record.id}.json"


def summary_key(cell: str) -> str:
    """`_tfdeploy-ledger/_latest/<cell>.json`: every summary under one prefix, listed in pages of 1,000."""
    return f"{SUMMARY_PREFIX}{cell}.json"


def legacy_summary_key(cell: str) -> str:
    """Where earlier versions kept the summary: `_tfdeploy-ledger/<cell>/_latest.json`."""
    return f"{cell_prefix(cell)}{SUMMARY_NAME}"


def summary_cell(key: str) -> str | None:
    """The cell whose summary `key` is (pure), or None for any other key."""
    if not key.startswith(SUMMARY_PREFIX) or not key.endswith(".json"):
        return None
    cell = key[len(SUMMARY_PREFIX):-len(".json")]
    return cell if cell and "/" not in cell else None


def parse_summary(body: bytes | str, cell: str) -> list[Record]:
    """The records of `cell`'s summary (pure); ValueError when it is not one."""
    try:
        data = json.loads(body)
        if data.get("cell") != cell:
            raise ValueError(f"not the summary of {cell}")
        records = [Record.from_dict(r) for r in data["records"]]
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a ledger summary: {exc}") from None
    if any(r.cell != cell for r in records):
        raise ValueError(f"a record of another cell in the summary of {cell}")
    return records


def newest_first(records: Iterable[Record]) -> list[Record]:
    return sorted(records, key=lambda r: r.order, reverse=True)


def merge_summary(existing: Iterable[Record], record: Record, keep: int = SUMMARY_KEEP) -> list[Record]:
    """The summary after adding `record` (pure): the newest `keep` records, plus — however many
    failures came after them — the newest successful apply/destroy and the newest drift check, so
    `status` can always say what is deployed and whether it drifted."""
    by_id = {r.id: r for r in existing}
    by_id[record.id] = record
    ordered = newest_first(by_id.values())
    kept = ordered[:keep]
    for wanted in (lambda r: r.action in ("apply", "destroy") and r.result == "succeeded",
                   lambda r: r.action == "drift" and r.result in ("drifted", "in-sync")):
        pinned = next((r for r in ordered if wanted(r)), None)
        if pinned is not None and pinned not in kept:
            kept.append(pinned)
    return newest_first(kept)


def parse_cell(cell: str, environments: Iterable[str],
               extra_regions: frozenset[str] = frozenset()) -> tuple[str, str, str]:
    """`dev-us-east-1-research` -> ("dev", "us-east-1", "research") (pure).

    Env and team names may hold `-`, so the env is one of the configured ones and the scope a
    known Region code (or `global`)."""
    scopes = _scopes_longest_first(frozenset(extra_regions))
    for env in sorted(environments, key=len, reverse=True):
        if not cell.startswith(env + "-"):
            continue
        rest = cell[len(env) + 1:]
        for scope in scopes:
            team = rest[len(scope) + 1:]
            if rest.startswith(scope + "-") and TEAM_RE.fullmatch(team) and ENV_RE.fullmatch(env):
                return env, scope, team
    raise ValidationError(f"{cell!r} is not a cell of this repo (<env>-<region|global>-<team> with env one "
                      f"of {', '.join(environments)}); tfdeploy status lists the cells")


@functools.lru_cache(maxsize=8)
def _scopes_longest_first(extra_regions: frozenset[str]) -> tuple[str, ...]:
    # Once per set of Regions, not once per cell: `status` parses the name of every cell it lists.
    return tuple(sorted({GLOBAL, *KNOWN_REGIONS, *extra_regions}, key=len, reverse=True))


def env_places(settings: Settings, env: str, existing_buckets: set[str] | None = None) -> list[Place]:
    """The buckets an env's records can be in (pure): one (central), or one per Region whose
    bucket exists (regional; `existing_buckets` from one ListBuckets)."""
    if settings.state_layout == "central":
        return [Place(bucket_name(settings, env, settings.state_region), settings.state_region)]
    found = []
    for region in sorted(KNOWN_REGIONS | settings.extra_regions):
        name = bucket_name(settings, env, region)
        if existing_buckets is None or name in existing_buckets:
            found.append(Place(name, region))
    return found


# --- S3 ------------------------------------------------------------------------------------------

def _s3(region: str, environ: Mapping[str, str], pool: int | None = None, keys_only: bool = False) -> Any:
    from ..aws.clients import client
    from ..aws.sandbox import active_endpoint

    return client("s3", region, environ, active_endpoint(environ), max_pool_connections=pool, keys_only=keys_only)


def read_threads(environ: Mapping[str, str]) -> int:
    """How many summaries or records to read at once: against AWS, enough to hide its latency;
    against the local sandbox, fewer (it answers at once, and threads share one GIL)."""
    from ..aws.sandbox import active_endpoint

    return SANDBOX_READ_THREADS if active_endpoint(environ) else READ_THREADS


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


# What the state's backend (`encrypt = true`) asks for, so records are protected alike.
ENCRYPTION = {"ServerSideEncryption": "AES256"}


def write_record(record: Record, place: Place, environ: Mapping[str, str], s3: Any = None,
                 sleep: Callable[[float], None] = time.sleep,
                 read: Callable[[], tuple[list[Record], str | None]] | None = None) -> str:
    """Write the record object, then fold it into the cell's summary; its s3:// address.

    The summary is read while the record object is written (one round trip instead of two, which
    on AWS is tens of ms per cell), or before, by `read` (`prepare`); it is written only once the
    record object is in, and only over the version that was read.
    Idempotent: a record already written (a kept one flushed twice) is not written again."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = s3 or _s3(place.region, environ)
    key = record_key(record)
    body = record_body(record)

    def put_record() -> None:
        try:
            s3.put_object(Bucket=place.bucket, Key=key, Body=body, IfNoneMatch="*",
                          ContentType="application/json", **ENCRYPTION)
        except ClientError as exc:
            if _code(exc) not in _CONFLICT_CODES:  # 412: written before, by an earlier attempt
                raise

    try:
        first = _ready(read)
        if first is None:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tfdeploy-ledger") as pool:
                first_read = pool.submit(_read_summary, s3, place, record.cell, record)
                put_record()
                first = first_read.result()
        else:
            put_record()
        _update_summary(s3, place, record, sleep, first)
    except (BotoCoreError, ClientError) as exc:
        kind = NoBucket if _code(exc) == "NoSuchBucket" else LedgerError
        raise kind(f"cannot write to s3://{place.bucket}/{cell_prefix(record.cell)}: {exc}") from None
    return f"s3://{place.bucket}/{key}"


def _ready(read: Callable[[], tuple[list[Record], str | None]] | None) -> tuple[list[Record], str | None] | None:
    """What an earlier read found, or None to read now (none was made, or it failed: reading
    again either succeeds or reports why, through the writer's own error handling)."""
    if read is None:
        return None
    try:
        return read()
    except Exception:  # noqa: BLE001 - read again, in the writer's own error handling
        return None


def _get(s3: Any, place: Place, key: str) -> tuple[bytes, str] | None:
    """An object's content and ETag; None when there is no such object."""
    from botocore.exceptions import ClientError

    try:
        got = s3.get_object(Bucket=place.bucket, Key=key)
    except ClientError as exc:
        if _code(exc) in ("NoSuchKey", "404"):
            return None
        raise
    return got["Body"].read(), got["ETag"]


def _legacy_records(s3: Any, place: Place, cell: str) -> list[Record] | None:
    """The records of the summary an earlier version kept, or None (none, unreadable, damaged):
    only ever read, and never needed for completeness, as the record objects are the truth."""
    from botocore.exceptions import ClientError

    try:
        got = _get(s3, place, legacy_summary_key(cell))
        return None if got is None else parse_summary(got[0], cell)
    except (ClientError, ValueError):
        return None


def _read_summary(s3: Any, place: Place, cell: str, written: Record | None = None) -> tuple[list[Record], str | None]:
    """For a writer: the summary's records (with any an earlier version's summary holds) and its
    ETag (None when it does not exist yet). `written`: the record this writer writes (a rebuild
    from the record objects need not read it back).

    A missing or damaged summary is rebuilt from the old one or the cell's record objects. One
    that cannot be read (e.g. archived by a lifecycle rule) stops a writer: it must not replace
    what it could not read. The old summary is read at the same time as the new one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tfdeploy-ledger") as pool:
        old = pool.submit(_legacy_records, s3, place, cell)
        got = _get(s3, place, summary_key(cell))
        legacy = old.result() or []
    if got is None:
        return (legacy or newest_first(_read_records(s3, place, cell, written))), None
    body, etag = got
    try:
        records = parse_summary(body, cell)
    except ValueError:
        records = newest_first(_read_records(s3, place, cell, written))
    return records + legacy, etag


def _read_for_status(s3: Any, place: Place, cell: str, listed: bool) -> tuple[list[Record], tuple[bytes, str] | None]:
    """For a reader: the cell's newest records and, when they came whole from the summary at
    its place, that summary's content and ETag (what the cache may keep). A summary that is
    missing, damaged or unreadable is replaced by the old one or the record objects."""
    from botocore.exceptions import ClientError

    if listed:
        try:
            got = _get(s3, place, summary_key(cell))
        except ClientError:
            got = None  # e.g. archived: the records still tell
        if got is not None:
            try:
                return parse_summary(got[0], cell), got
            except ValueError:
                return newest_first(_read_records(s3, place, cell)), None
    legacy = _legacy_records(s3, place, cell)
    return (legacy if legacy is not None else newest_first(_read_records(s3, place, cell))), None


def summary_body(cell: str, records: Iterable[Record], updated_at: str) -> bytes:
    """The summary object's content (pure)."""
    return json.dumps({"cell": cell, "updated_at": updated_at, "records": [r.to_dict() for r in records]},
                      sort_keys=True).encode()


def record_body(record: Record) -> bytes:
    """A record object's content (pure)."""
    return json.dumps(record.to_dict(), sort_keys=True).encode()


def _update_summary(s3: Any, place: Place, record: Record, sleep: Callable[[float], None],
                    read: tuple[list[Record], str | None] | None = None) -> None:
    """Fold `record` into the summary with a write conditional on the ETag read (`read`: the
    first read, already made)."""
    from botocore.exceptions import ClientError

    for attempt in range(_SUMMARY_ATTEMPTS):
        records, etag = read if read is not None else _read_summary(s3, place, record.cell, record)
        read = None
        body = summary_body(record.cell, merge_summary(records, record), now_iso())
        condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
        try:
            s3.put_object(Bucket=place.bucket, Key=summary_key(record.cell), Body=body,
                          ContentType="application/json", **condition, **ENCRYPTION)
            return
        except ClientError as exc:
            if _code(exc) not in _CONFLICT_CODES:
                raise
        # Another run rewrote it between our read and write: read again, with jittered backoff.
        sleep(random.uniform(0.02, 0.05) * 2 ** min(attempt, 5))
    raise LedgerError(f"the ledger summary s3://{place.bucket}/{summary_key(record.cell)} kept changing "
                      f"under {_SUMMARY_ATTEMPTS} attempts; the record itself was written")


def _read_records(s3: Any, place: Place, cell: str, known: Record | None = None) -> list[Record]:
    """Every record object of the cell (`known`: one already in hand, not read again)."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=place.bucket, Prefix=cell_prefix(cell)):
        # Not the summary an earlier version kept in the same folder.
        keys += [o["Key"] for o in page.get("Contents", []) if not o["Key"].endswith("/" + SUMMARY_NAME)]

    def get(key: str) -> Record | None:
        try:
            return Record.from_dict(json.loads(s3.get_object(Bucket=place.bucket, Key=key)["Body"].read()))
        except (ValueError, TypeError):  # not a record: ignored rather than breaking the history
            return None

    mine = record_key(known) if known is not None else None
    have = [known] if mine in keys else []
    keys = [key for key in keys if key != mine]
    # As many threads as the client has connections (more would only wait for one).
    threads = getattr(s3.meta.config, "max_pool_connections", None) or 10
    with ThreadPoolExecutor(max_workers=min(threads, max(1, len(keys)))) as pool:
        return have + [r for r in pool.map(get, keys) if r is not None]


def append(record: Record, settings: Settings, environ: Mapping[str, str]) -> str:
    """Append `record` to its cell's ledger, signed when `settings` name a signing key; where it
    was written (s3://...). Raises LedgerError (or SigningError)."""
    from .signing import key_region, sign

    place = place_for(parse_tag(record.tag, settings.extra_regions), settings)
    key = settings.ledger_signing_key
    if key and not record.signature:
        record = sign(record, key, key_region(key, settings.state_region), environ)
    return write_record(record, place, environ)


def history(cell: str, env: str, settings: Settings, environ: Mapping[str, str]) -> list[Record]:
    """Every record of the cell, newest first (reads each record object: one cell's history)."""
    from botocore.exceptions import BotoCoreError, ClientError

    _env, scope, team = parse_cell(cell, [env], settings.extra_regions)
    tag = Tag(name=f"{env}_{scope}/{team}/0", env=env, region=None if scope == GLOBAL else scope,
              team=team, version="0")
    place = place_for(tag, settings)
    try:
        return newest_first(_read_records(_s3(place.region, environ, read_threads(environ)), place, cell))
    except (BotoCoreError, ClientError) as exc:
        raise LedgerError(f"cannot read the ledger in s3://{place.bucket}/{cell_prefix(cell)}: {exc}"
                          f"{access_hint(exc)}") from None


def latest(settings: Settings, environ: Mapping[str, str], envs: Iterable[str],
           teams: Iterable[str] | None = None, *, cache_dir: Path | None = None,
           heads: bool = False) -> dict[str, list[Record]]:
    """cell -> its newest records (newest first), from the summaries.

    `heads` (`status`): a cell served from the local cache may come as a Head, its newest records
    only, enough for its row unless one of them is not trusted (fleet/status.py `complete`).

    Per bucket: one listing of the summaries (with their ETags) and one of the cells' folders,
    a page per 1,000 cells each, then a GET per summary whose ETag differs from the copy kept in
    `cache_dir/ledger-cache/` (without `cache_dir`: a GET per summary). Requests grow with the
    cells, never with the records; a warm read of an unchanged fleet is the listings alone.
    A bucket that does not exist yet holds no records."""
    from botocore.exceptions import BotoCoreError, ClientError

    envs = list(envs)
    wanted_teams = set(teams) if teams is not None else None
    clients: dict[str, Any] = {}
    threads = read_threads(environ)

    def s3_for(region: str) -> Any:  # one client per Region, shared by the reading threads
        if region not in clients:
            clients[region] = _s3(region, environ, threads)
        return clients[region]

    try:
        existing = None
        if settings.state_layout == "regional":
            existing = {b["Name"] for b in s3_for(settings.state_region).list_buckets().get("Buckets", [])}
        places = [(env, place) for env in envs for place in env_places(settings, env, existing)]
        # The listings go through clients that parse only keys and ETags (aws/s3keys.py).
        listers = {region: _s3(region, environ, threads, keys_only=True) for region in {p.region for _e, p in places}}
        for _env, place in places:
            s3_for(place.region)
        snapshots: dict[str, Snapshot] = {}
        with ThreadPoolExecutor(max_workers=threads) as pool:
            # Both listings of every bucket at once: each is a round trip (a page per 1,000 cells).
            listing = [pool.submit(_list_summaries, listers[p.region], p) for _env, p in places]
            listing_folders = [pool.submit(_list_cells, listers[p.region], p) for _env, p in places]
            summaries = [f.result() for f in listing]
            folders = [f.result() for f in listing_folders]

            found: dict[str, list[Record]] = {}
            for (env, place), listed, cells in zip(places, summaries, folders):
                wanted = []
                for cell in sorted(set(listed) | set(cells)):
                    try:
                        _e, _scope, team = parse_cell(cell, [env], settings.extra_regions)
                    except ValidationError:
                        continue  # another env's cell in a shared bucket, or not a cell
                    if wanted_teams is None or team in wanted_teams:
                        wanted.append(cell)
                snapshot = snapshots.setdefault(place.bucket, Snapshot(clients[place.region], place.bucket))
                found.update(_read_place(pool, clients[place.region], place, wanted, listed, cache_dir, snapshot,
                                          heads))
        return {cell: records for cell, records in found.items() if records}
    except (BotoCoreError, ClientError) as exc:
        raise LedgerError(f"cannot read the ledger: {exc}{access_hint(exc)}") from None


def _read_place(pool: ThreadPoolExecutor, s3: Any, place: Place, cells: list[str], listed: Mapping[str, str],
                cache_dir: Path | None, snapshot: Snapshot | None = None, heads: bool = False) -> dict[str, list[Record]]:
    """The newest records of `cells` in one bucket: from the local cache where the listed ETag
    matches, else from the bucket's shared snapshot where the listed ETag is the MD5 of its copy
    (fleet/ledgersnapshot.py), else read (in parallel). The cache then keeps what S3 lists now;
    the snapshot is rewritten when many GETs were needed. `heads`: a cell served from the cache
    may come as its Head (see `latest`)."""
    kept = ledgercache.load(cache_dir, place.bucket) if cache_dir is not None else {}
    bodies = ledgercache.Bodies(cache_dir, place.bucket)
    found: dict[str, list[Record]] = {}
    misses = []
    for cell in cells:
        entry = kept.get(cell)
        if entry is not None and cell in listed and entry["etag"] == listed[cell]:
            try:
                found[cell] = _cached(entry, cell, heads, lambda c=cell, e=entry: _whole(s3, place, c, e, bodies))
                continue
            except ValueError:
                pass
        misses.append(cell)

    fresh: dict[str, dict[str, Any]] = {}
    fresh_bodies: dict[str, str] = {}
    listed_keys = {summary_key(cell): etag for cell, etag in listed.items()}
    shared: dict[str, str] = {}
    if snapshot is not None and sum(cell in listed for cell in misses) >= READ_AFTER_MISSES:
        shared = usable(snapshot.entries(), listed_keys)
    gets = []
    for cell in misses:
        body = shared.get(summary_key(cell))
        if body is not None:
            try:
                found[cell] = parse_summary(body, cell)
                fresh[cell] = ledgercache.make_entry(body, listed[cell], newest_first(found[cell]))
                fresh_bodies[cell] = body
                continue
            except ValueError:
                pass
        gets.append(cell)

    for cell, (records, got) in zip(gets, pool.map(
            lambda c: _read_for_status(s3, place, c, c in listed), gets)):
        found[cell] = records
        if got is not None:
            body, etag = got
            try:
                fresh_bodies[cell] = body.decode("utf-8")
                fresh[cell] = ledgercache.make_entry(fresh_bodies[cell], etag, newest_first(records))
            except UnicodeDecodeError:
                pass
    # What S3 lists now, with the same ETag: entries of other teams stay, deleted cells go.
    entries = {c: e for c, e in kept.items() if listed.get(c) == e["etag"]} | fresh
    if cache_dir is not None and entries != kept:
        # The contents file is rewritten only when a content is new (a dropped entry's stays unread).
        ledgercache.save(cache_dir, place.bucket, entries, (bodies.all() | fresh_bodies) if fresh else None)
    if snapshot is not None and len(gets) >= WRITE_AFTER_GETS:
        # Everything this reader knows S3 lists now (other teams' entries of the old snapshot too).
        known = usable(snapshot.entries(), listed_keys) | {summary_key(c): b for c, b in bodies.all().items()
                                                          if c in entries} | {
            summary_key(c): b for c, b in fresh_bodies.items()}
        snapshot.write(usable(known, listed_keys), now_iso())
    return found


class Head(list):
    """The newest records of a cell that decide its status row when they are trusted (the rest
    of its summary not parsed): `kinds` says what the rest holds ("change", "drift"), `whole()`
    reads every record. fleet/status.py `complete` decides whether a row needs them."""

    def __init__(self, records: Iterable[Record], kinds: Iterable[str], whole: Callable[[], list[Record]]):
        super().__init__(records)
        self.kinds = frozenset(kinds)
        self.whole = whole


def _cached(entry: Mapping[str, Any], cell: str, heads: bool, whole: Callable[[], list[Record]]) -> list[Record]:
    """A cache entry's records: its head alone when nothing follows it, as a Head for `heads`,
    else every record (`whole`). ValueError for an entry that is not the cell's."""
    from .signing import carrying_digest

    head = [carrying_digest(Record.from_dict(r), signed) for r, signed in zip(entry["head"], entry["signed"])]
    if not head or any(r.cell != cell for r in head):
        raise ValueError(f"not a cache entry of {cell}")
    if not entry["more"]:
        return head
    return Head(head, entry["kinds"], whole) if heads else whole()


def _whole(s3: Any, place: Place, cell: str, entry: Mapping[str, Any], bodies: ledgercache.Bodies) -> list[Record]:
    """Every record of a cell served from the cache: its cached content when that is the one the
    head was made from, else its summary read again."""
    from botocore.exceptions import BotoCoreError, ClientError

    body = bodies.get(cell, entry["sha256"])
    if body is not None:
        try:
            return parse_summary(body, cell)
        except ValueError:
            pass
    try:
        return _read_for_status(s3, place, cell, True)[0]
    except (BotoCoreError, ClientError) as exc:
        raise LedgerError(f"cannot read the ledger: {exc}{access_hint(exc)}") from None


def _list_summaries(s3: Any, place: Place) -> dict[str, str]:
    """cell -> its summary's ETag, from the listing of the summaries' prefix."""
    from botocore.exceptions import ClientError

    from ..aws.s3keys import list_pages

    etags = {}
    try:
        for page in list_pages(s3, Bucket=place.bucket, Prefix=SUMMARY_PREFIX):
            for obj in page.get("Contents", []):
                cell = summary_cell(obj["Key"])
                if cell is not None:
                    etags[cell] = obj["ETag"]
    except ClientError as exc:
        if _code(exc) == "NoSuchBucket":
            return {}
        raise
    return etags


def _list_cells(s3: Any, place: Place) -> list[str]:
    """The cells with a folder of records (a record written whose summary was not, or one of
    an earlier version)."""
    from botocore.exceptions import ClientError

    from ..aws.s3keys import list_pages

    cells = []
    try:
        for page in list_pages(s3, Bucket=place.bucket, Prefix=LEDGER_PREFIX, Delimiter="/"):
            cells += [p["Prefix"][len(LEDGER_PREFIX):].rstrip("/") for p in page.get("CommonPrefixes", [])]
    except ClientError as exc:
        if _code(exc) == "NoSuchBucket":
            return []
        raise
    return [c for c in cells if not c.startswith("_")]


# --- recording a run -----------------------------------------------------------------------------

_CALLERS: dict[tuple[str, ...], str] = {}
_CALLERS_LOCK = threading.Lock()


def caller_identity(region: str, environ: Mapping[str, str]) -> str:
    """Who ran this (the STS caller ARN), or "" — never a reason to fail a run.

    Asked once per process and set of credentials: a fleet of 50 cells records one caller."""
    from ..aws.clients import CHAIN_VARS

    key = (region, *(environ.get(name, "") for name in CHAIN_VARS), environ.get("TFDEPLOY_SANDBOX_ENDPOINT", ""))
    with _CALLERS_LOCK:  # the cells of a fan-out finish together: one asks, the others wait for it
        if key in _CALLERS:
            return _CALLERS[key]
        try:
            from ..aws.clients import client
            from ..aws.sandbox import active_endpoint

            found = str(client("sts", region, environ, active_endpoint(environ)).get_caller_identity()["Arn"])
        except Exception:
            found = ""  # not asked again by this process: the cells behind must not each time out
        _CALLERS[key] = found
        return found


def outbox_dir(cache_dir: Path) -> Path:
    return cache_dir / OUTBOX_DIR


def keep_in_outbox(cache_dir: Path, record: Record, place: Place, because: str = "") -> Path:
    """Keep a record that could not be written, with where it was going and why, for the next
    command. (Files an earlier version kept say no why: see `_before_bucket`.)"""
    from ..results import write_atomic

    path = outbox_dir(cache_dir) / f"{record.cell}-{record.id}.json"
    why = {"kept_because": because} if because else {}
    write_atomic(path, json.dumps({"bucket": place.bucket, "region": place.region, **why,
                                   "record": record.to_dict()}, indent=2, sort_keys=True) + "\n")
    return path


def flush_outbox(cache_dir: Path, environ: Mapping[str, str],
                 warn: Callable[[str], None]) -> list[str]:
    """Write the kept records; each written one leaves the outbox. Where they were written."""
    folder = outbox_dir(cache_dir)
    if not folder.is_dir():
        return []
    written = []
    created: dict[str, str | None] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
            record = Record.from_dict(kept["record"])
            place = Place(kept["bucket"], kept["region"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warn(f"ledger record {path} is not readable ({exc}); left in place")
            continue
        if not kept.get("kept_because") and _before_bucket(record, place, environ, created):
            path.unlink()
            warn(f"ledger record {path} dropped: it was kept while s3://{place.bucket} did not exist yet "
                 f"(created {created[place.bucket]}), so that {record.action} deployed nothing there")
            continue
        try:
            written.append(write_record(record, place, environ))
        except NoBucket as exc:
            path.unlink()
            warn(f"ledger record {path} dropped: {exc}; nothing can have been deployed there")
            continue
        except Exception as exc:  # stays kept; never breaks the command that flushes
            warn(f"ledger record kept in {path} still not written: {exc}")
            continue
        path.unlink()
    return written


def _before_bucket(record: Record, place: Place, environ: Mapping[str, str], created: dict[str, str | None]) -> bool:
    """Was `record`, kept by an earlier version, made before its bucket existed (one ListBuckets
    per flush, only when the outbox holds such records)? Then its run could not have changed
    anything there. A minute of margin for the clocks of this machine and S3."""
    if place.bucket not in created:
        try:
            buckets = _s3(place.region, environ).list_buckets().get("Buckets", [])
            created.update({b["Name"]: b["CreationDate"].astimezone(timezone.utc).isoformat(timespec="milliseconds")
                            .replace("+00:00", "Z") for b in buckets})
        except Exception:  # noqa: BLE001 - cannot tell: the write itself decides
            pass
        created.setdefault(place.bucket, None)
    when = created[place.bucket]
    if when is None:
        return False
    made = datetime.fromisoformat((record.finished_at or record.started_at).replace("Z", "+00:00"))
    return (datetime.fromisoformat(when.replace("Z", "+00:00")) - made).total_seconds() > 60


@dataclass(frozen=True)
class Prepared:
    """The reads a cell's record needs, started while its run goes on (`prepare`)."""
    place: Place
    caller: Callable[[], str]
    summary: Callable[[], tuple[list[Record], str | None]]


def prepare(place: Place, cell: str, environ: Mapping[str, str]) -> Prepared:
    """Start reading, on threads, what writing the cell's record will need: the caller (STS) and
    the cell's summary. Started when the run starts, they are done by the time Terraform is, so
    only the two writes are left after it (each read is a round trip of tens of ms on AWS). A
    summary rewritten in between is caught by the write, which is conditional on what was read
    and reads again when it changed."""
    from ..background import started

    return Prepared(place, started(lambda: caller_identity(place.region, environ), f"ledger-caller-{cell}"),
                    started(lambda: _read_summary(_s3(place.region, environ), place, cell), f"ledger-read-{cell}"))


def _asked_caller(prepared: Prepared) -> str:
    try:
        return prepared.caller()
    except Exception:  # noqa: BLE001 - like caller_identity: never a reason to lose the record
        return ""


def record_run(tag: Tag, settings: Settings | None, environ: Mapping[str, str], *, cache_dir: Path,
               action: str, result: str, commit: str, counts: Mapping[str, int] | tuple[int, int, int],
               started_at: str, plan_sha256: str = "", override: str = "",
               details: Mapping[str, Any] | None = None, warn: Callable[[str], None],
               place: Place | None = None, prepared: Prepared | None = None,
               signing: tuple[str, str] | None = None) -> Record:
    """Record one run of a cell: build the record (caller from STS, build id from CodeBuild's
    CODEBUILD_BUILD_ID), flush any kept records, append it. Never raises for the ledger: a record
    that cannot be written is reported through `warn` and kept in `.tfdeploy/ledger-outbox/`.

    The one entry point for every command that changes a cell (apply, destroy, fleet, ci).
    `place`: the cell's state bucket as its run resolved it (else computed from `settings`).
    `prepared`: reads started for this place when the run started (`prepare`).
    `signing`: (ledger_signing_key, state_region) when no `settings` are given; the record is
    signed with it before it is written or kept (a record that cannot be signed is written
    unsigned and said: it then counts as no promotion evidence)."""
    from .. import __version__
    from .signing import key_region, sign_or_warn

    add, change, destroy = (counts if isinstance(counts, tuple)
                            else (counts.get("add", 0), counts.get("change", 0), counts.get("destroy", 0)))
    if place is None:
        if settings is None:
            raise TypeError("record_run needs settings or place")
        place = place_for(tag, settings)
    if prepared is not None and prepared.place != place:
        prepared = None
    caller = _asked_caller(prepared) if prepared is not None else caller_identity(place.region, environ)
    record = record_for(tag, commit=commit, action=action, result=result, add=int(add), change=int(change),
                        destroy=int(destroy), caller=caller,
                        started_at=started_at, finished_at=now_iso(), plan_sha256=plan_sha256,
                        tfdeploy_version=__version__, build_id=environ.get("CODEBUILD_BUILD_ID", ""),
                        override=override, details=dict(details or {}))
    key, key_home = signing or ((settings.ledger_signing_key or "", settings.state_region) if settings else ("", ""))
    record = sign_or_warn(record, key, key_region(key, key_home), environ, warn)
    flush_outbox(cache_dir, environ, warn)
    try:
        write_record(record, place, environ, read=prepared.summary if prepared is not None else None)
    except NoBucket as exc:  # a run before `bootstrap`: it deployed nothing, and says so once
        warn(f"ledger record dropped: {exc} (the bucket does not exist, so nothing was deployed there); "
             f"run tfdeploy bootstrap --env {tag.env}")
        return record
    except Exception as exc:  # the run's own outcome stands; the record must not be lost
        reason = str(exc) if isinstance(exc, TfdeployError) else f"{type(exc).__name__}: {exc}"
        try:
            kept = keep_in_outbox(cache_dir, record, place, reason[:300])
        except OSError as disk:  # last resort: the record itself, in the run's output
            warn(f"ledger record not written: {reason}; nor kept ({disk}); the record: "
                 + json.dumps({"bucket": place.bucket, "region": place.region, "record": record.to_dict()},
                              sort_keys=True))
            return record
        warn(f"ledger record not written: {reason}; kept in {kept}, written by the next tfdeploy "
             "apply, destroy, status or history")
    return record
