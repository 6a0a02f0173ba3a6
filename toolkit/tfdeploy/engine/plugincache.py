"""Make parallel `terraform init`s safe with one shared plugin cache (TF_PLUGIN_CACHE_DIR).

Terraform documents the cache as unsafe for concurrent writers, and it is: 16 fresh inits of a
`hashicorp/null` configuration started together fail about a third of the time with "Failed to
install provider" (two processes unpack into the same version folder). Readers are safe: an init
whose `.terraform.lock.hcl` pins versions the cache already holds only links to them ("Using ...
from the shared cache directory").

So an OS file lock on the cache folder, taken as a readers-writer lock:
- a configuration that needs no provider plugin at all (only built-in `terraform_data`) takes
  none, so fan-outs of such stacks stay fully parallel;
- an init whose `.terraform.lock.hcl` pins versions all present in the cache takes it shared;
- anything else (no lock file yet, a version not yet cached) takes it exclusive: it may write;
- plan, apply and show of a work dir with installed providers hold it shared while they run
  (`reading`): a work dir's `.terraform/providers` links into the cache, and an init *without* a
  lock file rewrites the cache entry of every version it selects even when it is there (seen:
  unlink + symlink of the entry), so a provider started in that moment would not be found.

Without more, every fresh cell of a fleet (no lock file) would be exclusive and wait for every
running plan and apply (issue 24: a "lock convoy", average Terraform concurrency 2.4 of 4). So
the lock file the first install writes is kept as a seed, keyed by the configuration's provider
requirements and the CLI config (`requirements_key`); a later work dir with the same
requirements and no lock file gets it, and its init only links (shared). Each provider version
is thus installed once per cache, and only that install waits for the running cells. A wait is
said in the cell's log and line (`note`).

A provider from an unpacked filesystem mirror (TFDEPLOY_PROVIDER_MIRROR, an air-gapped build's
`filesystem_mirror`) is not copied into the cache: Terraform links the cache entry to the mirror.
The cache then saves nothing, and the seed costs: an init given a lock file verifies the provider
against its hashes, reading the whole binary again (the AWS provider is 700 MB: 1.8 s of CPU per
init instead of 0.6 s; issue 24). So when the first install of some requirements only linked
(`_remember_seed` keeps where to, beside the seed), later inits of the same requirements run
without TF_PLUGIN_CACHE_DIR (`LINKED`, `init_unset`): each links its own work dir to the mirror,
writes nothing shared and takes no lock. A cell whose init selects other versions than the
first install's says so in its log.

Chosen over a private cache per init (filled from the shared one and merged back) because that
needs copying or linking whole provider trees and a merge step, and the links Terraform makes in
`.terraform/providers` would point into per-init folders.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import platform
import re
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

LOCK_NAME = ".tfdeploy-install.lock"
SEEDS = ".tfdeploy-seeds"  # lock files of earlier installs, by provider requirements (see guarded)
NONE, SHARED, EXCLUSIVE = "none", "shared", "exclusive"
# Every provider the requirements select links to an unpacked filesystem mirror: the cache holds no
# copy, so the init runs without it (no lock, no seed), as plain Terraform with that mirror would.
LINKED = "linked"

_BLOCK = re.compile(r'^\s*(resource|data|ephemeral|list)\s+"([^"]+)"', re.MULTILINE)
_PROVIDER_HINTS = re.compile(r'\brequired_providers\b|^\s*provider\s+"', re.MULTILINE)
_SOURCE = re.compile(r'\bsource\s*=\s*"([^"]*)"', re.MULTILINE)
_REQUIREMENT = re.compile(r'\b(?:source|version|required_version)\s*=\s*"[^"]*"|^\s*provider\s+"[^"]+"',
                          re.MULTILINE)
_MODULE_SOURCE = re.compile(r'\bmodule\s+"[^"]*"\s*\{[^}]*?\bsource\s*=\s*"([^"]*)"', re.DOTALL)
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
    if not pins or not _required_types(workdir) <= {address.rsplit("/", 1)[-1] for address, _ in pins}:
        return False  # a provider the configuration needs is not pinned: init would install it
    here = platform_dir()
    for address, version in pins:
        folder = cache.joinpath(*address.split("/"), version, here)
        if not folder.is_dir() or not any(folder.iterdir()):
            return False
    return True


def _required_types(workdir: Path) -> set[str]:
    """Provider types the configuration names: resource type prefixes and required sources."""
    found: set[str] = set()
    for root, dirs, files in os.walk(workdir):
        dirs[:] = [d for d in dirs if d not in (".terraform", ".tfdeploy-results", ".git")]
        for name in files:
            if name.endswith(".tf"):
                text = (Path(root) / name).read_text(encoding="utf-8", errors="replace")
                modules = set(_MODULE_SOURCE.findall(text))
                found.update(kind.split("_", 1)[0] for _, kind in _BLOCK.findall(text)
                             if not kind.startswith("terraform_"))
                found.update(src.rsplit("/", 1)[-1] for src in _SOURCE.findall(text)
                             if src not in modules and not src.startswith(("./", "../")))
    return found


def lock_mode_for(workdir: Path, cache: Path | None) -> str:
    if cache is None or not needs_providers(workdir):
        return NONE
    return SHARED if all_cached(workdir, cache) else EXCLUSIVE


def requirements_key(workdir: Path, env: Mapping[str, str]) -> str | None:
    """A hash of what decides which provider versions init selects: every `source`/`version`
    constraint, provider block and resource type prefix of the configuration, and the CLI config
    (where providers come from). None when that cannot be read from the files: a module from
    outside the tree or JSON syntax (errs towards "not the same")."""
    found: set[str] = set()
    for root, dirs, files in os.walk(workdir):
        dirs[:] = [d for d in dirs if d not in (".terraform", ".tfdeploy-results", ".git")]
        for name in files:
            if name.endswith(".tf.json"):
                return None
            if not name.endswith(".tf"):
                continue
            text = (Path(root) / name).read_text(encoding="utf-8", errors="replace")
            if any(not src.startswith(("./", "../")) for src in _MODULE_SOURCE.findall(text)):
                return None  # its providers are unknown until it is downloaded
            found.update(" ".join(m.split()) for m in _REQUIREMENT.findall(text))
            found.update(f"type {kind.split('_', 1)[0]}" for _, kind in _BLOCK.findall(text))
    cli_config = env.get("TF_CLI_CONFIG_FILE") or ""
    try:
        config_text = Path(cli_config).read_text(encoding="utf-8") if cli_config else ""
    except OSError:
        config_text = ""
    digest = hashlib.sha256(config_text.encode() + b"\0" + "\n".join(sorted(found)).encode())
    return digest.hexdigest()


def _seed_path(cache: Path, key: str) -> Path:
    return cache / SEEDS / f"{key}.lock.hcl"


def _seed(workdir: Path, cache: Path, key: str | None) -> bool:
    """Give a work dir without a lock file the one an earlier init wrote for the same provider
    requirements and CLI config, when every version it pins is in the cache: its init then only
    links them (SHARED) instead of rewriting cache entries other cells are running."""
    target = workdir / ".terraform.lock.hcl"
    if key is None or target.exists():
        return False
    try:
        text = _seed_path(cache, key).read_text(encoding="utf-8")
    except OSError:
        return False
    if not locked_providers(text):
        return False
    target.write_text(text, encoding="utf-8")
    if all_cached(workdir, cache):
        return True
    target.unlink()
    return False


def _linked_path(cache: Path, key: str) -> Path:
    return cache / SEEDS / f"{key}.linked"


def mirror_links(lock_text: str, cache: Path) -> list[str] | None:
    """Where each version a lock file pins links to from the cache, when every one is a link
    (Terraform links, never copies, a provider from an unpacked filesystem mirror); else None."""
    here = platform_dir()
    targets = []
    for address, version in locked_providers(lock_text):
        entry = cache.joinpath(*address.split("/"), version, here)
        if not entry.is_symlink():
            return None
        targets.append(os.path.realpath(entry))
    return targets or None


def _linked(cache: Path, key: str | None) -> bool:
    """Did the first install of these requirements only link to a mirror that is still there?"""
    if key is None:
        return False
    try:
        targets = _linked_path(cache, key).read_text(encoding="utf-8").split()
    except OSError:
        return False
    return bool(targets) and all(Path(target).is_dir() for target in targets)


def init_unset(mode: str) -> tuple[str, ...]:
    """The variables an init taken in `mode` runs without (pure)."""
    return ("TF_PLUGIN_CACHE_DIR",) if mode == LINKED else ()


def _remember_seed(workdir: Path, cache: Path, key: str | None) -> None:
    """After an init that installed (exclusive): its lock file is the seed for the same
    requirements, and where it linked when it only linked (see LINKED)."""
    if key is None:
        return
    try:
        text = (workdir / ".terraform.lock.hcl").read_text(encoding="utf-8")
    except OSError:
        return
    if locked_providers(text) and all_cached(workdir, cache):
        from ..results import write_atomic

        _seed_path(cache, key).parent.mkdir(parents=True, exist_ok=True)
        # Where it linked before the seed: an init waiting for this install looks for both.
        links = mirror_links(text, cache)
        if links is None:
            _linked_path(cache, key).unlink(missing_ok=True)
        else:
            write_atomic(_linked_path(cache, key), "\n".join(links) + "\n")
        write_atomic(_seed_path(cache, key), text)


def _say_other_versions(workdir: Path, cache: Path, key: str, note: Callable[[str], None] | None) -> None:
    """After a LINKED init: a cell that selected other versions than the first install is said."""
    try:
        chosen = sorted(locked_providers((workdir / ".terraform.lock.hcl").read_text(encoding="utf-8")))
        first = sorted(locked_providers(_seed_path(cache, key).read_text(encoding="utf-8")))
    except OSError:
        return
    if chosen != first and note is not None:
        note("this init selected " + ", ".join(f"{a} {v}" for a, v in chosen) + " from the mirror; the first "
             "install of the same requirements selected " + ", ".join(f"{a} {v}" for a, v in first))


def _flock(fd: int, how: int, note: Callable[[str], None] | None, why: str) -> None:
    """flock, saying so (and for how long) when it has to wait."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    started = time.monotonic()
    if note is not None:
        note(f"waiting for the plugin cache lock ({why})")
    fcntl.flock(fd, how)
    if note is not None:
        note(f"got the plugin cache lock after {time.monotonic() - started:.1f} s")


