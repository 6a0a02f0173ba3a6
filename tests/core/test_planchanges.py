"""engine/planchanges.py: a saved plan's resource changes and drift, read from the plan file
in `terraform show -json`'s shape (pure: a hand-built `tfplan` message; the end-to-end check
against real Terraform's `show -json` is in tests/fleetstate/test_drift.py)."""

from __future__ import annotations

import msgpack

from tfdeploy.engine.planchanges import parse_changes
from tfdeploy.engine.redact import redact_show
from tfdeploy.fleet.drift import differing_resources


def _varint(n: int) -> bytes:
    out = b""
    while True:
        byte, n = n & 0x7F, n >> 7
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def _len(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _dynamic(value) -> bytes:
    return _len(1, msgpack.packb(value, use_bin_type=True))


def _path(*steps) -> bytes:
    return b"".join(_len(1, _len(1, s.encode()) if isinstance(s, str) else _len(2, _dynamic(s))) for s in steps)


def _change(addr: str, action: int, values: list, before_sensitive=(), after_sensitive=()) -> bytes:
    change = (_varint(1 << 3) + _varint(action)) + b"".join(_len(2, _dynamic(v)) for v in values)
    change += b"".join(_len(3, _path(*p)) for p in before_sensitive)
    change += b"".join(_len(4, _path(*p)) for p in after_sensitive)
    return _len(13, addr.encode()) + _len(9, change)


UNKNOWN = msgpack.ExtType(0, b"")


def test_changes_and_drift_in_show_json_shape_with_unknowns_and_sensitive_paths():
    before = {"tags": None, "names": ["a", "secret-one"], "input": [b'"string"', "x"], "id": "i-1"}
    after = {"tags": {}, "names": ["a", "secret-two"], "input": [b'"string"', "y"], "id": UNKNOWN}
    plan = (_len(3, _change("module.regional.aws_x.a", 3, [before, after], [("names", 1)], [("names", 1)]))
            + _len(3, _change("module.regional.aws_x.new", 1, [{"id": UNKNOWN, "n": 1}]))
            + _len(3, _change("module.regional.aws_x.same", 0, [{"id": "s"}]))
            + _len(18, _change("module.regional.aws_x.a", 3, [{**before, "input": [b'"string"', "w"]}, before]))
            + _len(14, b"1.15.5"))
    found = parse_changes(plan)
    [updated, created, same] = found["resource_changes"]
    assert updated["address"] == "module.regional.aws_x.a" and updated["change"]["actions"] == ["update"]
    # Dynamically typed values lose their type header; an unknown is left out of `after`, True in after_unknown.
    assert updated["change"]["before"] == {"tags": None, "names": ["a", "secret-one"], "input": "x", "id": "i-1"}
    assert updated["change"]["after"] == {"tags": {}, "names": ["a", "secret-two"], "input": "y"}
    assert updated["change"]["after_unknown"] == {"id": True}
    assert updated["change"]["after_sensitive"] == {"names": [False, True]}
    assert created["change"]["actions"] == ["create"] and created["change"]["before"] is None
    assert created["change"]["after"] == {"n": 1} and created["change"]["after_unknown"] == {"id": True}
    assert same["change"]["actions"] == ["no-op"] and same["change"]["before"] == same["change"]["after"]
    [drift] = found["resource_drift"]
    assert drift["change"]["before"]["input"] == "w" and drift["change"]["after"]["input"] == "x"

    resources = {r["address"]: r for r in differing_resources(found, redact_show(found))}
    assert sorted(resources) == ["module.regional.aws_x.a", "module.regional.aws_x.new"]
    resource = resources["module.regional.aws_x.a"]
    assert (resource["action"], resource["outside"]) == ("update", "update")
    # tags: null vs {} is no difference; id: unknown is no evidence; the sensitive list is hidden.
    assert sorted(resource["attributes"]) == ["input", "names"]
    assert resource["attributes"]["names"]["actual"] == ["a", "<sensitive>"]
    assert "secret" not in repr(redact_show(found))
