"""Per-deployment work directories: the tagged code plus tfdeploy's generated files.

One directory per cell (env + scope + team) under the repo cache, so two deployments never share
`.terraform/`, plans or generated files. A work dir is built in a temporary sibling and swapped in
only once complete: an error (unknown team, bad tfvars) leaves the previous one untouched.

Building or reopening a work dir requires the cell lock (engine/celllock.py): under it, the
siblings a killed run left behind are removed, after any `errored.tfstate` in them is kept.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from ..errors import TfdeployError, ValidationError
from ..model.deployment import Deployment, resolve_tag
from ..model.settings import load_settings
from ..model.tags import Tag
from ..paths import repo_cache_dir
from ..results import write_atomic
from .celllock import held_here
from .errored import Kept, rescue_all
from .gitsource import SourceRef, export_commit, export_worktree
from .provider import PROVIDER_FILE, deployment_tfvars, render_provider, uses_aws_provider
from .treecheck import check_tree

TFVARS_FILE = "tfdeploy.auto.tfvars.json"
METADATA_FILE = "tfdeploy.workdir.json"
PLAN_FILE = "tfdeploy.tfplan"
PLAN_META = "tfdeploy.plan.json"
PLAN_JSON = "plan.json"  # `terraform show -json` of the saved plan, in the results folder
RESULTS_DIR = ".tfdeploy-results"
# Kept when the work dir is rebuilt from the same commit, so `lint`/`scan` after `plan` do not
# throw the saved plan away (apply re-checks its commit and checksum anyway).
CARRY_OVER = (PLAN_FILE, PLAN_META, RESULTS_DIR)
# Kept too when the backend is also the same, so the next init can be skipped (initrecord.py
# decides; it re-checks everything init depends on). The lock file only when the tagged tree has
# none of its own: a committed one always wins.
INIT_CARRY_OVER = (".terraform", ".terraform.lock.hcl")


@dataclass(frozen=True)
class Workdir:
    path: Path
    deployment: Deployment
    source: SourceRef
    aws_provider: bool
    # errored.tfstate files found in old work dirs and moved to the kept place while building.
    rescued: tuple[Kept, ...] = field(default=())

    @property
    def results_dir(self) -> Path:
        return self.path / RESULTS_DIR


def workdir_path(repo_root: Path, tag: Tag, environ: Mapping[str, str] = os.environ) -> Path:
    return repo_cache_dir(repo_root, environ) / "work" / tag.cell


def _write_generated(path: Path, deployment: Deployment, source: SourceRef, sandbox: bool) -> bool:
    # From the code alone: whether the state holds AWS resources (a rollback may) is asked beside
    # `terraform init` (engine/preflight.py), which then adds the provider (with_aws_provider).
    aws = uses_aws_provider(path)
    if aws:
        _write_provider(path, deployment, sandbox)
    write_atomic(path / TFVARS_FILE, json.dumps(deployment_tfvars(deployment), indent=2) + "\n")
    _write_metadata(path, deployment, source, aws)
    return aws


def _write_provider(path: Path, deployment: Deployment, sandbox: bool) -> None:
    write_atomic(path / PROVIDER_FILE, render_provider(deployment, sandbox=sandbox))


def _write_metadata(path: Path, deployment: Deployment, source: SourceRef, aws: bool) -> None:
    metadata = {"source": source.to_dict(), "deployment": deployment.to_dict(), "aws_provider": aws}
    write_atomic(path / METADATA_FILE, json.dumps(metadata, indent=2) + "\n")


def with_aws_provider(workdir: Workdir, sandbox: bool) -> Workdir:
    """The work dir with the deployment's AWS provider added (the state holds AWS resources the
    code no longer has: they are destroyed through the cell's own role, never an unconfigured one)."""
    _write_provider(workdir.path, workdir.deployment, sandbox)
    _write_metadata(workdir.path, workdir.deployment, workdir.source, True)
    return replace(workdir, aws_provider=True)