def _install_or_link(fd: int, workdir: Path, cache: Path, key: str | None,
                     note: Callable[[str], None] | None) -> str:
    """Take the lock exclusive to install, unless, while waiting for it, another init installs
    the same versions (its seed appears): then shared, to link them, or, when that install only
    linked to a mirror, no lock at all (LINKED). Without this, the fresh cells queued behind the
    first install of a cold fan-out would also wait for every plan and apply started meanwhile
    (they hold the lock shared), and each would hash the mirror's provider again."""
    started = time.monotonic()
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            mode = EXCLUSIVE
            break
        except BlockingIOError:
            pass
        if _linked(cache, key):
            mode = LINKED
            break
        if _seed(workdir, cache, key) or all_cached(workdir, cache):
            fcntl.flock(fd, fcntl.LOCK_SH)  # waits only for a running install
            mode = SHARED if all_cached(workdir, cache) else EXCLUSIVE
            if mode == EXCLUSIVE:
                fcntl.flock(fd, fcntl.LOCK_EX)
            break
        if not waiting and note is not None:
            note("waiting for the plugin cache lock (this init installs a provider; another init is "
                 "installing, or plans and applies are running from the cache)")
        waiting = True
        time.sleep(0.2)
    if mode == EXCLUSIVE and _linked(cache, key):
        mode = LINKED  # installed by another init meanwhile, as links to a mirror: no lock needed
        fcntl.flock(fd, fcntl.LOCK_UN)
    elif mode == EXCLUSIVE and (_seed(workdir, cache, key) or all_cached(workdir, cache)):
        mode = SHARED  # installed by another init meanwhile: link only, in parallel again
        fcntl.flock(fd, fcntl.LOCK_SH)
    if waiting and note is not None:
        waited = time.monotonic() - started
        note(f"another init linked the provider to the mirror meanwhile; no lock needed after {waited:.1f} s"
             if mode == LINKED else f"got the plugin cache lock after {waited:.1f} s")
    return mode


