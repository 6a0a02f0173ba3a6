"""The local copy of a bucket's ledger summaries, `.tfdeploy/ledger-cache/`, so a warm `status`
reads the fleet from the listings alone and parses only what decides each row.

Two files per bucket, each replaced whole and atomically:

- `<bucket>.json`: per cell, the ETag S3 listed for its summary, the SHA-256 of the summary's
  content, and its *head*: the newest records up to the last change, the last change that ran to
  the end and the last drift check (fleet/status.py `head_cut`), with how many records follow
  and of which kinds. About one record per cell instead of ten or twenty: a warm `status` of
  10,000 cells parses megabytes, not the 80 MB of every summary. With each head record, the
  SHA-256 of its signed content (fleet/signing.py `canonical_sha256`), so a warm signature check
  does not serialise the record again. One SHA-256 covers the whole document: a file altered or
  cut short is dropped whole.
- `<bucket>.bodies.json`: each summary's content as S3 holds it, read only when a row needs more
  than its head (a record of the head is not trusted, or `--html` and the other readers want
  every record); a content whose SHA-256 is not the head file's is read from S3 instead.

An entry is only ever used when S3 lists the same ETag for that summary a moment before, so a
record written elsewhere is seen at once; signatures are checked on the records themselves
(fleet/signing.py), served from here or not. A cache that is missing, unreadable, of another
format or bucket is ignored; one that cannot be written costs the next read its GETs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping, Sequence

CACHE_DIR = "ledger-cache"
FORMAT = "tfdeploy-ledger-cache/3"
KINDS = ("change", "drift")


def cache_path(cache_dir: Path, bucket: str) -> Path:
    return cache_dir / CACHE_DIR / f"{bucket}.json"


def bodies_path(cache_dir: Path, bucket: str) -> Path:
    return cache_dir / CACHE_DIR / f"{bucket}.bodies.json"


def digest(body: str) -> str:
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def make_entry(body: str, etag: str, newest_first: Sequence[Any]) -> dict[str, Any]:
    """A summary as the head file keeps it (pure): `newest_first`, its records, newest first."""
    from .signing import canonical_sha256
    from .status import head_cut

    cut, kinds = head_cut(newest_first)
    head = newest_first[:cut]
    return {"etag": etag, "sha256": digest(body), "head": [r.to_dict() for r in head],
            "signed": [canonical_sha256(r) for r in head], "more": len(newest_first) - cut, "kinds": kinds}


def _good_entry(entry: Any) -> bool:
    return (isinstance(entry, dict) and isinstance(entry.get("etag"), str) and isinstance(entry.get("sha256"), str)
            and isinstance(entry.get("head"), list) and all(isinstance(r, dict) for r in entry["head"])
            and isinstance(entry.get("signed"), list) and len(entry["signed"]) == len(entry["head"])
            and all(isinstance(d, str) for d in entry["signed"])
            and isinstance(entry.get("more"), int) and isinstance(entry.get("kinds"), list)
            and set(entry["kinds"]) <= set(KINDS))


def valid_entries(data: Any, bucket: str) -> dict[str, dict[str, Any]]:
    """The usable entries of a loaded head file (pure): none unless it is this bucket's cache in
    this format and its content matches its SHA-256; a malformed entry is dropped."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("bucket") != bucket:
        return {}
    text = data.get("summaries")
    if not isinstance(text, str) or not isinstance(data.get("sha256"), str) or digest(text) != data["sha256"]:
        return {}
    try:
        summaries = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(summaries, dict):
        return {}
    return {cell: entry for cell, entry in summaries.items() if _good_entry(entry)}


def load(cache_dir: Path, bucket: str) -> dict[str, dict[str, Any]]:
    """The usable entries of the bucket's cache; none when it is missing, unreadable or foreign."""
    try:
        return valid_entries(json.loads(cache_path(cache_dir, bucket).read_text(encoding="utf-8")), bucket)
    except (OSError, ValueError):
        return {}


def file_text(bucket: str, entries: Mapping[str, Mapping[str, Any]]) -> str:
    """The head file's content (pure)."""
    text = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    return json.dumps({"format": FORMAT, "bucket": bucket, "sha256": digest(text), "summaries": text})


class Bodies:
    """A bucket's cached summary contents, read from disk at most once and only when asked."""

    def __init__(self, cache_dir: Path | None, bucket: str):
        self.cache_dir, self.bucket = cache_dir, bucket
        self._all: dict[str, str] | None = None

    def all(self) -> dict[str, str]:
        if self._all is None:
            self._all = {}
            if self.cache_dir is not None:
                try:
                    data = json.loads(bodies_path(self.cache_dir, self.bucket).read_text(encoding="utf-8"))
                    if isinstance(data, dict) and data.get("format") == FORMAT and data.get("bucket") == self.bucket:
                        self._all = {c: b for c, b in (data.get("bodies") or {}).items() if isinstance(b, str)}
                except (OSError, ValueError, AttributeError):
                    pass
        return self._all

    def get(self, cell: str, sha256: str) -> str | None:
        """The cell's cached content when it is the one the head file names; else None (read S3)."""
        body = self.all().get(cell)
        return body if body is not None and digest(body) == sha256 else None


def save(cache_dir: Path, bucket: str, entries: Mapping[str, Mapping[str, Any]],
         bodies: Mapping[str, str] | None) -> None:
    """Replace the bucket's cache (atomically): the bodies first when given (`bodies`: the content
    of every entry's summary there is), then the heads. A cache that cannot be written only costs
    the next read its GETs, so it never fails the command."""
    from ..results import write_atomic

    try:
        if bodies is not None:
            write_atomic(bodies_path(cache_dir, bucket), json.dumps(
                {"format": FORMAT, "bucket": bucket, "bodies": {c: b for c, b in bodies.items() if c in entries}}))
        write_atomic(cache_path(cache_dir, bucket), file_text(bucket, entries))
    except OSError:
        pass
