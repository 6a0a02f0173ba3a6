"""One shared copy of a bucket's ledger summaries, so a reader without a local cache (a fresh
clone, a CI build) reads the fleet in one GET instead of one per cell.

`_tfdeploy-ledger/_snapshot.json.gz` holds, per summary object key, the summary's exact content and
the ETag it had. It is only ever a way to skip a GET, never a source of truth:

- an entry is used only when the MD5 of its content equals the ETag the listing returned for that
  key a moment ago (for a single-part object with SSE-S3, the ETag *is* the MD5 of its bytes), so
  what is served is byte for byte what S3 holds now; a summary rewritten or edited since, or an
  entry edited in the snapshot, falls back to a GET;
- what is served then goes through the same checks as a GET (parsing, the cell check, and every
  signature under `ledger_signing_key`): a bucket writer who forges the snapshot can do no more
  than one who rewrites the summary itself. MD5 is not collision resistant, which is why nothing
  about trust is keyed by it: no verification result is kept per ETag, in the snapshot or
  elsewhere (fleet/signing.py keeps its own, by SHA-256 of the signed message and signature);
- a snapshot that is missing, unreadable, damaged, of another format or bucket is ignored; one
  that cannot be written (no `s3:PutObject` for a read-only role) is skipped. Neither ever fails
  or slows `status` beyond the one request.

It is written by readers, best effort, when a read needed WRITE_AFTER_GETS GETs or more (a fleet
that changed a lot since the snapshot); a reader needing fewer reads it only when that many are
missing from its local cache (below that, the GETs in parallel cost less than one download).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from dataclasses import dataclass, field
from typing import Any, Mapping

SNAPSHOT_KEY = "_tfdeploy-ledger/_snapshot.json.gz"  # no cell starts with `_`: never a record's folder
FORMAT = "tfdeploy-ledger-snapshot/1"
WRITE_AFTER_GETS = 32
READ_AFTER_MISSES = 32
MAX_BYTES = 512 * 1024 * 1024  # decompressed: a bucket writer must not make a reader run out of memory


def etag_of(body: str) -> str:
    """The ETag S3 gives a single-part, SSE-S3 object with this content (pure)."""
    return '"' + hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest() + '"'


def snapshot_body(bucket: str, entries: Mapping[str, str], written_at: str) -> bytes:
    """The snapshot object's content (pure): key -> the summary's content, gzip-compressed."""
    data = {"format": FORMAT, "bucket": bucket, "written_at": written_at, "summaries": dict(entries)}
    return gzip.compress(json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8"), compresslevel=5)


def parse_snapshot(blob: bytes, bucket: str) -> dict[str, str]:
    """key -> content of a snapshot object (pure); empty for anything that is not this bucket's
    snapshot in this format. Nothing here is trusted yet: see `usable`."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(blob)) as unzipped:
            raw = unzipped.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            return {}
        data = json.loads(raw)
    except (OSError, EOFError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("bucket") != bucket:
        return {}
    summaries = data.get("summaries")
    if not isinstance(summaries, dict):
        return {}
    return {k: v for k, v in summaries.items() if isinstance(k, str) and isinstance(v, str)}


def usable(entries: Mapping[str, str], listed: Mapping[str, str]) -> dict[str, str]:
    """The entries whose content S3 lists now (pure): key -> content, for every key whose listed
    ETag is the MD5 of the entry's content."""
    return {key: body for key, body in entries.items() if key in listed and etag_of(body) == listed[key]}


@dataclass
class Snapshot:
    """A bucket's snapshot for one command: read at most once, written at most once."""

    s3: Any
    bucket: str
    _entries: dict[str, str] | None = field(default=None, repr=False)
    written: bool = False

    def entries(self) -> dict[str, str]:
        """What the snapshot holds (unchecked: pass it through `usable`); {} when it cannot be read."""
        if self._entries is None:
            self._entries = {}
            try:
                got = self.s3.get_object(Bucket=self.bucket, Key=SNAPSHOT_KEY)
                self._entries = parse_snapshot(got["Body"].read(MAX_BYTES + 1), self.bucket)
            except Exception:  # noqa: BLE001 - missing, denied, archived, cut off: read the summaries instead
                pass
        return self._entries

    def write(self, entries: Mapping[str, str], written_at: str) -> bool:
        """Replace the snapshot with `entries` (key -> content S3 lists now); False when it could
        not be written, which never fails the reader."""
        from .ledger import ENCRYPTION

        if self.written:
            return True
        try:
            self.s3.put_object(Bucket=self.bucket, Key=SNAPSHOT_KEY, Body=snapshot_body(self.bucket, entries, written_at),
                               ContentType="application/gzip", **ENCRYPTION)
        except Exception:  # noqa: BLE001 - e.g. a read-only role: the next reader does the GETs
            return False
        self.written = True
        self._entries = dict(entries)
        return True
