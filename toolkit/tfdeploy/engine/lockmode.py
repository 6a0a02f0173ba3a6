"""The lock mode a cell's state is kept in, recorded beside the state, and switching it on purpose.

Two runs of one cell given different `--lock` modes used to take two different locks (no lock at
all), and an s3-mode write left the dynamodb mode's digest row stale. Now both modes take the S3
lockfile, and the mode is recorded in `<key>.tfdeploy-lock-mode.json` in the state bucket: a run
in the other mode is refused before Terraform touches the state or a lock. `migrate_lock` is the
one deliberate way to switch: under both locks it writes (or removes) the digest row Terraform
keeps for dynamodb mode, then records the new mode.

A state from before this record existed is inferred: a digest row `<bucket>/<key>-md5` in the
env's lock table means dynamodb mode (Terraform writes it on every dynamodb-mode state write).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping

from ..errors import TfdeployError, ValidationError
from ..model.backend import BackendConfig

RECORD_SUFFIX = ".tfdeploy-lock-mode.json"
MODES = ("s3", "dynamodb")


@dataclass(frozen=True)
class ModeRecord:
    mode: str | None  # None: a new cell (no state, no record)
    source: str  # "recorded" | "inferred" | "new"
    where: str  # the s3:// address of the record, or what the inference read


def record_key(backend: BackendConfig) -> str:
    return backend.key + RECORD_SUFFIX


def record_url(backend: BackendConfig) -> str:
    return f"s3://{backend.bucket}/{record_key(backend)}"


def digest_id(backend: BackendConfig) -> str:
    """The lock-table item where Terraform's S3 backend keeps the state's MD5 (dynamodb mode)."""
    return f"{backend.bucket}/{backend.key}-md5"


def refusal(cell: str, tag: str, found: ModeRecord, wanted: str) -> str:
    """The one line for a run whose mode is not the cell's (pure)."""
    how = f"recorded at {found.where}" if found.source == "recorded" else f"inferred from {found.where}"
    return (f"cell {cell}'s state is locked in {found.mode} mode ({how}); run with --set lock={found.mode}, "
            f"or switch deliberately: tfdeploy state migrate-lock --tag {tag} --to {wanted}")


class _Aws:
    """The two clients this module needs, sandbox-aware."""

    def __init__(self, backend: BackendConfig, environ: Mapping[str, str], endpoint: str | None):
        from ..aws.clients import client

        self.backend = backend
        self.s3 = client("s3", backend.region, environ, endpoint)
        self._environ, self._endpoint = environ, endpoint

    @property
    def ddb(self) -> Any:
        """Made on first use: a cell whose mode is recorded never needs DynamoDB to be checked."""
        from ..aws.clients import client

        return client("dynamodb", self.backend.region, self._environ, self._endpoint)

    def _code(self, exc: Exception) -> str:
        return getattr(exc, "response", {}).get("Error", {}).get("Code", "")

    def get(self, key: str) -> bytes | None:
        try:
            return self.s3.get_object(Bucket=self.backend.bucket, Key=key)["Body"].read()
        except Exception as exc:
            if self._code(exc) in ("NoSuchKey", "404"):
                return None
            raise

    def bucket_exists(self) -> bool:
        try:
            self.s3.head_bucket(Bucket=self.backend.bucket)
            return True
        except Exception as exc:
            if self._code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise

    def digest(self) -> str | None:
        table = self.backend.lock_table
        if not table:
            return None
        try:
            item = self.ddb.get_item(TableName=table, Key={"LockID": {"S": digest_id(self.backend)}},
                                     ConsistentRead=True).get("Item")
        except Exception as exc:
            if self._code(exc) == "ResourceNotFoundException":
                return None
            raise
        return item["Digest"]["S"] if item and "Digest" in item else None

    def table_exists(self) -> bool:
        try:
            self.ddb.describe_table(TableName=self.backend.lock_table)
            return True
        except Exception as exc:
            if self._code(exc) == "ResourceNotFoundException":
                return False
            raise


