"""Claims: each pushed tag becomes part of exactly one release execution.

Pushed tags arrive one EventBridge event (one source build) per tag. The source build claims its
tag with a conditional put (`If-None-Match: *`) of `claims/<tag>@<commit>.json` in the env's source
bucket: of two builds racing for one tag, S3 lets exactly one create the object. The winner waits
a settle window, claims every other tag of the same env, team and version at the same commit that
is not claimed yet (the same conditional put: each such tag goes to one release only), publishes
them as one release and writes the execution id into its claims. A build whose tag is already
claimed publishes nothing and exits 0, naming the execution that carries the tag.

The commit is part of the claim's key: a tag moved to a fixed commit is a new claim. A manual
`tfdeploy publish --tag ...` claims unconditionally (it means "deploy this again"), so a later
event for the same tag and commit finds it claimed and starts nothing more.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

from ..errors import TfdeployError

CLAIMS_PREFIX = "claims"
SETTLE_VAR = "TFDEPLOY_SETTLE_SECONDS"
DEFAULT_SETTLE_S = 30.0


def claim_key(tag: str, commit: str) -> str:
    """`claims/<tag>@<commit>.json` (pure; tag names are safe S3 key characters)."""
    return f"{CLAIMS_PREFIX}/{tag}@{commit}.json"


@dataclass(frozen=True)
class Claim:
    tag: str
    commit: str
    won: bool
    holder: dict[str, Any]  # the claim object's content (the winner's, when lost)


def _body(tag: str, commit: str, release: str, by: str, execution_id: str = "") -> bytes:
    return (json.dumps({"tag": tag, "commit": commit, "release": release, "claimed_by": by,
                        "claimed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "execution_id": execution_id}, indent=2) + "\n").encode()


def claim(s3: Any, bucket: str, tag: str, commit: str, release: str, by: str, *, force: bool = False) -> Claim:
    """Claim `tag` at `commit`: created only if nobody has (unless `force`)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from .publish import _aws_error

    key = claim_key(tag, commit)
    extra = {} if force else {"IfNoneMatch": "*"}
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=_body(tag, commit, release, by),
                      ContentType="application/json", **extra)
        return Claim(tag, commit, True, {})
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code not in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            raise _aws_error(exc, f"cannot claim {tag} (s3://{bucket}/{key})") from None
    except BotoCoreError as exc:
        raise _aws_error(exc, f"cannot claim {tag} (s3://{bucket}/{key})") from None
    return Claim(tag, commit, False, read_claim(s3, bucket, tag, commit))


def read_claim(s3: Any, bucket: str, tag: str, commit: str) -> dict[str, Any]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = s3.get_object(Bucket=bucket, Key=claim_key(tag, commit))["Body"].read()
        data = json.loads(body)
        return data if isinstance(data, dict) else {}
    except (ClientError, BotoCoreError, ValueError):
        return {}


def record_execution(s3: Any, bucket: str, tags: Sequence[str], commit: str, release: str, by: str,
                     execution_id: str) -> None:
    """Write the execution into the release's claims (ours: overwritten, never created anew)."""
    for tag in tags:
        s3.put_object(Bucket=bucket, Key=claim_key(tag, commit),
                      Body=_body(tag, commit, release, by, execution_id), ContentType="application/json")


def release_key(release: str, commit: str) -> str:
    """`claims/release/<env>/<team>/<version>@<commit>.json` (pure)."""
    return f"{CLAIMS_PREFIX}/release/{release}@{commit}.json"


def _put_if_absent(s3: Any, bucket: str, key: str, body: bytes) -> bool:
    from botocore.exceptions import BotoCoreError, ClientError

    from .publish import _aws_error

    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json", IfNoneMatch="*")
        return True
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            return False
        raise _aws_error(exc, f"cannot write s3://{bucket}/{key}") from None
    except BotoCoreError as exc:
        raise _aws_error(exc, f"cannot write s3://{bucket}/{key}") from None


