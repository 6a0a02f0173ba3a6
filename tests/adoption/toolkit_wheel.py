"""The toolkit's wheel, built from this tree as a release would be (shared by the adoption tests).

Built from a copy of what the wheel is made of (pyproject.toml, README.md, toolkit/), so pip's
in-tree build leaves no `build/` or `*.egg-info` behind in the repo.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

_BUILT: dict[str, Path] = {}


def build_wheel(out_dir: Path) -> Path:
    """Build the toolkit's wheel into `out_dir` (once per session); the wheel's path."""
    if "wheel" in _BUILT:
        wheel = _BUILT["wheel"]
        if wheel.parent != out_dir:
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy2(wheel, out_dir / wheel.name)
            return out_dir / wheel.name
        return wheel
    tree = out_dir.parent / "toolkit-src"
    tree.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO_ROOT / name, tree / name)
    shutil.copytree(REPO_ROOT / "toolkit", tree / "toolkit",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                           "--disable-pip-version-check", "-w", str(out_dir), str(tree)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"pip wheel failed:\n{proc.stdout}\n{proc.stderr}"
    wheels = list(out_dir.glob("*.whl"))
    assert len(wheels) == 1, wheels
    _BUILT["wheel"] = wheels[0]
    return wheels[0]
