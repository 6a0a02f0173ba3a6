"""Signed ledger records: evidence that someone who can only write the state bucket cannot forge.

A record is signed, when `ledger_signing_key` is set, with that KMS asymmetric key (ECC_NIST_P256,
ECDSA_SHA_256) by whoever writes it (the pipeline's build roles hold kms:Sign). What is signed is
a short message naming the format and the SHA-256 of the record's canonical bytes: the stable
JSON of every field of format 1 except `signature` itself (so `signing_key`, the key's ARN, and
`signature_alg` are signed too). KMS `Sign` takes it as a RAW message (at most 4 KiB: a record
with a long error line would not fit whole).

Verification uses only the key named in the settings, never one a record names: its public key
is fetched once (`GetPublicKey`), kept in memory and in `.tfdeploy/ledger-keys/`, and each record
is verified locally with `cryptography` (about 0.1 ms); without `cryptography` installed, KMS
`Verify` is asked once per record. A record counts as evidence only when it is signed by that key,
its signature holds, and it did not finish in the future (a forged date would sort newest).
Without a key (local use) records are unsigned: they count, except future-dated ones, and
promotion says the evidence is unsigned; `require_signed_evidence` envs refuse it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..errors import TfdeployError
from ..model.settings import Settings, signed_evidence_envs

ALGORITHM = "ECDSA_SHA_256"
FORMAT = "tfdeploy-ledger-record/1"
# The fields format 1 signs: every field a Record had when it was defined, except `signature`.
# A newer field must be added here in a new format (a test checks every field is covered), so a
# record of a newer version never verifies by accident over fewer fields than it has.
SIGNED_FIELDS = ("tag", "commit", "cell", "env", "team", "scope", "version", "action", "result", "add",
                 "change", "destroy", "caller", "started_at", "finished_at", "plan_sha256", "tfdeploy_version",
                 "build_id", "override", "details", "id", "signing_key", "signature_alg")
UNSIGNED_FIELDS = ("signature",)
FUTURE_SKEW = timedelta(minutes=5)  # clocks of runners differ; more than this is a forged date
KEYS_DIR = "ledger-keys"
VERIFIED_KEEP = 100_000  # digests kept in a key's .verified file (33 bytes each)
UNSIGNED = "unsigned"
NO_KEY_NOTE = "evidence unsigned (no ledger_signing_key set)"


class SigningError(TfdeployError):
    """The signing key could not be used (not found, no permission, not a SIGN_VERIFY key)."""


# --- what is signed (pure) -----------------------------------------------------------------------

def canonical_bytes(record: Any) -> bytes:
    """The record's signed content: stable JSON of SIGNED_FIELDS (pure)."""
    if hasattr(record, "to_dict"):
        # The fields as they are (not `to_dict`'s deep copy: json.dumps reads `details` the same
        # way), which a cold `status` does once per cell it verifies.
        data = {name: getattr(record, name, None) for name in SIGNED_FIELDS}
    else:
        given = dict(record)
        data = {name: given.get(name) for name in SIGNED_FIELDS}
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


# A record read back from the local ledger cache carries the SHA-256 of its canonical bytes, taken
# when the cache entry was made from that very content (fleet/ledgercache.py), so a warm `status`
# checks 10,000 signatures without serialising 10,000 records again. Not a field: `replace()`
# (any change) makes a record without it.
_DIGEST = "_canonical_sha256"


def canonical_sha256(record: Any) -> str:
    """The SHA-256 (hex) of `canonical_bytes(record)`: the one a cached record carries, else computed."""
    kept = getattr(record, _DIGEST, None)
    return kept if kept is not None else hashlib.sha256(canonical_bytes(record)).hexdigest()


def carrying_digest(record: Any, digest: str) -> Any:
    """`record`, carrying `digest` as its canonical SHA-256: only for a record rebuilt from the
    content the digest was computed over (the local ledger cache's head records)."""
    object.__setattr__(record, _DIGEST, digest)
    return record


def message(record: Any) -> bytes:
    """What KMS signs (RAW, with ECDSA_SHA_256): the format and the SHA-256 of the canonical bytes."""
    return f"{FORMAT}\nsha256:{canonical_sha256(record)}".encode("ascii")


