"""Parsed HCL, remembered: the parse of a text is a pure function of the text and the parser.

Loading python-hcl2 and its lark grammar costs about 85 ms, more than a small cell's whole
`terraform plan`; a cell reads the same few tfvars files in every command. So each successful
parse is kept in this process and on disk under the user state dir (`hcl-cache/`), keyed by the
text's SHA-256 and a fingerprint of the parser code (the `hcl2` package and tfdeploy's own
`model/hcl.py`, by path, size and mtime), so a reinstalled or swapped `hcl2` never reuses an
older parser's values. Errors are never cached: a bad file is parsed, and reported, every time.
The cache is best effort: a file that cannot be read or written is a miss, never an error.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

FORMAT = 1
_memo: dict[str, dict[str, Any]] = {}
_fingerprint: list[str] = []


def parser_fingerprint() -> str:
    """Path, size and mtime of the parser code, found without importing `hcl2` (cached)."""
    if not _fingerprint:
        import importlib.util

        parts = [str(FORMAT)]
        spec = importlib.util.find_spec("hcl2")
        origin = Path(spec.origin) if spec and spec.origin else None
        files = [Path(__file__).with_name("hcl.py")]
        if origin is not None:
            files += [origin, origin.with_name("parser.py"), origin.with_name("transformer.py")]
        for path in files:
            try:
                st = path.stat()
                parts.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                parts.append(f"{path}:-")
        _fingerprint.append(hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16])
    return _fingerprint[0]


def cache_dir(environ: Mapping[str, str] = os.environ) -> Path:
    from ..paths import user_state_dir

    return user_state_dir(environ) / "hcl-cache"


def cached_parse(text: str, parse: Callable[[str], dict[str, Any]],
                 environ: Mapping[str, str] = os.environ) -> dict[str, Any]:
    """`parse(text)`, or the value it gave before for the same text and parser (a fresh copy)."""
    key = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if key not in _memo:
        path = cache_dir(environ) / f"{parser_fingerprint()}-{key}.json"
        value = _read(path)
        if value is None:
            value = parse(text)  # raises on bad input: nothing is kept
            _write(path, value)
        _memo[key] = value
    return copy.deepcopy(_memo[key])


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write(path: Path, value: dict[str, Any]) -> None:
    try:
        body = json.dumps(value)
        # Only values that survive JSON unchanged are kept (tfvars hold nothing else).
        if json.loads(body) != value:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(body, encoding="utf-8")
        os.replace(tmp, path)
    except (OSError, TypeError, ValueError):
        pass
