"""Skip `terraform init` when the work dir is already initialised for exactly this run.

After a successful init tfdeploy records, inside `.terraform/`, a fingerprint of everything init
depends on: the backend-config arguments (bucket, key, Region, lock mode), the Terraform
executable, the CLI config and plugin cache it was told to use, and the configuration files
(which modules and providers init installed). The next run of the cell computes the same
fingerprint; init runs again unless it matches, `.terraform.lock.hcl` is the one init left, and
Terraform's own record of the backend (`.terraform/terraform.tfstate`) names the same
bucket/key/Region. Any doubt means init: a skipped init must never point a plan at another
state. (Terraform itself refuses a plan whose backend config changed since init, and apply
checks the saved plan's own backend: this is the first of three checks, not the only one.)

The record lives in `.terraform/` so it goes wherever that folder goes: the CodeBuild plan
artifact excludes `.terraform/`, so apply there re-initialises, as it must.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Mapping

RECORD = Path(".terraform") / "tfdeploy-init.json"
TF_BACKEND_STATE = Path(".terraform") / "terraform.tfstate"
LOCK_FILE = ".terraform.lock.hcl"
_CONFIG_SUFFIXES = (".tf", ".tf.json", ".tfvars", ".tfvars.json")
_SKIP_DIRS = {".terraform", ".tfdeploy-results", ".git"}
# The backend settings that decide which state object a run reads and writes.
_PINNED = ("bucket", "key", "region", "dynamodb_table", "use_lockfile", "workspace_key_prefix")


def _file_identity(path: str | None) -> list[object]:
    if not path:
        return []
    try:
        real = os.path.realpath(path)
        st = os.stat(real)
    except OSError:
        return [path]
    return [real, st.st_size, st.st_mtime_ns]


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def config_digest(workdir: Path) -> str:
    """A hash of the configuration files init reads (module calls, provider requirements)."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(workdir):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in sorted(files):
            if name.endswith(_CONFIG_SUFFIXES):
                path = Path(root) / name
                digest.update(str(path.relative_to(workdir)).encode() + b"\0")
                digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def fingerprint(workdir: Path, *, backend_args: Mapping[str, str], lock_mode: str, binary: str,
                env: Mapping[str, str]) -> str:
    """What this run's init would depend on, as one hash."""
    from .embedded_terraform import library_path

    cli_config = env.get("TF_CLI_CONFIG_FILE")
    inputs = {
        "backend": dict(sorted(backend_args.items())),
        "lock_mode": lock_mode,
        # The executable, and the library behind the embedded one (a pip upgrade swaps only it).
        "terraform": _file_identity(binary) + _file_identity(library_path()),
        "cli_config": [cli_config, _sha256(Path(cli_config)) if cli_config else None],
        "plugin_cache": env.get("TF_PLUGIN_CACHE_DIR"),
        "config": config_digest(workdir),
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def backend_matches(workdir: Path, backend_args: Mapping[str, str]) -> bool:
    """Does Terraform's own record of the initialised backend name this state object?"""
    try:
        backend = json.loads((workdir / TF_BACKEND_STATE).read_text(encoding="utf-8"))["backend"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not isinstance(backend, dict) or backend.get("type") != "s3":
        return False
    config = backend.get("config") or {}
    for name in _PINNED:
        want = backend_args.get(name)
        have = config.get(name)
        if isinstance(have, bool):
            have = "true" if have else "false"
        if (want or None) != (have or None):
            return False
    return True


def is_initialised(workdir: Path, print_: str, backend_args: Mapping[str, str]) -> bool:
    """True when init may be skipped: same fingerprint, same lock file, same backend."""
    try:
        record = json.loads((workdir / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or record.get("fingerprint") != print_:
        return False
    if record.get("lock_file_sha256") != _sha256(workdir / LOCK_FILE):
        return False
    return backend_matches(workdir, backend_args)


def forget(workdir: Path) -> None:
    """Before any init: a failed or interrupted one must not leave an old record standing."""
    (workdir / RECORD).unlink(missing_ok=True)


def remember(workdir: Path, print_: str) -> None:
    """After a successful init."""
    from ..results import write_atomic

    write_atomic(workdir / RECORD, json.dumps({
        "fingerprint": print_, "lock_file_sha256": _sha256(workdir / LOCK_FILE)}, indent=2) + "\n")
