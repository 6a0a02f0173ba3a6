"""What an exported tree may not do, checked before any Terraform runs on it (every path: plan,
apply of a saved plan, --auto-approve, destroy, drift; one cell or a fan-out's).

- Set a variable tfdeploy generates from the tag (`env`, `region`, `team`, `account`,
  `release_version`; engine/provider.deployment_tfvars) to another value. The var files a cell
  passes (`-var-file`) and the tfvars Terraform loads by itself (`terraform.tfvars`,
  `*.auto.tfvars`) both outrank tfdeploy's `tfdeploy.auto.tfvars.json` or sort after it, so a
  file saying `env = "prod"` would deploy a dev tag as prod. The saved plan's variables are checked
  again before it is applied (engine/planfile.mismatches): this is the early, one-line refusal.
- Call a module from outside the tree: a local `source` that climbs out of it (`../` past its
  root), an absolute path, or a path through a symlink that leads out. Terraform would read the
  runner's files there (the repo's working tree, other work dirs) and apply their uncommitted
  content under the tagged commit's name.
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import ValidationError
from ..model.deployment import Deployment
from ..model.envs import parse_tfvars

# Terraform's own files that it loads without being told (-var-file files are named by tfdeploy).
_AUTO_LOADED = ("terraform.tfvars", "terraform.tfvars.json")
_AUTO_SUFFIXES = (".auto.tfvars", ".auto.tfvars.json")


def check_tree(root: Path, deployment: Deployment, generated: Mapping[str, str], own_files: tuple[str, ...],
               commit: str) -> None:
    """Refuse (ValidationError, one line) a tree that overrides a generated variable or calls a
    module from outside itself. `own_files`: tfdeploy's generated files, not checked."""
    where = f"the tagged tree at {commit[:12]}"
    for rel in _var_files(root, deployment, own_files):
        values = _read_values(root / rel, rel)
        for name, expected in generated.items():
            if name in values and values[name] != expected:
                raise ValidationError(
                    f"{where}: {rel} sets {name} = {json.dumps(values[name])}, but tfdeploy sets {name} from "
                    f"the tag ({json.dumps(expected)}); remove {name} from {rel} (the tag and envs/ decide it); "
                    "nothing was run")
    for rel, source in module_sources(root):
        problem = source_problem(rel, source)
        if problem is None and not (root / posixpath.dirname(rel) / source).resolve().is_relative_to(root.resolve()):
            problem = f"module source {source!r} in {rel} leads outside the tree through a symlink"
        if problem:
            raise ValidationError(f"{where}: {problem}; a module must come from the tagged commit itself "
                                  "(a path inside the repo) or a registry/git source; nothing was run")


def _var_files(root: Path, deployment: Deployment, own_files: tuple[str, ...]) -> list[str]:
    found = list(deployment.var_files)
    for path in sorted(root.iterdir()):
        name = path.name
        if name in own_files or not path.is_file():
            continue
        if name in _AUTO_LOADED or name.endswith(_AUTO_SUFFIXES):
            found.append(name)
    return found


def _read_values(path: Path, rel: str) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    if rel.endswith(".json"):
        try:
            values = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"{rel}: not valid JSON ({exc}); fix the file") from None
        return values if isinstance(values, dict) else {}
    return parse_tfvars(text, rel)


def source_problem(rel: str, source: str) -> str | None:
    """Why a module `source` in the file at repo-relative `rel` may not be used, or None (pure).
    Only where the text leads is judged here; symlinks on the way are the caller's to resolve."""
    if source.startswith("/") or source.startswith(("file::", "file:")):
        return f"module source {source!r} in {rel} is an absolute local path"
    if not source.startswith(("./", "../")):
        return None  # a registry, git, http or S3 source: fetched by terraform init, not read from here
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), source))
    if resolved == ".." or resolved.startswith("../"):
        return f"module source {source!r} in {rel} leads outside the tree (to {resolved})"
    return None


def module_sources(root: Path) -> Iterator[tuple[str, str]]:
    """(file, source) of every module call Terraform would load from `root`: the root's .tf files
    and, recursively, the local modules they call that stay inside the tree."""
    inside = root.resolve()
    seen: set[Path] = set()
    pending = [root]
    while pending:
        here = pending.pop()
        real = here.resolve()
        if real in seen or not here.is_dir() or not real.is_relative_to(inside):
            continue
        seen.add(real)
        for path in sorted(here.glob("*.tf")):
            rel = path.relative_to(root).as_posix()
            for source in _sources(parse_tfvars(path.read_text(encoding="utf-8"), rel)):
                yield rel, source
                if source.startswith(("./", "../")):
                    pending.append(Path(os.path.normpath(here / source)))


def _sources(parsed: Mapping[str, Any]) -> Iterator[str]:
    for block in parsed.get("module", []):
        for body in block.values():
            source = body.get("source") if isinstance(body, dict) else None
            if isinstance(source, str):
                yield source
