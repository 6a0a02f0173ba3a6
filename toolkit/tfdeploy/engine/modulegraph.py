"""The configuration Terraform loads from a root: the root's own .tf files and the local modules
they call, recursively (other folders of the tree, such as a `pipeline/` root or examples, are
separate configurations). One walk for everything that asks "what does this root load":
engine/provider.py (does it use AWS), gates/scope.py (what a tag's scan covers).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Iterator

from ..errors import ValidationError
from ..model.envs import parse_tfvars
from ..model.hclrefs import is_local_source, module_calls


@dataclass(frozen=True)
class LoadedFile:
    dir: Path  # the module directory, relative to the root ("." for the root)
    path: Path  # the file, relative to the root
    parsed: dict[str, Any]


def loaded_files(root: Path, calls: Collection[str] | None = None) -> Iterator[LoadedFile]:
    """Each .tf file Terraform loads from `root`, the root's first, parsed, following local module
    calls depth-first. `calls`: the root's module calls to follow (None: all of them); the
    modules those call are always followed. A call leaving the tree is not followed; a file that is
    a symlink leading outside it is refused (ValidationError)."""
    inside = root.resolve()
    seen: set[Path] = set()
    pending: list[tuple[Path, bool]] = [(inside, True)]
    while pending:
        here, is_root = pending.pop()
        if here in seen or not here.is_dir():
            continue
        seen.add(here)
        rel_dir = here.relative_to(inside)
        followed: list[Path] = []
        for path in sorted(here.glob("*.tf")):
            if not path.resolve().is_relative_to(inside):  # a link must not make us read outside files
                raise ValidationError(f"{path.relative_to(inside)} leads outside {root} (a symlink); "
                                      "commit the file itself instead of a link")
            rel = path.relative_to(inside)
            parsed = parse_tfvars(path.read_text(encoding="utf-8"), str(rel))
            yield LoadedFile(rel_dir, rel, parsed)
            for name, source in module_calls(parsed).items():
                if is_local_source(source) and (not is_root or calls is None or name in calls):
                    target = (here / source).resolve()
                    if target.is_relative_to(inside):
                        followed.append(target)
        pending += [(d, False) for d in reversed(followed)]
