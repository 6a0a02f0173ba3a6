"""Parse HCL (`.tf`, `.tfvars`) with whichever `hcl2` module is importable, giving one result.

Two distributions install a top-level `hcl2` package: python-hcl2 8.x (tfdeploy's dependency) and
bc-python-hcl2 (checkov's pinned fork of python-hcl2 0.3). Installed into one environment, the one
installed last owns `hcl2/__init__.py`, `parser.py` and `transformer.py` — so a user who runs
`pip install tfdeploy-toolkit checkov` usually gets bc-python-hcl2's API. Both parse with lark
and build the same tree shape (`body` / `attribute` / `identifier`), so:

- duplicate attributes are found on the lark tree, the same way for both;
- the tree becomes plain values through the installed library's transformer; bc-python-hcl2 wraps
  every attribute value in a list (a body may repeat a name) — here a duplicate is already an
  error, so attributes are unwrapped and only blocks stay lists, as python-hcl2 8.x gives them
  with `explicit_blocks=False`. Strings come unquoted and unescaped, bare names (`string`) as
  is, negative numbers as numbers, other expressions as `${...}` text, in both. Expression text
  may still be spelled differently (bc-python-hcl2 drops parentheses): tfdeploy reads only
  literal values (tfvars allow nothing else) and the block structure of `.tf` files.

Nothing else in tfdeploy imports `hcl2`.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from ..errors import ConfigError

PYTHON_HCL2 = "python-hcl2"
BC_PYTHON_HCL2 = "bc-python-hcl2"
_LINE_KEYS = ("__start_line__", "__end_line__")  # bc-python-hcl2's block positions
# python-hcl2 builds its lark parser on first use behind an lru_cache, which lets threads that
# ask at once each build one (~85 ms of CPU apiece): a fan-out's cells do on a cold cache.
_PARSER_BUILT = threading.Lock()
# python-hcl2 8.x serialises with ONE shared default SerializationContext (a mutable default
# argument) that a `${...}` flips while it is serialised: a string serialised meanwhile in another
# thread keeps its quotes. A fan-out's cells read their tfvars at once, so serialising is serial.
_SERIALISING = threading.Lock()


def flavor() -> str:
    """Which library the importable `hcl2` module is: `python-hcl2` (8.x API) or `bc-python-hcl2`."""
    try:
        import hcl2
    except ImportError:
        raise ConfigError("no hcl2 module is installed; reinstall the toolkit "
                          "(pip install --force-reinstall 'python-hcl2>=8,<9')") from None
    if hasattr(hcl2, "SerializationOptions") and hasattr(hcl2, "parses_to_tree"):
        return PYTHON_HCL2
    try:
        from hcl2.parser import hcl2 as parser  # bc-python-hcl2 (and python-hcl2 < 5)
        from hcl2.transformer import DictTransformer  # noqa: F401
        parser.lark_parser  # noqa: B018
    except (ImportError, AttributeError):
        raise ConfigError(f"the hcl2 module at {getattr(hcl2, '__file__', '?')} is neither python-hcl2 8 "
                          "nor bc-python-hcl2; reinstall it: pip install --force-reinstall "
                          "'python-hcl2>=8,<9'") from None
    return BC_PYTHON_HCL2


def describe() -> str:
    """One line for `doctor`: which hcl2 is importable and which distributions claim it."""
    from importlib import metadata

    installed = []
    for dist in (PYTHON_HCL2, BC_PYTHON_HCL2):
        try:
            installed.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    try:
        used = flavor()
    except ConfigError as exc:
        used = f"unusable ({exc})"
    return f"{used} (installed: {', '.join(installed) or 'none'})"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _parse_tree(kind: str, text: str) -> Any:
    if kind == PYTHON_HCL2:
        import hcl2
        from hcl2.parser import parser

        with _PARSER_BUILT:
            parser()  # built once; later calls return the cached one
        return hcl2.parses_to_tree(text)
    from hcl2.parser import hcl2 as parser
    # bc-python-hcl2's grammar needs a final newline (its own loads() appends one too).
    return parser.lark_parser.parse(text + "\n")


def _to_values(kind: str, tree: Any) -> dict[str, Any]:
    if kind == PYTHON_HCL2:
        import hcl2
        options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False,
                                            with_comments=False, preserve_heredocs=False)
        with _SERIALISING:
            return hcl2.serialize(hcl2.transform(tree), serialization_options=options)
    return _strip_lines(_bc_transformer()().transform(tree))


class _Attribute(dict):
    """Marks an attribute's {name: value} so a body can tell it from a block."""


