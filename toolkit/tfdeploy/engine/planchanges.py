"""What a saved plan says changes, read from the plan file itself: no `terraform show -json`.

A drift check needs the refreshed plan's resource changes and detected drift with their
attribute values. `terraform show -json PLAN` would give them, but it is one more Terraform
process, and with a real provider every process loads the provider's schema (seconds of CPU per
cell). The plan file already holds them: its `tfplan` protobuf entry (planfile.py reads the
wire format) has `resource_changes` (field 3) and `resource_drift` (field 18), each change
carrying its action, its msgpack-encoded values and the paths Terraform marks sensitive.

The result has the shape of `terraform show -json`'s `resource_changes` / `resource_drift`
(address, change.actions/before/after/after_unknown/before_sensitive/after_sensitive), so the
same pure functions (fleet/drift.py differing_resources, engine/redact.py) work on either.
Values are decoded without the provider schema: cty's msgpack writes objects as maps keyed by
attribute name, lists and sets as arrays, dynamically typed values as [type JSON, value], and
an unknown value as extension 0 (or 12, with refinements).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .planfile import _first, fields, read_tfplan

_PLAN_RESOURCE_CHANGES, _PLAN_RESOURCE_DRIFT = 3, 18
_RIC_ADDR, _RIC_DEPOSED, _RIC_CHANGE = 13, 7, 9
_CHANGE_ACTION, _CHANGE_VALUES, _CHANGE_BEFORE_SENSITIVE, _CHANGE_AFTER_SENSITIVE = 1, 2, 3, 4
_DYNAMIC_MSGPACK = 1
_PATH_STEPS, _STEP_ATTRIBUTE, _STEP_KEY = 1, 1, 2

# planfile.proto `Action` -> the action list `terraform show -json` prints.
ACTIONS = {0: ["no-op"], 1: ["create"], 2: ["read"], 3: ["update"], 5: ["delete"],
           6: ["delete", "create"], 7: ["create", "delete"], 8: ["forget"], 9: ["create", "forget"]}


class _Unknown:
    """A value known only after apply (msgpack extension)."""

    def __repr__(self) -> str:
        return "<unknown>"


UNKNOWN = _Unknown()


def _unwrap(value: Any) -> Any:
    """msgpack-decoded cty value -> plain Python; dynamically typed parts lose their type header."""
    if isinstance(value, list):
        if len(value) == 2 and isinstance(value[0], bytes):
            return _unwrap(value[1])
        return [_unwrap(v) for v in value]
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def decode_value(dynamic: bytes | None) -> Any:
    """A `DynamicValue` message -> Python, unknown parts as UNKNOWN (pure)."""
    import msgpack

    payload = _first(dynamic, _DYNAMIC_MSGPACK) if dynamic else None
    if payload is None:
        return None
    return _unwrap(msgpack.unpackb(payload, raw=False, strict_map_key=False, ext_hook=lambda _c, _d: UNKNOWN))


def _known(value: Any) -> Any:
    """`value` as show -json's `after` prints it: unknown attributes left out, other unknown
    parts null (after_unknown says which they are)."""
    if value is UNKNOWN:
        return None
    if isinstance(value, dict):
        return {k: _known(v) for k, v in value.items() if v is not UNKNOWN}
    if isinstance(value, list):
        return [_known(v) for v in value]
    return value


def _unknown_marks(value: Any) -> Any:
    """show -json's `after_unknown`: True where a value is unknown, nested like the value."""
    if value is UNKNOWN:
        return True
    if isinstance(value, dict):
        marks = {k: _unknown_marks(v) for k, v in value.items()}
        return {k: m for k, m in marks.items() if m not in (False, {}, [])}
    if isinstance(value, list):
        marks = [_unknown_marks(v) for v in value]
        # Nothing unknown inside: False, not [False, ...] (a non-empty list would read as "unknown").
        return marks if any(m not in (False, {}, []) for m in marks) else False
    return False