def prepare_workdir(repo_root: Path, tag: Tag, source: SourceRef, *, environ: Mapping[str, str],
                    overrides: Mapping[str, Any], sandbox: bool,
                    path: Path | None = None) -> Workdir:
    """Export the source into a fresh work dir for the tag's cell and write generated files.

    Settings and envs/ are read from the exported tree: what is deployed is what was tagged.
    `path`: another directory than the cell's work dir (a drift check's, engine/driftplan.py).
    """
    final = path or workdir_path(repo_root, tag, environ)
    cache = repo_cache_dir(repo_root, environ)
    _require_lock(cache, tag)
    final.parent.mkdir(parents=True, exist_ok=True)
    rescued = tuple(rescue_all(final.parent, cache, tag.cell))
    _remove_stale_siblings(final)
    staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{tag.cell}."))
    try:
        if source.worktree:
            export_worktree(repo_root, staging)
        else:
            export_commit(repo_root, source.commit, staging)
        settings = load_settings(staging, environ, overrides)
        deployment = resolve_tag(tag, settings, staging)
        check_tree(staging, deployment, deployment_tfvars(deployment), (TFVARS_FILE,), source.commit)
        aws = _write_generated(staging, deployment, source, sandbox)
        if _same_source(final, source):
            carried = CARRY_OVER
            if _same_backend(final, deployment):
                carried += tuple(n for n in INIT_CARRY_OVER if not (staging / n).exists())
            for name in carried:
                if (final / name).exists():
                    os.replace(final / name, staging / name)
            # Never a workspace selection: a cell always uses the default workspace (issue 9).
            _drop_workspace_selection(staging)
        _swap_in(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Workdir(path=final, deployment=deployment, source=source, aws_provider=aws, rescued=rescued)


def _require_lock(cache: Path, tag: Tag) -> None:
    # Every caller takes the cell lock first (stages.hold_cell); building a work dir without it is
    # how concurrent runs used to delete each other's directories.
    if not held_here(cache, tag.cell):
        raise TfdeployError(f"internal error: the work dir of cell {tag.cell} was opened without the "
                            "cell lock; please report this")


def _remove_stale_siblings(final: Path) -> None:
    """Staging and moved-aside dirs of runs that died mid-build (safe: we hold the cell lock)."""
    for sibling in final.parent.iterdir():
        if sibling.name.startswith(f".{final.name}.") and sibling.is_dir():
            shutil.rmtree(sibling, ignore_errors=True)


def _same_source(path: Path, source: SourceRef) -> bool:
    try:
        old = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))["source"]
    except (OSError, ValueError, KeyError):
        return False
    return not source.worktree and not old.get("worktree") and old.get("commit") == source.commit


def _same_backend(path: Path, deployment: Deployment) -> bool:
    try:
        old = json.loads((path / METADATA_FILE).read_text(encoding="utf-8"))["deployment"]
    except (OSError, ValueError, KeyError):
        return False
    new = json.loads(json.dumps(deployment.to_dict()))  # as it would read back from the file
    return old.get("tag") == new["tag"] and old.get("backend") == new["backend"]


def _drop_workspace_selection(path: Path) -> None:
    selected = path / ".terraform" / "environment"
    if selected.is_dir() and not selected.is_symlink():
        shutil.rmtree(selected)
    elif selected.exists() or selected.is_symlink():
        selected.unlink()


def _swap_in(staging: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_workdir(repo_root: Path, tag: Tag, *, environ: Mapping[str, str],
                 overrides: Mapping[str, Any]) -> Workdir:
    """Reopen the work dir a previous `plan`/`init` prepared for this tag's cell."""
    path = workdir_path(repo_root, tag, environ)
    _require_lock(repo_cache_dir(repo_root, environ), tag)
    meta_path = path / METADATA_FILE
    if not meta_path.is_file():
        raise ValidationError(f"no work dir for {tag.name} yet; run: tfdeploy plan --tag {tag.name}")
    metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    if metadata["source"]["tag"] != tag.name:
        raise ValidationError(
            f"the work dir for cell {tag.cell} holds tag {metadata['source']['tag']}, not {tag.name}; "
            f"run: tfdeploy plan --tag {tag.name}"
        )
    source = SourceRef(**metadata["source"])
    deployment = resolve_tag(tag, load_settings(path, environ, overrides), path)
    return Workdir(path=path, deployment=deployment, source=source,
                   aws_provider=bool(metadata.get("aws_provider")))