def current_mode(aws: _Aws, state_exists: Callable[[], bool] | None = None) -> ModeRecord:
    """The cell's lock mode: its record, else inferred from its state and digest row.

    `state_exists`: where to learn it instead of a GET of its own (engine/preflight.py reads the
    state anyway, at the same time as this reads the record)."""
    b = aws.backend
    raw = aws.get(record_key(b))
    if raw is not None:
        try:
            mode = json.loads(raw)["mode"]
        except (ValueError, KeyError, TypeError):
            mode = None
        if mode not in MODES:
            raise TfdeployError(f"{record_url(b)} is not a lock-mode record tfdeploy wrote; fix it or run "
                                "tfdeploy state migrate-lock --tag TAG --to s3|dynamodb")
        return ModeRecord(mode, "recorded", record_url(b))
    exists = state_exists() if state_exists is not None else aws.get(b.key) is not None
    if not exists:
        return ModeRecord(None, "new", "")
    if aws.digest() is not None:
        return ModeRecord("dynamodb", "inferred", f"the digest row {digest_id(b)} in {b.lock_table}")
    return ModeRecord("s3", "inferred", f"s3://{b.bucket}/{b.key} having no digest row in "
                                        f"{b.lock_table or 'a lock table'}")


def _write_record(aws: _Aws, mode: str, *, create_only: bool) -> bool:
    """Write the record; with `create_only`, only if none exists (two first runs race on it)."""
    body = json.dumps({"mode": mode, "recorded_at": _now(), "by": _who()}, indent=2) + "\n"
    extra: dict[str, Any] = {"IfNoneMatch": "*"} if create_only else {}
    try:
        aws.s3.put_object(Bucket=aws.backend.bucket, Key=record_key(aws.backend), Body=body.encode(),
                          ContentType="application/json", **extra)
        return True
    except Exception as exc:
        if create_only and aws._code(exc) in ("PreconditionFailed", "ConditionalRequestConflict"):
            return False
        raise


def ensure_mode(backend: BackendConfig, *, cell: str, tag: str, environ: Mapping[str, str],
                endpoint: str | None, state_exists: Callable[[], bool] | None = None) -> None:
    """Refuse a run whose lock mode is not the cell's; record the mode on a cell's first run.

    Runs beside `terraform init` (which neither locks nor writes a state) and before anything else
    Terraform does, so a refused run touches neither state nor locks (engine/preflight.py)."""
    aws = _Aws(backend, environ, endpoint)
    try:
        try:
            found = current_mode(aws, state_exists)
        except Exception as exc:
            if aws._code(exc) in ("NoSuchBucket", "NotFound"):
                return  # terraform init says the bucket is missing and how to bootstrap it
            raise
        if found.mode is None:
            if _write_record(aws, backend.lock_mode, create_only=True):
                return
            found = current_mode(aws)  # another first run recorded it a moment ago
        elif found.source == "inferred" and found.mode == backend.lock_mode:
            _write_record(aws, found.mode, create_only=True)
    except TfdeployError:
        raise
    except Exception as exc:
        raise TfdeployError(f"cannot read the lock mode of cell {cell} at {record_url(backend)}: "
                            f"{_reason(exc)}") from None
    if found.mode != backend.lock_mode:
        raise ValidationError(refusal(cell, tag, found, backend.lock_mode))


# ---- migrate-lock ----------------------------------------------------------------------------


def _lock_info(backend: BackendConfig, lock_id: str) -> str:
    """A lock body in Terraform's LockInfo shape, so Terraform's lock errors name this holder."""
    from .. import __version__

    return json.dumps({"ID": lock_id, "Operation": "tfdeploy state migrate-lock", "Info": "",
                       "Who": _who(), "Version": f"tfdeploy {__version__}", "Created": _now(),
                       "Path": f"{backend.bucket}/{backend.key}"})