def _path(data: bytes) -> list[Any]:
    """A `Path` message -> its steps: attribute names and element keys (str or int)."""
    steps: list[Any] = []
    for number, _wire, step in fields(data):
        if number != _PATH_STEPS:
            continue
        name = _first(step, _STEP_ATTRIBUTE)
        if name is not None:
            steps.append(name.decode("utf-8"))
        else:
            steps.append(decode_value(_first(step, _STEP_KEY)))
    return steps


def _mark(marks: Any, value: Any, steps: list[Any]) -> Any:
    """`marks` (show -json's *_sensitive shape for `value`) with the part at `steps` marked True."""
    if not steps:
        return True
    head, rest = steps[0], steps[1:]
    if isinstance(value, list) and isinstance(head, int):
        marks = marks if isinstance(marks, list) else [False] * len(value)
        if 0 <= head < len(marks):
            marks[head] = _mark(marks[head], value[head], rest)
        return marks
    if isinstance(value, dict) and isinstance(head, str):
        marks = marks if isinstance(marks, dict) else {}
        marks[head] = _mark(marks.get(head), value.get(head), rest)
        return marks
    return True  # a path into a value we cannot follow: hide the whole of it


def _sensitive(paths: list[list[Any]], value: Any) -> Any:
    marks: Any = {} if isinstance(value, dict) else False
    for steps in paths:
        marks = _mark(marks, value, steps)
    return marks


def _change(data: bytes) -> dict[str, Any]:
    action = 0
    values: list[Any] = []
    before_paths: list[list[Any]] = []
    after_paths: list[list[Any]] = []
    for number, wire, value in fields(data):
        if number == _CHANGE_ACTION and wire == 0:
            action = value
        elif number == _CHANGE_VALUES:
            values.append(decode_value(value))
        elif number == _CHANGE_BEFORE_SENSITIVE:
            before_paths.append(_path(value))
        elif number == _CHANGE_AFTER_SENSITIVE:
            after_paths.append(_path(value))
    actions = ACTIONS.get(action, [f"action-{action}"])
    # planfile.proto: create has [after], delete [before], no-op [value], the others [before, after].
    if actions == ["create"]:
        before, after = None, (values[0] if values else None)
    elif actions in (["delete"], ["forget"]):
        before, after = (values[0] if values else None), None
    elif len(values) == 1:
        before = after = values[0]
    else:
        before, after = (values + [None, None])[:2]
    return {"actions": actions, "before": _known(before), "after": _known(after),
            "after_unknown": _unknown_marks(after) if after is not None else {},
            "before_sensitive": _sensitive(before_paths, before),
            "after_sensitive": _sensitive(after_paths, after)}


def _resource_change(data: bytes) -> dict[str, Any] | None:
    address = _first(data, _RIC_ADDR)
    change = _first(data, _RIC_CHANGE)
    if address is None:
        return None
    found = {"address": address.decode("utf-8"), "change": _change(change or b"")}
    deposed = _first(data, _RIC_DEPOSED)
    if deposed:
        found["deposed"] = deposed.decode("utf-8")
    return found


def parse_changes(data: bytes) -> dict[str, list[dict[str, Any]]]:
    """The `tfplan` message -> {"resource_changes": [...], "resource_drift": [...]} (pure)."""
    out: dict[str, list[dict[str, Any]]] = {"resource_changes": [], "resource_drift": []}
    for number, wire, value in fields(data):
        if wire != 2 or number not in (_PLAN_RESOURCE_CHANGES, _PLAN_RESOURCE_DRIFT):
            continue
        found = _resource_change(value)
        if found is not None:
            out["resource_changes" if number == _PLAN_RESOURCE_CHANGES else "resource_drift"].append(found)
    return out


def read_changes(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The resource changes and drift a saved plan file holds, shaped like `terraform show -json`."""
    return read_tfplan(path, parse_changes, "run the drift check again")
