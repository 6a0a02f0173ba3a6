"""What a parsed Terraform file refers to (pure): its module calls.

Works on `model/hcl.py`'s values: attributes as values (expressions as `${...}` text), blocks as
lists of `{label: body}`.
"""

from __future__ import annotations

from typing import Any, Mapping

LOCAL_PREFIXES = ("./", "../")


def module_calls(parsed: Mapping[str, Any]) -> dict[str, str]:
    """Module call name -> its `source` (a string, or "" when not a literal)."""
    calls: dict[str, str] = {}
    for block in parsed.get("module", []):
        for name, body in block.items():
            source = body.get("source") if isinstance(body, dict) else None
            calls[str(name)] = source if isinstance(source, str) else ""
    return calls


def is_local_source(source: str) -> bool:
    """A module source Terraform reads from the same tree (./ or ../), not a registry or git."""
    return source.startswith(LOCAL_PREFIXES)