def key_region(key: str, default: str) -> str:
    """The Region of a key given as an ARN; an id or alias is looked up in `default` (pure)."""
    parts = key.split(":")
    return parts[3] if key.startswith("arn:") and len(parts) > 5 else default


def _parse_time(iso: str) -> datetime | None:
    try:
        stamp = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None
    return stamp if stamp.tzinfo is not None else stamp.replace(tzinfo=timezone.utc)


def future_dated(record: Any, now: datetime) -> str:
    """Why `record` cannot be when it says it finished ("" when it can) (pure)."""
    stamp = _parse_time(record.finished_at)
    if stamp is None:
        return f"finished_at {record.finished_at!r} is not a time"
    if stamp > now + FUTURE_SKEW:
        return f"finished_at {record.finished_at} is in the future"
    return ""


# --- KMS -----------------------------------------------------------------------------------------

def _kms(region: str, environ: Mapping[str, str]) -> Any:
    from ..aws.clients import client
    from ..aws.sandbox import active_endpoint

    return client("kms", region, environ, active_endpoint(environ))


_ARNS: dict[tuple[str, str, str], str] = {}
_LOCK = threading.Lock()


def _key_arn(kms: Any, key: str, region: str) -> str:
    """The key's ARN (asked once per process): what a record names as its `signing_key`."""
    cache_key = (key, region, str(getattr(kms.meta, "endpoint_url", "")))
    with _LOCK:
        if cache_key not in _ARNS:
            meta = kms.describe_key(KeyId=key)["KeyMetadata"]
            if meta.get("KeyUsage") != "SIGN_VERIFY":
                raise SigningError(f"KMS key {key} is not a SIGN_VERIFY key (key usage {meta.get('KeyUsage')}); "
                                   "ledger_signing_key needs an asymmetric ECC_NIST_P256 signing key")
            _ARNS[cache_key] = str(meta["Arn"])
        return _ARNS[cache_key]


