"""The Terraform stages for one tag: init, plan, apply (and output/show), on a prepared work dir.

Flow: tag -> checked source commit -> work dir (code + generated files) -> terraform init with the
deployment's backend -> plan (-target the module namespace, saved plan + metadata) -> apply (only
the saved plan of the same tag and commit).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping, Sequence

from ..errors import TfdeployError, ValidationError
from ..model.deployment import Deployment
from ..model.settings import Settings, load_settings
from ..model.tags import Tag
from ..paths import repo_cache_dir
from ..results import PASSED, StageResult, write_atomic, write_result, write_result_after_change
from .celllock import cell_lock, format_duration
from .errored import rescue
from .gitsource import SourceRef, tag_source, tag_sources, worktree_source
from .terraform import RunContext, Terraform, base_environment
from .workdir import PLAN_FILE, PLAN_JSON, PLAN_META, Workdir, load_workdir, prepare_workdir

# A saved plan is renamed to this the moment its apply starts: a plan applies once, even when
# that apply fails or is interrupted halfway (its changes may already be partly made).
PLAN_SPENT = PLAN_FILE + ".spent"


@dataclass(frozen=True)
class SourceOptions:
    worktree: bool = False
    allow_lightweight: bool = False
    skip_branch_check: bool = False


@dataclass(frozen=True)
class PlanSummary:
    add: int = 0
    change: int = 0
    destroy: int = 0

    @property
    def has_changes(self) -> bool:
        return bool(self.add or self.change or self.destroy)

    def __str__(self) -> str:
        return f"+{self.add} ~{self.change} -{self.destroy}"


def summarize_plan(plan: Mapping[str, Any]) -> PlanSummary:
    """Count changes in `terraform show -json` output the way Terraform's 'Plan:' line does (pure)."""
    add = change = destroy = 0
    for rc in plan.get("resource_changes", []):
        actions = rc.get("change", {}).get("actions", [])
        add += "create" in actions
        destroy += "delete" in actions
        change += actions == ["update"]
    return PlanSummary(add, change, destroy)


_PLAN_LINE = re.compile(r"^Plan: (?:\d+ to import, )?(\d+) to add, (\d+) to change, (\d+) to destroy",
                        re.MULTILINE)


def summary_from_output(text: str, exit_code: int) -> PlanSummary | None:
    """The counts of `terraform plan -detailed-exitcode` from its own human output (pure).

    None when the output does not say: the caller then asks `show -json` (never guesses 0).
    Why the human line and not `plan -json`: it keeps the attribute-level diff a reviewer reads
    before `apply` on the terminal, costs no extra process, and the line has been the same
    since Terraform 0.12 ("N to import, " was prepended in 1.5). A fleet that wants the event
    stream sets Terraform.on_event and gets `plan -json` with `change_summary` instead (tfjson).
    """
    if exit_code == 0:
        return PlanSummary()  # -detailed-exitcode: 0 means no changes at all
    match = _PLAN_LINE.search(text)
    if match:
        return PlanSummary(*(int(n) for n in match.groups()))
    if "Changes to Outputs:" in text and "will be" not in text:
        return PlanSummary()  # only outputs change: Terraform prints no Plan line
    return None


@dataclass
class Session:
    """Everything a stage needs for one tag: the work dir and a Terraform bound to it."""

    repo_root: Path
    tag: Tag
    workdir: Workdir
    terraform: Terraform
    sandbox_endpoint: str | None
    backend_extra: dict[str, str] = field(default_factory=dict)
    lock_timeout_s: float = 0  # also Terraform's -lock-timeout on commands that lock the state
    # Called once, just before the Terraform command that can change the state starts (every
    # check passed): the ledger's `started` record and state read (fleet/recording.py).
    before_change: Callable[[], None] | None = None

    def changing(self) -> None:
        if self.before_change is not None:
            hook, self.before_change = self.before_change, None
            hook()

    @property
    def cache(self) -> Path:
        return self.workdir.path.parent.parent  # <cache>/work/<cell>

    def lock_options(self) -> dict[str, str]:
        return {"lock_timeout": format_duration(self.lock_timeout_s)} if self.lock_timeout_s > 0 else {}

    @property
    def deployment(self) -> Deployment:
        return self.workdir.deployment

    @property
    def plan_path(self) -> Path:
        return self.workdir.path / PLAN_FILE

    @property
    def plan_json_path(self) -> Path:
        """Where the redacted `terraform show -json` of the saved plan is kept (see ensure_plan_json)."""
        return self.workdir.results_dir / PLAN_JSON

    def ensure_plan_json(self) -> Path:
        """The redacted `terraform show -json` of the saved plan, made on first use — not by every
        plan (one Terraform process fewer per cell) — and kept with the plan."""
        return _plan_json(self.workdir, self.terraform)


