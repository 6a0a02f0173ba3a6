"""What a parsed Terraform file refers to (pure): its module calls, and the root-level guard
rails (variable validations, `check` blocks) with the names their expressions mention.

Works on `model/hcl.py`'s values: attributes as values (expressions as `${...}` text), blocks as
lists of `{label: body}`. Expressions are read as text for references (`var.x`, `module.y`,
`local.z`), not evaluated: enough to tell what a module call's inputs or a check's condition
depend on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Mapping

LOCAL_PREFIXES = ("./", "../")
# `var.NAME`, `local.NAME`, `module.NAME`, `data.TYPE.NAME`, `TYPE.NAME` (resources): the first two
# parts of a traversal. A preceding word character or dot is part of another traversal.
_OBJECTS = frozenset({"var", "local", "module", "data", "path", "terraform", "count", "each", "self"})
_TRAVERSAL = re.compile(r"(?<![\w.])([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)(?:\.([A-Za-z_][\w-]*))?")


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


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield str(key)
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)


def references(value: Any) -> frozenset[str]:
    """The objects an expression (or a whole body) refers to, as Terraform addresses: `var.x`,
    `local.y`, `module.z`, `data.t.n`, `t.n` (pure; string literals may add false positives,
    which only ever make a reference look present)."""
    found: set[str] = set()
    for text in _strings(value):
        for kind, name, third in _TRAVERSAL.findall(text):
            if kind in _OBJECTS or "_" in kind:  # a resource type has one (aws_s3_bucket); "e.g" has not
                found.add(f"data.{name}.{third}" if kind == "data" and third else f"{kind}.{name}")
    return frozenset(found)


@dataclass(frozen=True)
class RootCheck:
    """A root-level guard rail: a variable's `validation` or a `check` block."""

    kind: str  # "validation" or "check"
    name: str  # the variable's or the check's name
    refs: frozenset[str]  # what its conditions and messages refer to
    has_data: bool = False  # a check with its own (scoped) data source

    @property
    def address(self) -> str:
        return f"var.{self.name}" if self.kind == "validation" else f"check.{self.name}"


def root_checks(parsed_files: Iterable[Mapping[str, Any]]) -> list[RootCheck]:
    """Every variable with a `validation` block and every `check` block in a module's files."""
    found: list[RootCheck] = []
    for parsed in parsed_files:
        for block in parsed.get("variable", []):
            for name, body in block.items():
                validations = body.get("validation", []) if isinstance(body, dict) else []
                if validations:
                    found.append(RootCheck("validation", str(name), references(validations)))
        for block in parsed.get("check", []):
            for name, body in block.items():
                asserts = body.get("assert", []) if isinstance(body, dict) else []
                found.append(RootCheck("check", str(name), references(asserts),
                                       has_data=bool(isinstance(body, dict) and body.get("data"))))
    return found
