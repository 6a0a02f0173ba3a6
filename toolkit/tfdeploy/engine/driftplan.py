"""A drift check's Terraform side: refresh and plan a cell at a tag, in a work dir of its own.

Why a separate work dir (`<cache>/drift/<cell>/`) and plan file: the cell's own work dir may hold
a saved plan someone is about to apply (of this tag or a newer one); a drift check must neither
replace it nor leave a plan `apply` could pick up. The plan is never applied and is deleted as
soon as it has been read (it holds values in clear). `terraform plan` with refresh reads the
state and takes its lock, but never writes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, Mapping

from ..model.tags import Tag
from ..paths import repo_cache_dir
from .errored import rescue
from .gitsource import SourceRef
from .redact import redact_show
from .stages import Session, _flag, find_terraform, init, terraform_environment
from .terraform import RunContext, Terraform
from .workdir import prepare_workdir

DRIFT_DIR = "drift"
DRIFT_PLAN = "tfdeploy.drift.tfplan"


def drift_workdir_path(repo_root: Path, tag: Tag, environ: Mapping[str, str] = os.environ) -> Path:
    return repo_cache_dir(repo_root, environ) / DRIFT_DIR / tag.cell


def open_drift_session(repo_root: Path, tag: Tag, source: SourceRef, *, overrides: Mapping[str, Any],
                       environ: Mapping[str, str], terraform_bin: str | None, log: IO[str],
                       lock_timeout_s: float = 0) -> Session:
    """The tag's code in the cell's drift work dir, and a Terraform for it. The caller holds the
    cell lock (a drift check and an apply of the same cell never overlap)."""
    binary = find_terraform(terraform_bin, repo_root, environ)
    env, endpoint, extra = terraform_environment(repo_root, environ)
    workdir = prepare_workdir(repo_root, tag, source, environ=environ, overrides=overrides,
                              sandbox=endpoint is not None,
                              path=drift_workdir_path(repo_root, tag, environ))
    terraform = Terraform(binary, workdir.path, env, log, log)
    backend = workdir.deployment.backend
    terraform.context = RunContext(tag.cell, tag.name, f"s3://{backend.bucket}/{backend.key}")
    return Session(repo_root, tag, workdir, terraform, endpoint, extra, lock_timeout_s)


def refresh_and_plan(session: Session) -> dict[str, Any]:
    """`terraform plan` (refresh on, state lock on) of the cell's module namespace; its resource
    changes and drift in `terraform show -json`'s shape, unredacted: the caller redacts before
    anything leaves (redact.py). Read from the plan file itself (planchanges.py), not by a
    `terraform show`: one Terraform process per check (init is skipped once the drift work dir
    is initialised for this backend and providers, initrecord.py)."""
    from .planchanges import read_changes

    init(session)
    d = session.deployment
    plan_path = session.workdir.path / DRIFT_PLAN
    plan_path.unlink(missing_ok=True)
    try:
        session.terraform.check("plan", input=False, no_color=_flag(), detailed_exitcode=_flag(),
                                refresh="true", lock="true", out=DRIFT_PLAN, target=[d.target_module],
                                var_file=list(d.var_files), ok=(0, 2), **session.lock_options())
        changes = read_changes(plan_path)
    finally:
        plan_path.unlink(missing_ok=True)
        # A plan writes no state; should a Terraform ever leave one, it is kept like an apply's.
        kept = rescue(session.workdir.path, session.cache, session.tag.cell)
        if kept is not None:
            session.terraform.err_sink.write(f"WARNING: Terraform left a state it could not save; kept in "
                                             f"{kept}: run tfdeploy state recover --tag {session.tag.name}\n")
    return changes


def redacted(raw: Mapping[str, Any]) -> dict[str, Any]:
    return redact_show(raw)