def sign(record: Any, key: str, region: str, environ: Mapping[str, str]) -> Any:
    """`record` with `signing_key`, `signature_alg` and `signature` set (KMS Sign). Raises SigningError."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        kms = _kms(region, environ)
        arn = _key_arn(kms, key, region)
        unsigned = replace(record, signing_key=arn, signature_alg=ALGORITHM, signature="")
        got = kms.sign(KeyId=arn, Message=message(unsigned), MessageType="RAW", SigningAlgorithm=ALGORITHM)
    except (BotoCoreError, ClientError) as exc:
        raise SigningError(f"cannot sign with ledger_signing_key {key} in {region}: {exc}") from None
    return replace(unsigned, signature=base64.b64encode(got["Signature"]).decode("ascii"))


def sign_or_warn(record: Any, key: str | None, region: str, environ: Mapping[str, str],
                 warn: Callable[[str], None]) -> Any:
    """The record signed when a key is set; unsigned (and said) when signing fails: the record of
    what Terraform did is never lost for want of a signature, it only cannot serve as evidence."""
    if not key:
        return record
    try:
        return sign(record, key, region, environ)
    except SigningError as exc:
        warn(f"{exc}; the ledger record of {record.cell} is written unsigned (it does not count as promotion "
             "evidence); grant kms:Sign on the key to this role")
        return record


# --- verifying -----------------------------------------------------------------------------------

@dataclass
class Trust:
    """Decides which records count, for one command. `key`: the configured key ("" for none)."""

    key: str = ""
    key_arn: str = ""
    public_key: Any = None  # a cryptography public key, or None: ask KMS Verify
    region: str = ""
    environ: Mapping[str, str] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    problem: str = ""  # why the key could not be used: every signed record is then unverified
    # `.tfdeploy/ledger-keys/<key>.verified`: digests of (message, signature) pairs that verified
    # before under this key, so a warm `status` verifies only records it has not seen.
    verified_file: Path | None = None
    _seen: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    _known: set[str] | None = field(default=None, repr=False)
    _new: list[str] = field(default_factory=list, repr=False)
    _asked: dict[int, tuple[Any, str]] = field(default_factory=dict, repr=False)

    @property
    def signed(self) -> bool:
        return bool(self.key)

    def why(self, record: Any) -> str:
        """Why `record` must not be trusted; "" when it may (pure but for the KMS fallback)."""
        # `status` asks twice about the records that decide a row (is the cached head enough,
        # then the row itself): the answer for this very object, kept with it so its id is not reused.
        asked = self._asked.get(id(record))
        if asked is not None and asked[0] is record:
            return asked[1]
        reason = self._why(record)
        self._asked[id(record)] = (record, reason)
        return reason

    def _why(self, record: Any) -> str:
        future = future_dated(record, self.now)
        if future:
            return future
        if not self.key:
            return ""
        if not record.signature:
            return UNSIGNED
        if self.problem:
            return f"cannot verify: {self.problem}"
        if record.signing_key != self.key_arn:
            return f"signed by another key ({record.signing_key or 'none named'}), not {self.key_arn}"
        if record.signature_alg != ALGORITHM:
            return f"signature algorithm {record.signature_alg or 'not named'} is not {ALGORITHM}"
        signed = message(record)
        memo = (record.signature, hashlib.sha256(signed).hexdigest())
        if memo not in self._seen:
            digest = hashlib.sha256(f"{memo[1]}\n{record.signature}".encode()).hexdigest()[:32]
            if digest in self._verified_before():
                self._seen[memo] = ""
                return ""
            try:
                good = self._valid(record.signature, signed)
            except SigningError as exc:  # KMS Verify could not be asked: not verified, and why
                return f"cannot verify: {exc}"
            self._seen[memo] = "" if good else "bad signature (changed after signing, or not signed by the key)"
            if good:
                self._new.append(digest)
        return self._seen[memo]

    def _verified_before(self) -> set[str]:
        if self._known is None:
            self._known = set()
            if self.verified_file is not None:
                try:
                    self._known = set(self.verified_file.read_text(encoding="ascii").split())
                except (OSError, ValueError):
                    pass
        return self._known

    def save(self) -> None:
        """Keep what verified in this command for the next one (the newest VERIFIED_KEEP); a
        cache that cannot be written only costs the next command its checks."""
        if self.verified_file is None or not self._new:
            return
        from ..results import write_atomic

        try:
            old = self.verified_file.read_text(encoding="ascii").split()
        except (OSError, ValueError):
            old = []
        kept = list(dict.fromkeys([*old, *self._new]))[-VERIFIED_KEEP:]
        try:
            write_atomic(self.verified_file, "\n".join(kept) + "\n")
        except OSError:
            pass
        self._new.clear()

    def verified(self, record: Any) -> bool | None:
        """True/False as `why` decides; None without a key for a record that is not future-dated
        (nothing was checked: unsigned, not marked)."""
        reason = self.why(record)
        if reason:
            return False
        return True if self.key else None

    def split(self, records: Iterable[Any]) -> tuple[list[Any], list[tuple[Any, str]]]:
        """(the records that count, the others with why), in the order given."""
        good, bad = [], []
        for record in records:
            reason = self.why(record)
            if reason:
                bad.append((record, reason))
            else:
                good.append(record)
        return good, bad

    def _valid(self, signature_b64: str, signed: bytes) -> bool:
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except (ValueError, TypeError):
            return False
        if self.public_key is not None:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import ec

            try:
                self.public_key.verify(signature, signed, ec.ECDSA(hashes.SHA256()))
                return True
            except (InvalidSignature, ValueError):
                return False
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return bool(_kms(self.region, self.environ).verify(
                KeyId=self.key_arn, Message=signed, MessageType="RAW", Signature=signature,
                SigningAlgorithm=ALGORITHM)["SignatureValid"])
        except ClientError as exc:
            if "InvalidSignature" in str(exc):  # KMSInvalidSignatureException: AWS's "no"
                return False
            raise SigningError(f"KMS Verify with {self.key_arn}: {exc}") from None
        except BotoCoreError as exc:
            raise SigningError(f"KMS Verify with {self.key_arn}: {exc}") from None

    def annotate(self, record: Any) -> dict[str, Any]:
        """The record as `--json` shows it: its fields, `verified` and, when false, `unverified` (why)."""
        data = record.to_dict()
        data["verified"] = self.verified(record)
        if data["verified"] is False:
            data["unverified"] = self.why(record)
        return data


def signing_key_of(settings: Sequence[Settings]) -> str:
    """The key records are verified with: the first settings' (the default branch's committed
    ones, gates/policy.py) that names one, so a tagged commit cannot swap in a key of its own
    where the repo has one (pure)."""
    return next((s.ledger_signing_key for s in settings if s.ledger_signing_key), "")


def requires_signed(settings: Sequence[Settings], env: str) -> bool:
    """Does any of `settings` (default branch's, tagged commit's) require signed evidence in `env` (pure)?"""
    return any(env in signed_evidence_envs(s) for s in settings)


_PUBLIC: dict[tuple[str, str, str], tuple[str, bytes]] = {}


def _cache_file(cache_dir: Path, key: str, region: str, endpoint: str) -> Path:
    name = hashlib.sha256(f"{key}\n{region}\n{endpoint}".encode()).hexdigest()[:24]
    return cache_dir / KEYS_DIR / f"{name}.json"


def _public_key(key: str, region: str, environ: Mapping[str, str], cache_dir: Path | None) -> tuple[str, bytes]:
    """(the key's ARN, its DER public key): from memory, `.tfdeploy/ledger-keys/`, else GetPublicKey once."""
    from ..aws.sandbox import active_endpoint

    endpoint = active_endpoint(environ) or ""
    memo = (key, region, endpoint)
    if memo in _PUBLIC:
        return _PUBLIC[memo]
    path = _cache_file(cache_dir, key, region, endpoint) if cache_dir is not None else None
    if path is not None:
        try:
            kept = json.loads(path.read_text(encoding="utf-8"))
            if kept.get("key") == key and kept.get("region") == region and kept.get("endpoint") == endpoint:
                _PUBLIC[memo] = (str(kept["arn"]), base64.b64decode(kept["public_key"]))
                return _PUBLIC[memo]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        kms = _kms(region, environ)
        arn = _key_arn(kms, key, region)
        got = kms.get_public_key(KeyId=arn)
    except (BotoCoreError, ClientError) as exc:
        raise SigningError(f"cannot read the public key of ledger_signing_key {key} in {region}: {exc}") from None
    if ALGORITHM not in (got.get("SigningAlgorithms") or [ALGORITHM]):
        raise SigningError(f"KMS key {key} does not sign with {ALGORITHM}; ledger_signing_key needs an "
                           "ECC_NIST_P256 SIGN_VERIFY key")
    _PUBLIC[memo] = (arn, bytes(got["PublicKey"]))
    if path is not None:
        from ..results import write_atomic

        try:
            write_atomic(path, json.dumps({"key": key, "region": region, "endpoint": endpoint, "arn": arn,
                                           "public_key": base64.b64encode(_PUBLIC[memo][1]).decode()}) + "\n")
        except OSError:
            pass  # only costs the next command one GetPublicKey
    return _PUBLIC[memo]


def trust_for(settings: Sequence[Settings], environ: Mapping[str, str], cache_dir: Path | None = None, *,
              strict: bool = True) -> Trust:
    """The Trust of a command reading the ledger under `settings` (working tree first).

    `strict`: a key that cannot be used raises SigningError (promotion refuses); otherwise the
    Trust keeps the problem and every record reads as unverified with it (status, history)."""
    key = signing_key_of(settings)
    if not key:
        return Trust()
    region = key_region(key, settings[0].state_region)
    try:
        arn, der = _public_key(key, region, environ, cache_dir)
    except SigningError as exc:
        if strict:
            raise
        return Trust(key=key, key_arn=key, region=region, environ=environ, problem=str(exc))
    try:
        from cryptography.hazmat.primitives.serialization import load_der_public_key

        public = load_der_public_key(der)
    except ImportError:
        public = None  # KMS Verify per record
    verified = None
    if cache_dir is not None:
        from ..aws.sandbox import active_endpoint

        verified = _cache_file(cache_dir, key, region, active_endpoint(environ) or "").with_suffix(".verified")
    return Trust(key=key, key_arn=arn, public_key=public, region=region, environ=environ, verified_file=verified)