@contextmanager
def guarded(workdir: Path, env: Mapping[str, str], note: Callable[[str], None] | None = None) -> Iterator[str]:
    """Hold the cache lock an init of `workdir` needs; yields the mode taken.

    A work dir without a lock file is first given the seed of its provider requirements (the
    lock file the first init of the same requirements wrote): with it, the init only links
    cached versions and takes the lock shared, so it never waits for running plans and
    applies. Only an init that really installs (the first per provider version) is exclusive;
    its lock file becomes the seed. When that install only linked to a filesystem mirror, later
    inits of the same requirements take no lock: LINKED, run without the cache (`init_unset`).
    `note` is told when the lock has to be waited for."""
    configured = env.get("TF_PLUGIN_CACHE_DIR")
    cache = Path(configured) if configured else None
    if cache is None or not needs_providers(workdir):
        yield NONE
        return
    cache.mkdir(parents=True, exist_ok=True)
    key = requirements_key(workdir, env)
    if key is not None and _linked(cache, key):
        yield LINKED  # the caller's init runs without the cache (init_unset): nothing shared is written
        _say_other_versions(workdir, cache, key, note)
        return
    fd = os.open(cache / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = SHARED if (_seed(workdir, cache, key) or all_cached(workdir, cache)) else EXCLUSIVE
        if mode == SHARED:
            _flock(fd, fcntl.LOCK_SH, note, "an init is installing a provider")
            # Checked again under the lock: no writer runs now, so what is there is complete.
            if not all_cached(workdir, cache):
                mode = EXCLUSIVE
        if mode == EXCLUSIVE:
            mode = _install_or_link(fd, workdir, cache, key, note)
        yield mode
        if mode == EXCLUSIVE:
            _remember_seed(workdir, cache, key)
        elif mode == LINKED and key is not None:
            _say_other_versions(workdir, cache, key, note)
    finally:
        os.close(fd)


def links_into_cache(providers: Path, cache: Path) -> bool:
    """Does any provider installed in a work dir (`.terraform/providers`) link into the cache?
    Only the link's first hop counts: a cache entry may itself link on to a mirror."""
    if not providers.is_dir():
        return False
    root = os.path.realpath(cache)
    for entry in providers.glob(f"*/*/*/*/{platform_dir()}"):
        if not entry.is_symlink():
            continue
        target = os.path.join(entry.parent, os.readlink(entry))
        if os.path.realpath(os.path.dirname(target)).startswith(root + os.sep):
            return True
    return False


@contextmanager
def reading(workdir: Path, env: Mapping[str, str], note: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold the cache lock shared while a command runs providers linked from the cache.

    A work dir's `.terraform/providers/` links into the shared cache, and an init that writes the
    cache (exclusive, above) replaces those files: a plan of another cell running a provider from
    there meanwhile fails with `fork/exec ...: no such file or directory`. Readers therefore hold
    the lock shared; a work dir without installed providers takes no lock. Never around `init`
    (`guarded` is: flock locks are per open file, so taking both would deadlock)."""
    configured = env.get("TF_PLUGIN_CACHE_DIR")
    if not configured or not links_into_cache(workdir / ".terraform" / "providers", Path(configured)):
        yield False  # none installed, or linked straight to a mirror (LINKED): no cache write can touch them
        return
    cache = Path(configured)
    cache.mkdir(parents=True, exist_ok=True)
    fd = os.open(cache / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _flock(fd, fcntl.LOCK_SH, note, "an init is installing a provider")
        yield True
    finally:
        os.close(fd)
