"""What a tag's scan covers: the code its cell deploys, not the whole tree.

A cell plans `-target=<its namespace>` (module.regional or module.global) and its saved plan may
change nothing outside it (engine/planfile.py). So the scan of a tag — the protected env's apply
scan, `tfdeploy scan --tag` (the pipeline's checkov stage) and `tfdeploy run`'s scan stage, each
through gates/scan.py with the deployment's target — covers:

- the root module's own files (the module call and the inputs it passes; root variables), and
- the target module's directory and every local module it calls, recursively
  (engine/modulegraph.py: what Terraform loads).

Left out: the root's other module calls (the other namespace) and folders no root loads (a
`pipeline/` root, examples), which this cell never deploys. checkov runs on a copy of exactly
these files, laid out at their own paths, so its module resolution, inline skips and a committed
baseline (keyed by path) work as on the whole tree.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# Files checkov reads besides .tf: the variable values it evaluates with (its `.checkov.yaml` is
# found in the tree itself, gates/scan.py).
_ROOT_EXTRAS = ("*.tf.json", "*.tfvars", "*.tfvars.json")


@dataclass(frozen=True)
class ScanScope:
    target: str  # the cell's namespace, e.g. module.regional
    dirs: tuple[str, ...]  # module directories in scope, relative to the tree, "." first
    files: tuple[str, ...]  # the files checkov sees, relative to the tree
    left_out: tuple[str, ...]  # other directories holding .tf files, which this cell does not load

    def note(self) -> str:
        modules = ", ".join(d for d in self.dirs if d != ".") or "no local module"
        said = f"scanned what {self.target} deploys: the root module and {modules}"
        return said + (f"; left out (not loaded by {self.target}): {', '.join(self.left_out)}"
                       if self.left_out else "")


def call_name(target: str) -> str:
    """`module.regional` -> `regional` (a deployment's target is always a root module call)."""
    return target.removeprefix("module.")


def scan_scope(tree: Path, target: str) -> ScanScope:
    """The directories and files a scan of `target`'s cell covers in `tree` (reads the .tf files)."""
    from ..engine.modulegraph import loaded_files
    from .lint import terraform_files

    tree = Path(tree).resolve()
    dirs: dict[str, None] = {}
    files: dict[str, None] = {}
    for loaded in loaded_files(tree, calls={call_name(target)}):
        dirs[loaded.dir.as_posix()] = None
        files[loaded.path.as_posix()] = None
    for rel_dir in list(dirs):
        base = tree / rel_dir
        patterns = _ROOT_EXTRAS if rel_dir == "." else ("*.tf.json",)
        for pattern in patterns:
            for path in sorted(base.glob(pattern)):
                if path.is_file() and path.resolve().is_relative_to(tree):
                    files[path.relative_to(tree).as_posix()] = None
    all_dirs = {p.parent.relative_to(tree).as_posix() for p in terraform_files(tree)}
    return ScanScope(target, tuple(dirs), tuple(files), tuple(sorted(all_dirs - set(dirs))))


@contextmanager
def scoped_tree(tree: Path, scope: ScanScope) -> Iterator[Path]:
    """A temporary copy of the scope's files at their own relative paths; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="tfdeploy-scan-") as temp:
        view = Path(temp) / "tree"
        view.mkdir()
        for rel in scope.files:
            (view / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(Path(tree) / rel, view / rel)
        yield view