def terraform_base_env(repo_root: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """Environment for any Terraform run in this repo (see terraform.base_environment)."""
    return base_environment(repo_cache_dir(repo_root, environ), environ)


def terraform_environment(repo_root: Path, environ: Mapping[str, str]) -> tuple[dict[str, str], str | None, dict[str, str]]:
    """Environment for Terraform, the sandbox endpoint (or None) and extra backend settings."""
    from ..aws.sandbox import active_endpoint, aws_env, backend_overrides

    env = terraform_base_env(repo_root, environ)
    endpoint = active_endpoint(environ)
    extra: dict[str, str] = {}
    if endpoint:
        env.update(aws_env(endpoint, environ))
        extra = backend_overrides()
    elif not has_aws_credentials(environ):
        raise TfdeployError(
            "no AWS credentials found: for the local sandbox run `tfdeploy sandbox up` and "
            "`eval \"$(tfdeploy sandbox env)\"`; for AWS set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
        )
    return env, endpoint, extra


def saved_plan_json(workdir: Workdir, repo_root: Path, environ: Mapping[str, str],
                    terraform_bin: str | None = None) -> Path:
    """`terraform show -json` of the work dir's saved plan, redacted: made on first use, then kept."""
    plan_path = workdir.path / PLAN_FILE
    if not plan_path.is_file():
        raise ValidationError(f"no saved plan for {workdir.deployment.tag.name}; run: tfdeploy plan "
                              f"--tag {workdir.deployment.tag.name}")
    out = workdir.results_dir / PLAN_JSON
    if out.is_file() and out.stat().st_mtime >= plan_path.stat().st_mtime:
        return out
    binary = find_terraform(terraform_bin, repo_root, environ)
    return _plan_json(workdir, Terraform(binary, workdir.path, terraform_base_env(repo_root, environ)))


def _plan_json(workdir: Workdir, terraform: Terraform) -> Path:
    plan_path = workdir.path / PLAN_FILE
    out = workdir.results_dir / PLAN_JSON
    if not plan_path.is_file():
        raise ValidationError(f"no saved plan for {workdir.deployment.tag.name}; run: tfdeploy plan "
                              f"--tag {workdir.deployment.tag.name}")
    if out.is_file() and out.stat().st_mtime >= plan_path.stat().st_mtime:
        return out
    shown = terraform.check("show", "-json", PLAN_FILE, no_color=_flag(), stream=False)
    write_atomic(out, redacted_json(shown.stdout))
    return out


def redacted_json(text: str) -> str:
    """`terraform show -json` output with what Terraform marks sensitive hidden (see redact)."""
    from .redact import redact_show

    return json.dumps(redact_show(json.loads(text)))


def init_without_backend(workdir: Workdir, repo_root: Path, environ: Mapping[str, str],
                         terraform_bin: str | None = None) -> str | None:
    """`terraform init -backend=false` so `validate` can run; None on success, else its stderr.

    The lint gate decides what a failure means (gates.lint.init_failure_verdict): a download that
    could not reach the network skips validate, saying what was not checked; anything else fails.
    """
    from . import plugincache

    binary = find_terraform(terraform_bin, repo_root, environ)
    terraform = Terraform(binary, workdir.path, terraform_base_env(repo_root, environ))
    # It installs providers too: under the same plugin-cache guard as every other init.
    with plugincache.guarded(workdir.path, terraform.env, terraform.say) as mode:
        result = terraform.run("init", backend="false", input=False, no_color=_flag(), stream=False,
                               unset=plugincache.init_unset(mode))
    if result.returncode == 0:
        return None
    return result.stderr or f"terraform init -backend=false exited {result.returncode} with no output"


def has_aws_credentials(environ: Mapping[str, str]) -> bool:
    if environ.get("AWS_ACCESS_KEY_ID") or environ.get("AWS_PROFILE"):
        return True
    if environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") or environ.get("AWS_WEB_IDENTITY_TOKEN_FILE"):
        return True  # CodeBuild / EKS
    import botocore.session  # only when the cheap checks say nothing

    session = botocore.session.Session()
    try:
        return session.get_credentials() is not None
    except Exception:  # a broken profile file is "no usable credentials"
        return False


def find_terraform(explicit: str | None, repo_root: Path, environ: Mapping[str, str]) -> str:
    from ..gates.tools import require_tool

    return explicit or require_tool("terraform", environ, repo_root)


@contextmanager
def hold_cell(repo_root: Path, tag: Tag, *, environ: Mapping[str, str] = os.environ, timeout_s: float = 0,
              command: str | None = None) -> Iterator[Tag]:
    """Hold the tag's cell lock (see celllock.py) for everything that uses its work dir.

    On the way out, an `errored.tfstate` any Terraform run of the cell left is moved to the kept
    place (errored.py), so it survives whatever ended the command.
    """
    cache = repo_cache_dir(repo_root, environ)
    with cell_lock(cache, tag.cell, timeout_s=timeout_s, command=command):
        try:
            yield tag
        finally:
            from .workdir import workdir_path

            kept = rescue(workdir_path(repo_root, tag, environ), cache, tag.cell)
            if kept is not None:
                import sys

                print(f"tfdeploy: cell {tag.cell}: {kept.sentence(tag.name)}", file=sys.stderr)


def terraform_said(result: Any) -> str:
    """All a failed run's output where a state it could not save may be: its text and, with
    -json, its emergency state dump event (engine/errored.py reads the state back out)."""
    from .errored import dumped_in_events

    return "\n".join((result.stdout, result.stderr, dumped_in_events(result.events)))


def errored_state_error(session: Session, error: TfdeployError, output: str = "") -> TfdeployError:
    """After a failed Terraform run: keep its errored.tfstate (or the state it printed, `output`)
    and say where in the error line; the backend takes it when the local disk fails."""
    from .errored_backend import remote_keeper

    kept = rescue(session.workdir.path, session.cache, session.tag.cell, output=output,
                  remote=remote_keeper(session))
    if kept is None:
        return error
    return TfdeployError(f"{error}; {kept.sentence(session.tag.name)}")


def open_workdir(repo_root: Path, tag: Tag, *, overrides: Mapping[str, Any],
                 environ: Mapping[str, str] = os.environ, options: SourceOptions = SourceOptions(),
                 sandbox: bool = False, reuse: bool = False, source: SourceRef | None = None) -> Workdir:
    """Validate the tag, check its source and build (or reopen) its work dir. No AWS access.

    `source`: the tag's source, already checked by the caller (a fleet checks every tag once)."""
    if reuse:
        return load_workdir(repo_root, tag, environ=environ, overrides=overrides)
    settings = load_settings(repo_root, environ, overrides)
    if source is None:
        source = check_source(repo_root, tag, settings.default_branch, options)
    return prepare_workdir(repo_root, tag, source, environ=environ, overrides=overrides, sandbox=sandbox)


def open_session(repo_root: Path, tag: Tag, *, overrides: Mapping[str, Any],
                 environ: Mapping[str, str] = os.environ, options: SourceOptions = SourceOptions(),
                 terraform_bin: str | None = None, sink: IO[str] | None = None,
                 err_sink: IO[str] | None = None, reuse_workdir: bool = False,
                 lock_timeout_s: float = 0, source: SourceRef | None = None) -> Session:
    """A work dir plus a Terraform pointed at the deployment's AWS target (sandbox or AWS).

    `tag`: parsed once, at the CLI edge; the deployment is resolved from it under the tagged
    commit's settings when the work dir is built. The caller holds the cell lock (`hold_cell`)
    for as long as it uses the session.
    """
    settings = load_settings(repo_root, environ, overrides)
    binary = find_terraform(terraform_bin, repo_root, environ)
    env, endpoint, extra = terraform_environment(repo_root, environ)
    if not reuse_workdir:
        prewarm_state_client(settings, tag, env, endpoint)
    workdir = open_workdir(repo_root, tag, overrides=overrides, environ=environ, options=options,
                           sandbox=endpoint is not None, reuse=reuse_workdir, source=source)
    terraform = Terraform(binary, workdir.path, env, sink, err_sink)
    tag = workdir.deployment.tag
    backend = workdir.deployment.backend
    terraform.context = RunContext(tag.cell, tag.name, f"s3://{backend.bucket}/{backend.key}")
    return Session(repo_root, tag, workdir, terraform, endpoint, extra, lock_timeout_s)


def prewarm_state_client(settings: Settings, tag: Tag | None, env: Mapping[str, str], endpoint: str | None) -> None:
    """The S3 client a fresh work dir needs (state probe, lock-mode record, ledger), built while
    git exports the tree (or, for a fleet, while the tags are checked). The Region comes from the
    working tree's settings: a hint only (the tagged tree's settings decide the backend), so a
    wrong guess costs one idle client."""
    from ..aws.clients import prewarm

    region = settings.state_region if settings.state_layout != "regional" else (tag.region if tag else None)
    if region:
        prewarm("s3", region, env, endpoint)


def check_source(repo_root: Path, tag: Tag, default_branch: str, options: SourceOptions) -> SourceRef:
    if options.worktree:
        return worktree_source(repo_root, tag.name)
    return tag_source(repo_root, tag.name, default_branch=default_branch,
                      allow_lightweight=options.allow_lightweight,
                      skip_branch_check=options.skip_branch_check)


def check_sources(repo_root: Path, tags: Sequence[Tag], default_branch: str,
                  options: SourceOptions) -> dict[str, SourceRef | TfdeployError]:
    """check_source for many tags at once (a fleet): tag name -> its source, or why not."""
    if options.worktree:
        return {tag.name: worktree_source(repo_root, tag.name) for tag in tags}
    return dict(tag_sources(repo_root, [tag.name for tag in tags], default_branch=default_branch,
                            allow_lightweight=options.allow_lightweight,
                            skip_branch_check=options.skip_branch_check))


def init(session: Session, quiet: bool = False) -> StageResult:
    """terraform init with the deployment's backend; `quiet` keeps its output unless it fails.

    Beside it, the state is asked what must be known before Terraform touches it (preflight.py:
    the lock mode, refused when it is not this run's; AWS resources the code no longer has, for
    which the provider is added and init runs again). Skipped when the work dir is already
    initialised for exactly this backend, Terraform and configuration (initrecord.py); inits that
    may write the shared plugin cache are serialised (plugincache.py)."""
    from . import preflight
    from .workdir import with_aws_provider

    started = time.monotonic()
    ran, answers = preflight.beside(session, lambda: _init_backend(session, quiet))
    if answers.needs_provider:
        session.workdir = with_aws_provider(session.workdir, sandbox=session.sandbox_endpoint is not None)
        ran = _init_backend(session, quiet)
    notes = () if ran else ("already initialised for this backend; init skipped",)
    return StageResult(stage="init", status=PASSED, duration_s=round(time.monotonic() - started, 3), notes=notes)


def _init_backend(session: Session, quiet: bool) -> bool:
    """terraform init, unless the work dir is initialised for exactly this; whether it ran."""
    from . import initrecord, plugincache

    d = session.deployment
    backend = {**d.backend.backend_config_args(), **session.backend_extra}
    path = session.workdir.path
    print_ = initrecord.fingerprint(path, backend_args=backend, lock_mode=d.backend.lock_mode,
                                    binary=session.terraform.binary, env=session.terraform.env)
    if initrecord.is_initialised(path, print_, backend):
        return False
    initrecord.forget(path)
    with plugincache.guarded(path, session.terraform.env, session.terraform.say) as mode:
        session.terraform.check("init", input=False, reconfigure=_flag(), backend_config=backend,
                                no_color=_flag(), stream=not quiet, unset=plugincache.init_unset(mode))
    initrecord.remember(path, print_)
    return True


def _flag() -> Any:
    from python_terraform import IsFlagged

    return IsFlagged


def write_plan_meta(session: Session, summary: PlanSummary, **extra: str) -> None:
    """Record what the saved plan is (tag, commit, cell, checksum, summary) beside it; apply checks
    it before anything runs. `extra`: e.g. `operation="destroy"` for a destroy plan."""
    meta = {
        **extra,
        "tag": session.tag.name,
        "commit": session.workdir.source.commit,
        "worktree": session.workdir.source.worktree,
        "cell": session.tag.cell,
        "target_module": session.deployment.target_module,
        "plan_sha256": _sha256(session.plan_path),
        "summary": {"add": summary.add, "change": summary.change, "destroy": summary.destroy},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_atomic(session.workdir.path / PLAN_META, json.dumps(meta, indent=2) + "\n")


def plan(session: Session, auto_approved: bool = False, own_run: bool = False) -> tuple[StageResult, PlanSummary]:
    """Init, plan the deployment's module namespace into a saved plan, record its metadata
    (`auto_approved`: to be applied without review; `own_run`: by the run that made it and no
    other, see apply_direct)."""
    from .rootchecks import evaluate_root_guards

    started = time.monotonic()
    init(session)
    d = session.deployment
    # What -target would skip in the root (variable validations, check blocks): evaluated here,
    # so every plan (one tag, a fan-out's cell, --auto-approve) gets them.
    guard_notes = evaluate_root_guards(session, _say_in_log(session))
    session.plan_path.unlink(missing_ok=True)
    (session.workdir.path / PLAN_META).unlink(missing_ok=True)
    (session.workdir.path / PLAN_SPENT).unlink(missing_ok=True)
    # plan.json is made from the saved plan when asked for (Session.ensure_plan_json); an old one
    # must not outlive its plan.
    (session.workdir.results_dir / PLAN_JSON).unlink(missing_ok=True)
    events = session.terraform.on_event is not None
    planned = session.terraform.check("plan", input=False, no_color=_flag(), detailed_exitcode=_flag(),
                                      out=PLAN_FILE, target=[d.target_module], var_file=list(d.var_files),
                                      ok=(0, 2), ui_json=events, **session.lock_options())
    summary = _plan_summary(session, planned)
    marks = {"auto_approved": "true"} if auto_approved else {}
    if own_run:
        marks[OWN_RUN] = "true"
    write_plan_meta(session, summary, **marks)
    result = StageResult(
        stage="plan", status=PASSED, duration_s=round(time.monotonic() - started, 3),
        counts={"add": summary.add, "change": summary.change, "destroy": summary.destroy},
        exports=_exports(session, PLAN_SUMMARY=str(summary), PLAN_ADD=str(summary.add),
                         PLAN_CHANGE=str(summary.change), PLAN_DESTROY=str(summary.destroy),
                         PLAN_HAS_CHANGES="true" if summary.has_changes else "false"),
        notes=guard_notes,
    )
    write_result(result, session.workdir.results_dir)
    return result, summary


def _say_in_log(session: Session) -> Callable[[str], None]:
    """A line of tfdeploy's into the cell's output (its log in a fan-out), beside Terraform's."""
    sink = session.terraform.err_sink

    def say(text: str) -> None:
        sink.write(f"tfdeploy: {text}\n")
        sink.flush()
    return say


def _plan_summary(session: Session, planned: Any) -> PlanSummary:
    from .tfjson import change_summary

    if planned.events:
        counts = change_summary(planned.events)
        if counts is not None:
            return PlanSummary(counts.add, counts.change, counts.remove)
    else:
        summary = summary_from_output(planned.stdout, planned.returncode)
        if summary is not None:
            return summary
    # The output did not say (another Terraform's wording?): ask the saved plan itself.
    return summarize_plan(json.loads(session.ensure_plan_json().read_text(encoding="utf-8")))


def _exports(session: Session, **extra: str) -> dict[str, str]:
    d = session.deployment
    return {"TAG": d.tag.name, "ENV": d.tag.env, "TEAM": d.tag.team, "SCOPE": d.tag.scope_name,
            "REGION": d.region, "TARGET_MODULE": d.target_module, **extra}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_saved_plan(session: Session, current: SourceRef, operation: str = "apply") -> dict[str, Any]:
    """Refuse a saved plan that is spent, made from another tag or commit, altered, or whose own
    content (backend, variables, changed addresses) is not this cell's; or a plan of the other
    `operation` (a destroy plan is applied only by `destroy`, see engine/destroy.py)."""
    name = session.tag.name
    meta_path = session.workdir.path / PLAN_META
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else None
    if meta and meta.get("operation", "apply") != operation and not meta.get("spent_at"):
        kind = "a destroy plan (made by tfdeploy destroy)" if meta.get("operation") == "destroy" \
            else "an apply plan (made by tfdeploy plan)"
        raise ValidationError(f"the saved plan of {meta.get('tag', name)} is {kind}; nothing applied; "
                              f"run tfdeploy plan --tag {name}")
    if meta and meta.get("spent_at") and meta.get("tag") == name:
        raise ValidationError(f"the saved plan of {name} was already used by an apply at "
                              f"{meta['spent_at']}; run tfdeploy plan --tag {name}")
    if meta is None or not session.plan_path.is_file():
        raise ValidationError(f"no saved plan for {name}; run: tfdeploy plan --tag "
                              f"{name} (or apply --auto-approve to plan and apply)")
    if meta["tag"] != name:
        raise ValidationError(f"the saved plan is for tag {meta['tag']}, not {name}; "
                              f"run: tfdeploy plan --tag {name}")
    if meta["worktree"] != current.worktree:
        what = "the working tree" if meta["worktree"] else "the tagged commit"
        raise ValidationError(f"the saved plan was made from {what}; plan again the same way you apply")
    if not current.worktree and meta["commit"] != current.commit:
        raise ValidationError(
            f"the saved plan was made from commit {meta['commit'][:12]} but {name} now "
            f"points at {current.commit[:12]}; run: tfdeploy plan --tag {name}"
        )
    if _sha256(session.plan_path) != meta["plan_sha256"]:
        raise ValidationError("the saved plan file changed after it was made (checksum mismatch); "
                              f"run: tfdeploy plan --tag {name}")
    check_plan_content(session, session.plan_path)
    return meta


def check_plan_content(session: Session, path: Path) -> None:
    """The checksum beside a plan can be recomputed by anyone who can write the work dir; the
    plan's own backend, variables and addresses cannot be faked without changing what it does."""
    from .planfile import mismatches, read_plan
    from .provider import deployment_tfvars

    d = session.deployment
    found = mismatches(read_plan(path), bucket=d.backend.bucket, key=d.backend.key,
                       region=d.backend.region, variables=deployment_tfvars(d),
                       namespace=d.target_module)
    if found:
        raise ValidationError(f"the saved plan in the work dir of {d.tag.name} is not this cell's: "
                              f"{'; '.join(found)}; nothing applied; run tfdeploy plan --tag {d.tag.name}")


def spend_saved_plan(session: Session, meta: dict[str, Any]) -> Path:
    """Claim the saved plan for this apply: rename it (atomic, so one apply wins) and record when.

    Done before Terraform starts, so a crash or failure mid-apply cannot leave it appliable."""
    spent = session.workdir.path / PLAN_SPENT
    try:
        os.rename(session.plan_path, spent)
    except FileNotFoundError:
        raise ValidationError(f"the saved plan of {session.tag.name} was just taken by another apply; "
                              f"run tfdeploy plan --tag {session.tag.name}") from None
    meta = {**meta, "spent_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    write_atomic(session.workdir.path / PLAN_META, json.dumps(meta, indent=2) + "\n")
    if _sha256(spent) != meta["plan_sha256"]:  # swapped between the check and the claim
        raise ValidationError("the saved plan file changed after it was made (checksum mismatch); "
                              f"run: tfdeploy plan --tag {session.tag.name}")
    return spent


def apply_once(session: Session, meta: dict[str, Any]) -> None:
    """Apply the checked saved plan exactly once: spend it before Terraform starts, check what the
    plan file itself says (backend, variables, addresses), and keep an errored state if the apply
    could not save one. Every apply of a saved plan (apply, destroy) goes through here."""
    spent = spend_saved_plan(session, meta)
    check_plan_content(session, spent)
    # Someone follows the events (a fleet's live table): the -json stream. A saved plan's apply
    # prints no diff, so the log loses nothing: each event's @message is Terraform's own line.
    follow = session.terraform.on_event is not None
    session.changing()
    try:
        applied = session.terraform.run("apply", spent.name, input=False, no_color=_flag(), ui_json=follow,
                                        **session.lock_options())
    except TfdeployError as exc:
        raise errored_state_error(session, exc) from None
    if applied.returncode != 0:
        from .terraform import failure

        # failure(): a state held by another run is StateLocked (recorded refused, not failed).
        raise errored_state_error(session, failure("apply", applied, session.tag.name),
                                  terraform_said(applied)) from None


def apply_saved(session: Session, current: SourceRef) -> StageResult:
    """Apply the saved plan of the same tag and commit, once; never a plan `apply --auto-approve`
    made for its own apply (nobody reviewed it; its run stopped or skipped it before applying)."""
    started = time.monotonic()
    meta = check_saved_plan(session, current)
    if meta.get(OWN_RUN):
        name = session.tag.name
        raise ValidationError(f"the saved plan of {name} was made by apply --auto-approve for its own "
                              "apply, which never ran (stopped, or skipped after a cell before it failed); "
                              f"nobody reviewed it, so nothing applied; run tfdeploy plan --tag {name}")
    init(session)  # a fresh CodeBuild container has the work dir but not the initialised backend
    apply_once(session, meta)
    return _applied_result(session, meta, started)


def _applied_result(session: Session, meta: Mapping[str, Any], started: float) -> StageResult:
    """The apply stage's result: a saved plan applies exactly what it planned (Terraform refuses
    a stale one), so its counts are the plan's."""
    summary = meta["summary"]
    backend = session.deployment.backend
    result = StageResult(
        stage="apply", status=PASSED, duration_s=round(time.monotonic() - started, 3),
        counts=dict(summary),
        exports=_exports(session, STATE_BUCKET=backend.bucket, STATE_KEY=backend.key,
                         PLAN_SUMMARY=f"+{summary['add']} ~{summary['change']} -{summary['destroy']}"),
    )
    return write_result_after_change(result, session.workdir.results_dir)


# The saved plan's mark for a plan made by `apply --auto-approve` to apply in the same run.
OWN_RUN = "own_run"


def discard_plan(session: Session) -> None:
    """Remove a saved plan that will not be applied (and its metadata): an unreviewed plan never
    outlives the run that made it. Only the plan: the state, its lock and the record are untouched."""
    session.plan_path.unlink(missing_ok=True)
    (session.workdir.path / PLAN_META).unlink(missing_ok=True)


def apply_direct(session: Session, turn: Callable[[], None] | None = None) -> StageResult:
    """`apply --auto-approve`: plan into a saved plan, then apply it by the saved-plan path.

    Nobody reviews an auto-approved plan, so it must pass every check a reviewed one does before
    Terraform changes anything: its backend, its variables (a tfvars file cannot set a generated
    one) and its addresses (nothing outside the cell's namespace), checked on the plan file itself
    (check_saved_plan), then spent and applied once (apply_once). Planning and applying in one
    `terraform apply -auto-approve` saved a process but gave no moment to check what it was about
    to do. The human diff is still printed by the plan; the live table follows the -json events.

    `turn`: called between the checked plan and its apply; it returns when the cell may apply
    (a fan-out's later wave plans while its canary applies, fleet/turns.py) or raises, and then
    the plan is discarded: nothing was applied, and it must not be applied by anyone later."""
    started = time.monotonic()
    plan(session, auto_approved=True, own_run=True)
    meta = check_saved_plan(session, session.workdir.source)
    if turn is not None:
        try:
            turn()
        except BaseException:
            discard_plan(session)
            raise
    apply_once(session, meta)
    return _applied_result(session, meta, started)