class _Name(str):
    """A bare identifier (`type = string`): python-hcl2 8.x gives it as is, not as `${string}`."""


_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}
_ESCAPE_RE = re.compile(r'\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[nrt"\\])')


def _unescape(text: str) -> str:
    """HCL string escapes, decoded as python-hcl2 8.x decodes them (`$${` stays as written)."""
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        return chr(int(code[1:], 16)) if code[0] in "uU" else _ESCAPES[code]
    return _ESCAPE_RE.sub(one, text)


def _literal(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)


def _bc_transformer() -> type:
    from hcl2.transformer import DictTransformer, Heredoc

    class Flat(DictTransformer):  # type: ignore[misc, valid-type]
        def attribute(self, args: list) -> dict[str, Any]:
            return _Attribute(super().attribute(args))

        def identifier(self, value: list) -> str:
            return _Name(str(value[0]))

        def to_string_dollar(self, value: Any) -> Any:
            if isinstance(value, _Name):
                return str(value)
            result = super().to_string_dollar(value)
            quoted = isinstance(value, str) and value.startswith('"') and result == value[1:-1]
            return _unescape(result) if quoted and not isinstance(value, Heredoc) else result

        def unary_op(self, args: list) -> Any:
            if len(args) == 2 and args[0] == "-" and type(args[1]) in (int, float):
                return -args[1]  # a negative number literal, as python-hcl2 8.x gives it
            return "".join(_literal(arg) for arg in args)

        def body(self, args: list) -> dict[str, Any]:
            result: dict[str, Any] = {}
            for arg in self.strip_new_line_tokens(args):
                for key, value in arg.items():
                    if isinstance(arg, _Attribute):
                        result[str(key)] = value  # unique: duplicates were refused on the tree
                    else:
                        result.setdefault(str(key), []).append(value)
            return result

    return Flat


def _strip_lines(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_lines(v) for k, v in value.items() if k not in _LINE_KEYS}
    if isinstance(value, list):
        return [_strip_lines(v) for v in value]
    return value


def refuse_redefined_attributes(tree: Any, source: str) -> None:
    """Raise ConfigError for the first attribute set twice in one body of a lark parse tree."""
    for body in tree.iter_subtrees_topdown():
        if body.data != "body":
            continue
        first_seen: dict[str, int] = {}
        for child in body.children:
            if getattr(child, "data", None) != "attribute":
                continue
            token = child.children[0].children[0]
            name, line = str(token), getattr(token, "line", 0)
            if name in first_seen:
                raise ConfigError(
                    f"{source}: line {line}: attribute {name!r} is already set on line "
                    f"{first_seen[name]} (Terraform: Attribute redefined); keep one of them"
                )
            first_seen[name] = line


def loads(text: str, source: str) -> dict[str, Any]:
    """Parse HCL text into plain Python values, the same whichever hcl2 library is installed.

    Attributes map to values (strings unquoted, expressions as `${...}`), blocks to lists of
    `{label: {label: body}}`. An attribute set twice in one body is an error naming the key and
    lines, as in Terraform; invalid HCL is one line naming `source`. Successful parses are
    remembered (`model/parsecache.py`).
    """
    from .parsecache import cached_parse

    return cached_parse(text, lambda body: _parse(body, source))


def _parse(text: str, source: str) -> dict[str, Any]:
    kind = flavor()
    try:
        tree = _parse_tree(kind, text)
    except Exception as exc:  # lark raises errors of several types
        raise ConfigError(f"{source}: not valid HCL ({_first_line(exc)}); fix the file") from None
    refuse_redefined_attributes(tree, source)
    try:
        return _to_values(kind, tree)
    except Exception as exc:
        raise ConfigError(f"{source}: not valid HCL ({_first_line(exc)}); fix the file") from None


def top_level_block_lines(text: str, source: str) -> list[tuple[int, int]]:
    """(first line, last line), 1-based, of each top-level block of HCL text, in order, from the
    parser's own positions (either hcl2 library); invalid HCL is one line naming `source`."""
    loads(text, source)  # the same refusals as every parse (invalid HCL, a redefined attribute)
    tree = _parse_tree(flavor(), text)
    body = next((t for t in tree.iter_subtrees_topdown() if t.data == "body"), None)
    spans = []
    for child in getattr(body, "children", []):
        if getattr(child, "data", None) == "block":
            spans.append((child.meta.line, child.meta.end_line))
    return spans
