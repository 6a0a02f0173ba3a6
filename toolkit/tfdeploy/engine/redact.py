"""Hide what Terraform marks sensitive in the JSON documents tfdeploy prints or keeps (pure).

`terraform show -json` (of a plan or of the state) and `terraform output -json` carry sensitive
values in clear next to masks saying which they are; Terraform's own human output prints
`<sensitive>` instead. tfdeploy prints and writes these documents (plan --json, plan.json in the
results folder, show --json, output), so it applies the masks itself before anything leaves it.

Terraform's masks are not complete: a value derived from a sensitive one in a computed attribute
(e.g. `terraform_data.output` copying a sensitive `input`) is stored unmarked in the state, and
Terraform's own `show` prints it. So after masking, every other occurrence of a value that was
masked somewhere is scrubbed too (`scrub`, `scrub_text`).
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

SENSITIVE = "<sensitive>"
# Shorter masked values are not scrubbed inside longer strings: "on" or "1" would garble output.
MIN_SCRUB_LENGTH = 6


def mask(value: Any, sensitive: Any) -> Any:
    """`value` with every part `sensitive` marks (True, or a nested dict/list of marks) replaced."""
    if sensitive is True:
        return SENSITIVE if value is not None else None
    if isinstance(sensitive, dict) and isinstance(value, dict):
        return {k: mask(v, sensitive.get(k)) for k, v in value.items()}
    if isinstance(sensitive, list) and isinstance(value, list):
        return [mask(v, sensitive[i] if i < len(sensitive) else None) for i, v in enumerate(value)]
    return value


def masked_strings(value: Any, sensitive: Any) -> set[str]:
    """The string leaves of `value` that `sensitive` marks (pure)."""
    if sensitive is True:
        return _leaves(value)
    found: set[str] = set()
    if isinstance(sensitive, dict) and isinstance(value, dict):
        for k, v in value.items():
            found |= masked_strings(v, sensitive.get(k))
    elif isinstance(sensitive, list) and isinstance(value, list):
        for i, v in enumerate(value):
            found |= masked_strings(v, sensitive[i] if i < len(sensitive) else None)
    return found


def _leaves(value: Any) -> set[str]:
    if isinstance(value, str):
        return {value} if value else set()
    if isinstance(value, dict):
        return set().union(*(_leaves(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_leaves(v) for v in value)) if value else set()
    return set()


def scrub_text(text: str, secrets: set[str]) -> str:
    """`text` with every occurrence of a known sensitive value replaced (pure)."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= MIN_SCRUB_LENGTH:
            text = text.replace(secret, SENSITIVE)
    return text


def scrub(value: Any, secrets: set[str]) -> Any:
    """`value` with strings equal to, or containing, a known sensitive value replaced (pure)."""
    if isinstance(value, str):
        return SENSITIVE if value in secrets else scrub_text(value, secrets)
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, secrets) for v in value]
    return value


def _outputs(outputs: Mapping[str, Any] | None, found: set[str]) -> None:
    for item in (outputs or {}).values():
        if isinstance(item, dict) and item.get("sensitive") and "value" in item:
            found |= _leaves(item["value"])
            item["value"] = SENSITIVE


def _module(module: Mapping[str, Any] | None, found: set[str]) -> None:
    """A `values` module tree: resources carry `values` and a `sensitive_values` mask."""
    if not module:
        return
    for resource in module.get("resources") or []:
        if "values" in resource:
            found |= masked_strings(resource["values"], resource.get("sensitive_values"))
            resource["values"] = mask(resource["values"], resource.get("sensitive_values"))
    for child in module.get("child_modules") or []:
        _module(child, found)


def _values(doc: Mapping[str, Any] | None, found: set[str]) -> None:
    if doc:
        _outputs(doc.get("outputs"), found)
        _module(doc.get("root_module"), found)


def _change(change: dict[str, Any], found: set[str]) -> None:
    for side in ("before", "after"):
        found |= masked_strings(change.get(side), change.get(f"{side}_sensitive"))
        change[side] = mask(change.get(side), change.get(f"{side}_sensitive"))


def _sensitive_variables(config_module: Mapping[str, Any] | None) -> set[str]:
    variables = (config_module or {}).get("variables") or {}
    return {name for name, spec in variables.items() if isinstance(spec, dict) and spec.get("sensitive")}


def redact_show(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A redacted copy of `terraform show -json` output, of a saved plan or of the state."""
    return _redact(doc)[0]


def sensitive_values(doc: Mapping[str, Any]) -> set[str]:
    """Every string value `terraform show -json` output marks sensitive somewhere."""
    return _redact(doc)[1]


def _redact(doc: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
    out = copy.deepcopy(dict(doc))
    found: set[str] = set()
    _values(out.get("values"), found)  # state
    _values(out.get("planned_values"), found)  # plan
    _values((out.get("prior_state") or {}).get("values"), found)
    for key in ("resource_changes", "resource_drift"):
        for rc in out.get(key) or []:
            if isinstance(rc.get("change"), dict):
                _change(rc["change"], found)
    for change in (out.get("output_changes") or {}).values():
        if isinstance(change, dict):
            _change(change, found)
    root_config = (out.get("configuration") or {}).get("root_module")
    secret_vars = _sensitive_variables(root_config)
    for name, item in (out.get("variables") or {}).items():
        if name in secret_vars and isinstance(item, dict) and "value" in item:
            found |= _leaves(item["value"])
            item["value"] = SENSITIVE
    for name in secret_vars:
        spec = root_config["variables"][name]
        if "default" in spec:
            found |= _leaves(spec["default"])
            spec["default"] = SENSITIVE
    return scrub(out, found), found


def redact_outputs(outputs: Mapping[str, Any]) -> dict[str, Any]:
    """A redacted copy of `terraform output -json`."""
    out = copy.deepcopy(dict(outputs))
    found: set[str] = set()
    _outputs(out, found)
    return scrub(out, found)