def _read(s3: Any, bucket: str, key: str) -> dict[str, Any] | None:
    """The JSON object at `key`, or None when there is none."""
    from botocore.exceptions import ClientError

    try:
        data = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except ClientError as exc:
        if str(exc.response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


LEADER_WAIT_S = 900.0  # how long a build waits for the release's gatherer beyond the settle window
POLL_S = 1.0


def publish_once(s3: Any, bucket: str, tag: str, commit: str, release: str, by: str,
                 candidates: Callable[[], Sequence[str]], start: Callable[[list[str]], Any], settle_s: float, *,
                 progress: Callable[[str], None] = lambda line: None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> Any:
    """Publish `tag`'s release exactly once across racing builds: `start(tags)`'s result when this
    build published, else the claim (a dict) of the tag naming the execution that carries it."""
    rkey = release_key(release, commit)
    deadline = clock() + settle_s + LEADER_WAIT_S
    while True:
        if _put_if_absent(s3, bucket, rkey, _body("", commit, release, by)):
            return _gather_and_start(s3, bucket, tag, commit, release, by, candidates, start, settle_s,
                                     progress, sleep, rkey)
        progress(f"release {release} is being gathered by another build; waiting for its execution")
        while True:
            holder = _read(s3, bucket, rkey)
            if holder is None or holder.get("execution_id") or clock() > deadline:
                break
            sleep(POLL_S)
        mine = read_claim(s3, bucket, tag, commit)
        if mine:
            return mine
        if holder is None:
            continue  # its gatherer gave up: race for the release again
        # Late (the window had closed), or the gatherer never finished: publish it ourselves.
        if not claim(s3, bucket, tag, commit, release, by).won:
            return read_claim(s3, bucket, tag, commit)
        won = [name for name in candidates() if name != tag and claim(s3, bucket, name, commit, release, by).won]
        names = [tag, *won]
        try:
            result = start(names)
        except BaseException:
            release_claims(s3, bucket, names, commit)
            raise
        return result


def _gather_and_start(s3: Any, bucket: str, tag: str, commit: str, release: str, by: str,
                      candidates: Callable[[], Sequence[str]], start: Callable[[list[str]], Any], settle_s: float,
                      progress: Callable[[str], None], sleep: Callable[[float], None], rkey: str) -> Any:
    names: list[str] = []
    try:
        mine = claim(s3, bucket, tag, commit, release, by)
        if not mine.won:  # e.g. a manual publish deployed it already: nothing to gather for it
            s3.delete_object(Bucket=bucket, Key=rkey)
            return mine.holder
        names = [tag]
        progress(f"claimed {tag} and release {release}; gathering its other tags for {settle_s:g}s")
        names += gather(lambda: [n for n in candidates() if n != tag],
                        lambda name: claim(s3, bucket, name, commit, release, by).won, settle_s, sleep)
        result = start(names)
    except BaseException:
        # Nothing started: give the claims back, so a waiting or retried build can gather them.
        release_claims(s3, bucket, names, commit)
        try:
            s3.delete_object(Bucket=bucket, Key=rkey)
        except Exception:
            pass
        raise
    execution = getattr(result, "execution_id", "") or ""
    s3.put_object(Bucket=bucket, Key=rkey, Body=_body("", commit, release, by, execution),
                  ContentType="application/json")
    return result


def release_claims(s3: Any, bucket: str, tags: Sequence[str], commit: str) -> None:
    """Delete the claims of a release that never started (best effort: claims are not state)."""
    for tag in tags:
        try:
            s3.delete_object(Bucket=bucket, Key=claim_key(tag, commit))
        except Exception:  # a claim left behind only makes a retry say "claimed"; never mask the cause
            pass


GATHER_VAR = "TFDEPLOY_GATHER_RELEASES"


def gathering(environ: Mapping[str, str]) -> bool:
    """Whether a pushed tag's build gathers its release: on by default (the plan and apply stage
    builds start a release's batch, delivery/release_stage.py); TFDEPLOY_GATHER_RELEASES=0 opts
    out, and each pushed tag is then a release of one."""
    return environ.get(GATHER_VAR, "").strip().lower() not in ("0", "false", "no")


def settle_seconds(environ: Mapping[str, str]) -> float:
    from ..envvalues import env_seconds

    return env_seconds(environ, SETTLE_VAR, DEFAULT_SETTLE_S, most=900, error=TfdeployError,
                       hint="set it to e.g. 30")


def gather(list_candidates: Callable[[], Sequence[str]], try_claim: Callable[[str], bool], settle_s: float,
           sleep: Callable[[float], None] = time.sleep) -> list[str]:
    """After the settle window, claim every candidate tag not claimed yet; those won."""
    if settle_s > 0:
        sleep(settle_s)
    return [tag for tag in list_candidates() if try_claim(tag)]
