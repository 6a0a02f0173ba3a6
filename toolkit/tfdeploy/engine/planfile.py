"""What a saved Terraform plan file itself says: its backend, variables and changed addresses.

A plan file carries its own backend configuration and `terraform apply PLANFILE` uses it, not the
work dir's. So the only trustworthy answer to "which state will this plan write?" is inside the
file. The file is a zip; its `tfplan` entry is a protobuf `tfplan.Plan` message (Terraform's
`internal/plans/planproto/planfile.proto`); values inside are msgpack-encoded `DynamicValue`s.

Only the few fields tfdeploy checks are read, with a minimal protobuf wire-format reader: varints
and length-delimited fields are all these messages use. Unknown fields are skipped, as protobuf
readers must.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from ..errors import ValidationError

T = TypeVar("T")

# Field numbers from planfile.proto.
_PLAN_VARIABLES = 2  # map<string, DynamicValue>
_PLAN_RESOURCE_CHANGES = 3  # repeated ResourceInstanceChange
_PLAN_BACKEND = 13  # Backend
_PLAN_TERRAFORM_VERSION = 14
_MAP_KEY, _MAP_VALUE = 1, 2
_DYNAMIC_MSGPACK = 1
_BACKEND_TYPE, _BACKEND_CONFIG, _BACKEND_WORKSPACE = 1, 2, 3
_CHANGE_ADDR = 13  # ResourceInstanceChange.addr

_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_I32 = 0, 1, 2, 5

# A plan of a few thousand resources is a few MB; this bounds what a hostile file can make us read.
MAX_TFPLAN_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class PlanContent:
    backend_type: str
    backend_config: dict[str, Any]
    workspace: str
    variables: dict[str, Any]
    changed_addresses: tuple[str, ...]
    terraform_version: str = ""
    unreadable_variables: tuple[str, ...] = field(default=())


class _Malformed(Exception):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise _Malformed("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value) of one protobuf message; LEN values are bytes (pure)."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == _WIRE_VARINT:
            value, pos = _varint(data, pos)
        elif wire == _WIRE_LEN:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise _Malformed("truncated field")
            value, pos = data[pos:pos + length], pos + length
        elif wire == _WIRE_I64:
            value, pos = data[pos:pos + 8], pos + 8
        elif wire == _WIRE_I32:
            value, pos = data[pos:pos + 4], pos + 4
        else:
            raise _Malformed(f"unsupported wire type {wire}")
        yield number, wire, value


def _first(data: bytes, number: int) -> bytes | None:
    return next((v for n, w, v in fields(data) if n == number and w == _WIRE_LEN), None)


def _dynamic(data: bytes | None) -> Any:
    """A DynamicValue's msgpack payload -> Python; unknown values (ext 0) -> None."""
    import msgpack

    payload = _first(data, _DYNAMIC_MSGPACK) if data else None
    if payload is None:
        return None
    value = msgpack.unpackb(payload, raw=False, strict_map_key=False, ext_hook=lambda code, _: None)
    # Root variables are stored dynamically typed: [type as JSON bytes, value].
    if isinstance(value, list) and len(value) == 2 and isinstance(value[0], bytes):
        return value[1]
    return value


def parse_tfplan(data: bytes) -> PlanContent:
    """The `tfplan` protobuf message -> PlanContent (pure)."""
    backend = b""
    variables: dict[str, Any] = {}
    unreadable: list[str] = []
    addresses: list[str] = []
    version = ""
    for number, wire, value in fields(data):
        if wire != _WIRE_LEN:
            continue
        if number == _PLAN_BACKEND:
            backend = value
        elif number == _PLAN_VARIABLES:
            name = (_first(value, _MAP_KEY) or b"").decode("utf-8")
            try:
                variables[name] = _dynamic(_first(value, _MAP_VALUE))
            except ValueError:  # a value msgpack cannot decode; only named variables are compared
                unreadable.append(name)
        elif number == _PLAN_RESOURCE_CHANGES:
            addr = _first(value, _CHANGE_ADDR)
            if addr is not None:
                addresses.append(addr.decode("utf-8"))
        elif number == _PLAN_TERRAFORM_VERSION:
            version = value.decode("utf-8")
    config = _dynamic(_first(backend, _BACKEND_CONFIG)) if backend else None
    return PlanContent(
        backend_type=(_first(backend, _BACKEND_TYPE) or b"").decode("utf-8"),
        backend_config=config if isinstance(config, dict) else {},
        workspace=(_first(backend, _BACKEND_WORKSPACE) or b"").decode("utf-8"),
        variables=variables,
        changed_addresses=tuple(addresses),
        terraform_version=version,
        unreadable_variables=tuple(unreadable),
    )


def read_tfplan(path: Path, parse: Callable[[bytes], T], again: str) -> T:
    """`parse` of a saved plan file's `tfplan` entry; a file that is not a readable plan is refused
    in one line ending with `again` (what to run)."""
    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("tfplan")
            if info.file_size > MAX_TFPLAN_BYTES:
                raise _Malformed(f"tfplan entry is {info.file_size} bytes")
            data = archive.read(info)
        return parse(data)
    except (OSError, KeyError, zipfile.BadZipFile, _Malformed, UnicodeDecodeError, ValueError) as exc:
        raise ValidationError(f"{path} is not a readable Terraform plan ({exc}); {again}") from None


def read_plan(path: Path) -> PlanContent:
    """Read a saved plan file's own content; a file that is not a readable plan is refused."""
    return read_tfplan(path, parse_tfplan, "run tfdeploy plan again")


def mismatches(plan: PlanContent, *, bucket: str, key: str, region: str,
               variables: dict[str, str], namespace: str) -> list[str]:
    """Where a plan's own content disagrees with the cell it is about to be applied to (pure).

    Variables the plan does not record (a configuration that declares none of them) are not
    compared; the backend check alone already pins the state object.
    """
    found: list[str] = []
    if plan.backend_type != "s3":
        found.append(f"its backend is {plan.backend_type or 'none'!r}, not s3")
    else:
        cfg = plan.backend_config
        want = {"bucket": bucket, "key": key, "region": region}
        wrong = {k: cfg.get(k) for k, v in want.items() if cfg.get(k) != v}
        if wrong:
            found.append("it writes state to s3://{}/{} ({})".format(
                cfg.get("bucket"), cfg.get("key"), cfg.get("region")))
        if cfg.get("workspace_key_prefix"):
            found.append(f"its backend has workspace_key_prefix {cfg['workspace_key_prefix']!r}")
    if plan.workspace != "default":
        found.append(f"it was made in workspace {plan.workspace!r}, not default")
    for name, expected in variables.items():
        if name in plan.variables and plan.variables[name] != expected:
            found.append(f"its variable {name} is {plan.variables[name]!r}, not {expected!r}")
    outside = [a for a in plan.changed_addresses if not a.startswith(namespace + ".")]
    if outside:
        found.append(f"it changes {outside[0]} outside {namespace}"
                     + (f" (and {len(outside) - 1} more)" if len(outside) > 1 else ""))
    return found