@contextmanager
def _locked(aws: _Aws) -> Iterator[str]:
    """Hold the cell's S3 lockfile and (when its table exists) its DynamoDB lock, as Terraform would."""
    b = aws.backend
    lock_id = str(uuid.uuid4())
    info = _lock_info(b, lock_id)
    # A lock write whose answer is lost is sent again by botocore; the first had landed, so the
    # resend finds a lock. Ours (same lock ID) means we hold it; anyone else's means wait.
    try:
        aws.s3.put_object(Bucket=b.bucket, Key=b.key + ".tflock", Body=info.encode(),
                          ContentType="application/json", IfNoneMatch="*")
    except Exception as exc:
        if aws._code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
            raise
        holder = aws.get(b.key + ".tflock")
        if _lock_id(holder) != lock_id:
            raise TfdeployError(f"the state of {b.key} is locked ({_holder(holder)}); "
                                "wait for that run to finish and try again") from None
    table = b.lock_table if b.lock_table and aws.table_exists() else None
    try:
        if table:
            key = {"LockID": {"S": f"{b.bucket}/{b.key}"}}
            try:
                aws.ddb.put_item(TableName=table, Item={**key, "Info": {"S": info}},
                                 ConditionExpression="attribute_not_exists(LockID)")
            except Exception as exc:
                if aws._code(exc) != "ConditionalCheckFailedException":
                    raise
                item = aws.ddb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item") or {}
                if _lock_id(item.get("Info", {}).get("S")) != lock_id:
                    raise TfdeployError(f"the state of {b.key} is locked in {table}; wait for that run "
                                        "to finish and try again") from None
        try:
            yield lock_id
        finally:
            if table:
                aws.ddb.delete_item(TableName=table, Key={"LockID": {"S": f"{b.bucket}/{b.key}"}})
    finally:
        aws.s3.delete_object(Bucket=b.bucket, Key=b.key + ".tflock")


def migration_steps(backend: BackendConfig, to: str) -> list[str]:
    """What `migrate_lock` will do, for the confirmation prompt (pure)."""
    steps = [f"take the S3 lockfile {backend.lockfile} (and the DynamoDB lock when the table exists)"]
    if to == "dynamodb":
        steps.append(f"write the state's MD5 digest to {backend.lock_table} item {digest_id(backend)}")
    else:
        steps.append(f"remove the digest item {digest_id(backend)} from {backend.lock_table}")
    steps.append(f"record mode {to} at {record_url(backend)}, then release the locks")
    return steps


def migrate_lock(backend: BackendConfig, to: str, *, environ: Mapping[str, str],
                 endpoint: str | None, env: str = "<env>") -> str:
    """Switch the cell's lock mode to `to` under its locks; returns what it found before."""
    aws = _Aws(backend, environ, endpoint)
    try:
        before = current_mode(aws)
        if to == "dynamodb" and not (backend.lock_table and aws.table_exists()):
            raise TfdeployError(f"lock table {backend.lock_table} does not exist; run: tfdeploy bootstrap "
                                f"--env {env} --set lock=dynamodb, then migrate again")
        with _locked(aws):
            state = aws.get(backend.key)
            if to == "dynamodb" and state is not None:
                aws.ddb.put_item(TableName=backend.lock_table, Item={
                    "LockID": {"S": digest_id(backend)}, "Digest": {"S": hashlib.md5(state).hexdigest()}})
            elif to == "s3" and backend.lock_table and aws.table_exists():
                aws.ddb.delete_item(TableName=backend.lock_table, Key={"LockID": {"S": digest_id(backend)}})
            _write_record(aws, to, create_only=False)
    except TfdeployError:
        raise
    except Exception as exc:
        raise TfdeployError(f"migrate-lock failed: {_reason(exc)}; the recorded mode is unchanged "
                            "unless it says otherwise at " + record_url(backend)) from None
    return before.mode or "none"


def _lock_id(raw: bytes | str | None) -> str | None:
    """The `ID` of a lock body in Terraform's LockInfo shape; None when unreadable (pure)."""
    try:
        info = json.loads(raw or b"{}")
    except ValueError:
        return None
    return info.get("ID") if isinstance(info, dict) else None


def _holder(raw: bytes | None) -> str:
    try:
        info = json.loads(raw or b"{}")
        return f"by {info.get('Who', '?')}, {info.get('Operation', '?')} since {info.get('Created', '?')}, " \
               f"lock ID {info.get('ID', '?')}"
    except ValueError:
        return "by an unknown holder"


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
