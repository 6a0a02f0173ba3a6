"""Make parallel `terraform init`s safe with one shared plugin cache (TF_PLUGIN_CACHE_DIR).

Terraform documents the cache as unsafe for concurrent writers, and it is: 16 fresh inits of a
`hashicorp/null` configuration started together fail about a third of the time with "Failed to
install provider" (two processes unpack into the same version folder). Readers are safe: an init
whose `.terraform.lock.hcl` pins versions the cache already holds only links to them ("Using ...
from the shared cache directory").

So an OS file lock on the cache folder, taken as a readers-writer lock around each init:
- a configuration that needs no provider plugin at all (only built-in `terraform_data`) takes
  none, so fan-outs of such stacks stay fully parallel;
- an init whose lock file pins versions all present in the cache takes it shared (in parallel);
- anything else (no lock file yet, a version not yet cached) takes it exclusive: it may write.

Chosen over a private cache per init (filled from the shared one and merged back) because that
needs copying or linking whole provider trees and a merge step, and the links Terraform makes in
`.terraform/providers` would point into per-init folders; a lock is a few lines, and the wait it
adds is paid only by inits that really install (the first of a fleet; later runs skip init).
"""

from __future__ import annotations

import fcntl
import os
import platform
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

LOCK_NAME = ".tfdeploy-install.lock"
NONE, SHARED, EXCLUSIVE = "none", "shared", "exclusive"

_BLOCK = re.compile(r'^\s*(resource|data|ephemeral|list)\s+"([^"]+)"', re.MULTILINE)
_PROVIDER_HINTS = re.compile(r'\brequired_providers\b|^\s*provider\s+"', re.MULTILINE)
_SOURCE = re.compile(r'\bsource\s*=\s*"([^"]*)"', re.MULTILINE)
_LOCKED = re.compile(r'provider\s+"([^"]+)"\s*\{[^}]*?\bversion\s*=\s*"([^"]+)"', re.DOTALL)


def needs_providers(workdir: Path) -> bool:
    """Could init install a provider plugin for this configuration? (errs towards yes)

    Built-in resources are `terraform_*`; anything else, any provider requirement or block, a
    module from outside the tree (its providers are unknown until downloaded) or JSON syntax
    (not scanned) counts as yes."""
    for root, dirs, files in os.walk(workdir):
        dirs[:] = [d for d in dirs if d not in (".terraform", ".tfdeploy-results", ".git")]
        for name in files:
            if name.endswith(".tf.json"):
                return True
            if not name.endswith(".tf"):
                continue
            text = (Path(root) / name).read_text(encoding="utf-8", errors="replace")
            if _PROVIDER_HINTS.search(text):
                return True
            if any(not kind.startswith("terraform_") for _, kind in _BLOCK.findall(text)):
                return True
            if any(not src.startswith(("./", "../")) for src in _SOURCE.findall(text)):
                return True
    return False


def platform_dir() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"{platform.system().lower()}_{arch}"


def locked_providers(lock_text: str) -> list[tuple[str, str]]:
    """(address, version) pairs a `.terraform.lock.hcl` pins (pure)."""
    return _LOCKED.findall(lock_text)


def all_cached(workdir: Path, cache: Path) -> bool:
    """Does the work dir's lock file pin only versions the cache holds for this platform?"""
    try:
        pins = locked_providers((workdir / ".terraform.lock.hcl").read_text(encoding="utf-8"))
    except OSError:
        return False
    if not pins:
        return False
    here = platform_dir()
    for address, version in pins:
        folder = cache.joinpath(*address.split("/"), version, here)
        if not folder.is_dir() or not any(folder.iterdir()):
            return False
    return True


def lock_mode_for(workdir: Path, cache: Path | None) -> str:
    if cache is None or not needs_providers(workdir):
        return NONE
    return SHARED if all_cached(workdir, cache) else EXCLUSIVE


@contextmanager
def guarded(workdir: Path, env: Mapping[str, str]) -> Iterator[str]:
    """Hold the cache lock an init of `workdir` needs; yields the mode taken."""
    configured = env.get("TF_PLUGIN_CACHE_DIR")
    cache = Path(configured) if configured else None
    mode = lock_mode_for(workdir, cache)
    if mode == NONE or cache is None:
        yield mode
        return
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        # Checked again under the lock: no writer runs now, so what is there is complete.
        if mode == SHARED and not all_cached(workdir, cache):
            mode = EXCLUSIVE
        if mode == EXCLUSIVE:
            fcntl.flock(fd, fcntl.LOCK_EX)  # converts; not atomic, which only costs a wait
        yield mode
    finally:
        os.close(fd)


@contextmanager
def reading(workdir: Path, env: Mapping[str, str]) -> Iterator[bool]:
    """Hold the cache lock shared while a command runs providers linked from the cache.

    A work dir's `.terraform/providers/` links into the shared cache, and an init that writes the
    cache (exclusive, above) replaces those files: a plan of another cell running a provider from
    there meanwhile fails with `fork/exec ...: no such file or directory`. Readers therefore hold
    the lock shared; a work dir without installed providers takes no lock. Never around `init`
    (`guarded` is: flock locks are per open file, so taking both would deadlock)."""
    configured = env.get("TF_PLUGIN_CACHE_DIR")
    if not configured or not (workdir / ".terraform" / "providers").is_dir():
        yield False
        return
    cache = Path(configured)
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield True
    finally:
        os.close(fd)
