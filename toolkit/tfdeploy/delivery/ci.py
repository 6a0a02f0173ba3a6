"""`tfdeploy ci STAGE`: run one pipeline stage for the tag the build is about.

The buildspecs call this and nothing else, so the pipeline's logic is Python that runs (and is
tested) the same on a laptop: set the same variables and `tfdeploy ci plan` does what the
CodeBuild plan action does.

Inputs, all from the environment:
- the tag: `TFDEPLOY_TAG` (the source build gets it from the EventBridge event) or
  `tfdeploy-source.json` at the top of `CODEBUILD_SRC_DIR` (every later stage: the published
  zip carries it). When both are present they must agree.
- `TFDEPLOY_EXPECTED_TAG` (every pipeline action: the execution's TFDEPLOY_TAG variable, set by
  `publish` when it started the execution): the source must hold exactly that tag, so an action
  can never run another tag's code, whichever object version it was given.
- `ENV`: the pipeline's environment. A tag for another env is refused: each env has its own
  pipeline, and a `qa_...` tag must never run in the dev pipeline.
- `CODEBUILD_SRC_DIR` (default: the current directory), `CODEBUILD_SRC_DIR_plan` (the apply
  action's plan artifact), `AWS_REGION` and `CODEBUILD_RESOLVED_SOURCE_VERSION` (logged),
  `TF_BACKEND_CONFIG_PREFIX` (read by settings).
- `TFDEPLOY_VERSION`: the toolkit version the buildspecs were generated with; must match.
- A release of several cells: its plan/apply build without TFDEPLOY_TAG is the stage build
  (release_stage.py: starts the cells' batch and waits); each cell build of the batch saves or
  fetches its plan under TFDEPLOY_PLAN_ARTIFACTS (plan_artifacts.py); a bake build
  (TFDEPLOY_BAKE_SECONDS) only waits.

Each stage is an ordinary tfdeploy command run in-process (see `stage_argv`). The lint and scan
stages check the source dir itself: it is the clone at the tag, and `check_source_commit` makes
sure HEAD is the commit the metadata names. Outputs: KEY=VALUE exports (printed, and written to
the exports file the buildspec loads into the shell for `env.exported-variables`), JUnit reports,
and for plan the work dir that becomes the plan artifact.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from .. import __version__
from ..errors import TfdeployError, ValidationError
from ..model.tags import Tag, parse_tag, show
from ..results import write_atomic
from .buildspec import (
    EXPORTS_FILE,
    JUNIT_REPORTS,
    PLAN_ARTIFACT,
    PLAN_DIR,
    RELEASE_ONLY_EXPORTS,
    REPORTS_DIR,
    RESULTS_DIR,
    STAGE_EXPORTS,
    STAGES,
)
from .publish import METADATA_FILE

TAG_VAR = "TFDEPLOY_TAG"
EXPECTED_TAG_VAR = "TFDEPLOY_EXPECTED_TAG"
ENV_VAR = "ENV"
CACHE_VAR = "TFDEPLOY_CACHE_DIR"
_EXPORT_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
# The stage name each command writes its <stage>.result.json under.
_RESULT_NAMES = {"tflint": "lint", "checkov": "scan", "plan": "plan", "apply": "apply"}


@dataclass(frozen=True)
class CiContext:
    stage: str
    src_dir: Path
    tag: str
    tag_origin: str  # TFDEPLOY_TAG or the metadata file
    pipeline_env: str
    metadata: dict[str, Any] | None


def src_dir_of(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("CODEBUILD_SRC_DIR") or os.getcwd())


def cache_dir_for(stage: str, environ: Mapping[str, str]) -> Path | None:
    """TFDEPLOY_CACHE_DIR for plan/apply: where the plan's work dir is written and read back."""
    if stage == "plan":
        return src_dir_of(environ) / PLAN_DIR
    if stage == "apply":
        from .plan_artifacts import FETCHED_DIR, PREFIX_VAR

        if environ.get(PREFIX_VAR):
            # A release's apply build: its cell's plan, fetched from the plan batch (plan_artifacts.py).
            return src_dir_of(environ) / FETCHED_DIR
        secondary = environ.get(f"CODEBUILD_SRC_DIR_{PLAN_ARTIFACT}")
        # Locally (one dir for every stage) the plan stage's output is still in place.
        return Path(secondary) if secondary else src_dir_of(environ) / PLAN_DIR
    return None


def stage_environment(stage: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Variables the stage command runs with, on top of the build's environment (pure)."""
    cache = cache_dir_for(stage, environ)
    return {CACHE_VAR: str(cache)} if cache is not None else {}


def stage_needs_checkov(stage: str, environ: Mapping[str, str]) -> bool:
    """The checkov stage, and the apply stage of a protected env (its apply scans the commit
    first, gates/protected.py), need checkov installed; the others do not."""
    if stage == "checkov":
        return True
    if stage != "apply" or environ.get("TFDEPLOY_BAKE_SECONDS"):
        return False
    from ..model.settings import load_settings

    return environ.get(ENV_VAR, "") in load_settings(src_dir_of(environ), environ).protected_envs


def stage_argv(stage: str, tag: str, environ: Mapping[str, str]) -> list[str]:
    """The tfdeploy command line that runs `stage` for `tag` (pure)."""
    src = str(src_dir_of(environ))
    # Under ci the stage prints its KEY=VALUE lines (--exports; a person's run does not).
    repo = ["--exports", "--repo", src]
    results = ["--results-dir", f"{src}/{RESULTS_DIR}"]
    if stage == "source":
        # A pushed tag's source build: claimed once, gathered into its release (delivery/claims.py).
        return ["publish", "--tag", tag, "--claim", "--repo", src]
    # lint/scan check the tagged commit in its work dir, exactly as `tfdeploy lint --tag` does
    # locally; scan applies the tag's env policy (soft fail in dev).
    if stage == "tflint":
        return ["lint", "--tag", tag, "--junit", f"{src}/{REPORTS_DIR}/{JUNIT_REPORTS['tflint']}",
                *results, *repo]
    if stage == "checkov":
        return ["scan", "--tag", tag, "--junit", f"{src}/{REPORTS_DIR}/{JUNIT_REPORTS['checkov']}",
                *results, *repo]
    if stage in ("plan", "apply"):
        return [stage, "--tag", tag, *repo]
    raise ValidationError(f"unknown stage {show(stage)}; stages: {', '.join(STAGES)}")


def _read_metadata(src_dir: Path) -> dict[str, Any] | None:
    path = src_dir / METADATA_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} is not readable JSON ({exc}); re-publish the tag") from None
    if not isinstance(data, dict) or not isinstance(data.get("tag"), str):
        raise ValidationError(f"{path} has no tag; re-publish the tag (tfdeploy publish --tag TAG)")
    return data


def read_context(stage: str, environ: Mapping[str, str], *, release: bool = False) -> CiContext:
    """Gather and cross-check the stage's inputs from the environment and the metadata file.
    `release`: the stage build of a release of several cells, which starts their batch
    (release_stage.py) rather than deploying one cell."""
    if stage not in STAGES:
        raise ValidationError(f"unknown stage {show(stage)}; stages: {', '.join(STAGES)}")
    wanted = environ.get("TFDEPLOY_VERSION")
    if wanted and wanted != __version__:
        raise TfdeployError(f"the buildspec was generated by tfdeploy {wanted} but tfdeploy "
                            f"{__version__} is installed; run tfdeploy buildspec generate and commit")
    src_dir = src_dir_of(environ)
    # The source build runs on a CodeCommit checkout: any metadata file there is not its input.
    metadata = None if stage == "source" else _read_metadata(src_dir)
    from_env = environ.get(TAG_VAR) or None
    from_file = metadata["tag"] if metadata else None
    release_tags = metadata.get("tags") if metadata and isinstance(metadata.get("tags"), list) else []
    # A release's batch build names its own cell (TFDEPLOY_TAG): any tag the release lists.
    if from_env and from_file and from_env != from_file and from_env not in release_tags:
        raise ValidationError(f"{TAG_VAR}={show(from_env)} but {METADATA_FILE} says {show(from_file)}; "
                              f"unset {TAG_VAR} or re-publish the tag")
    if stage in ("plan", "apply") and not from_env and len(release_tags) > 1 and not release:
        # A build deploying one cell of it would deploy the first cell alone and say nothing of the others.
        raise ValidationError(
            f"release {metadata.get('release') if metadata else '?'} has {len(release_tags)} cells: its plan and "
            f"apply run one batch build per cell, each with its {TAG_VAR} (tfdeploy ci {stage} without "
            f"{TAG_VAR} starts that batch; tfdeploy buildspec generate --release prints it; tfdeploy pipeline "
            "run --env ENV runs it here)")
    tag = from_env or from_file
    expected = environ.get(EXPECTED_TAG_VAR) or None
    if expected and stage != "source":
        if not from_file:
            raise ValidationError(f"this execution is for {show(expected)} ({EXPECTED_TAG_VAR}) but "
                                  f"{src_dir} has no {METADATA_FILE}; the source is not a published "
                                  f"tag: run tfdeploy publish --tag {expected}")
        if from_file != expected:
            raise ValidationError(f"this execution is for {show(expected)} ({EXPECTED_TAG_VAR}) but its "
                                  f"source holds {show(from_file)}; refusing to run another tag's code: "
                                  f"run tfdeploy publish --tag {expected} to start an execution pinned to it")
    if not tag:
        where = (f"set {TAG_VAR} (the EventBridge target passes detail.referenceName)"
                 if stage == "source" else
                 f"set {TAG_VAR}, or run on a published source ({METADATA_FILE} in {src_dir})")
        raise ValidationError(f"no tag for stage {stage}: {where}")
    pipeline_env = environ.get(ENV_VAR)
    if not pipeline_env:
        raise ValidationError(f"{ENV_VAR} is not set: the pipeline sets it to its environment; "
                              f"to run locally, export {ENV_VAR}=<env>")
    return CiContext(stage=stage, src_dir=src_dir, tag=tag,
                     tag_origin=TAG_VAR if from_env else METADATA_FILE,
                     pipeline_env=pipeline_env, metadata=metadata)


def check_tag_env(tag: Tag, pipeline_env: str) -> None:
    if tag.env != pipeline_env:
        raise ValidationError(f"tag {tag.name!r} is for env {tag.env!r} but this is the "
                              f"{pipeline_env!r} pipeline ({ENV_VAR}={pipeline_env}); refusing to run it")


def check_source_commit(ctx: CiContext) -> None:
    """The unzipped source must be the commit the metadata names (nothing swapped in between)."""
    if not ctx.metadata or not (ctx.src_dir / ".git").exists():
        return
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ctx.src_dir, capture_output=True,
                          text=True, check=False)
    head = proc.stdout.strip()
    expected = str(ctx.metadata.get("commit", ""))
    if proc.returncode == 0 and expected and head != expected:
        raise ValidationError(f"{ctx.src_dir} is at commit {head[:12]} but {METADATA_FILE} says "
                              f"{expected[:12]}; the source artifact is inconsistent, re-publish the tag")


def deployment_exports(tag: Tag, region: str, target_module: str) -> dict[str, str]:
    """What later pipeline actions need to know about the deployment (pure)."""
    return {"TAG": tag.name, "ENV": tag.env, "TEAM": tag.team, "SCOPE": tag.scope_name,
            "REGION": region, "TARGET_MODULE": target_module}


def render_exports(exports: Mapping[str, str]) -> str:
    """KEY=VALUE lines, one line per value (pure)."""
    lines = []
    for key, value in exports.items():
        if not _EXPORT_NAME.fullmatch(key):
            raise TfdeployError(f"cannot export {show(key)}: not an upper-case variable name")
        lines.append(f"{key}={' '.join(str(value).splitlines())}")
    return "".join(line + "\n" for line in lines)


def result_file(stage: str, tag: Tag, environ: Mapping[str, str], repo_root: Path) -> Path | None:
    """Where the stage command writes its <stage>.result.json (its exports come from there)."""
    if stage in ("tflint", "checkov"):
        return src_dir_of(environ) / RESULTS_DIR / f"{_RESULT_NAMES[stage]}.result.json"
    if stage in ("plan", "apply"):
        from ..engine.workdir import workdir_path
        from ..gates.findings import default_results_dir

        workdir = workdir_path(repo_root, tag, {**environ, **stage_environment(stage, environ)})
        return default_results_dir(workdir) / f"{stage}.result.json"
    return None


def _read_result_exports(path: Path | None) -> dict[str, str]:
    if path is None or not path.is_file():
        return {}
    try:
        exports = json.loads(path.read_text(encoding="utf-8")).get("exports", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in exports.items()} if isinstance(exports, dict) else {}


def report_kept_records(cache_dir: Path, echo: Callable[[str], None]) -> None:
    """The apply stage records itself in the ledger (with CODEBUILD_BUILD_ID); a record it could
    not write would wait in the build's outbox, which CodeBuild throws away: print it whole in the
    build log, so it is kept there and can be written back by hand."""
    from ..fleet.ledger import outbox_dir

    for path in sorted(outbox_dir(cache_dir).glob("*.json")):
        try:
            text = " ".join(path.read_text(encoding="utf-8").split())
        except OSError:
            continue
        echo(f"ci: warning: ledger record not written; kept in this build's log: {text}")


def run(
    stage: str,
    environ: Mapping[str, str],
    exports_file: Path | None,
    invoke: Callable[[list[str], dict[str, str]], int],
    echo: Callable[[str], None],
) -> int:
    """Run a stage: check inputs, print/write exports, invoke the stage command; its exit code."""
    from ..cli.common import RepoContext
    from ..model.deployment import MODULE_FOR_SCOPE, resolve_tag
    from .batch import BAKE_VAR

    if environ.get(BAKE_VAR) and stage == "apply":
        return bake(environ[BAKE_VAR], echo)
    from .release_stage import is_release_stage, run_release_stage

    if is_release_stage(stage, environ):
        return run_release_stage(stage, environ, exports_file, echo)
    ctx = read_context(stage, environ)
    repo = RepoContext(ctx.src_dir, {}, 0)
    settings = repo.settings
    tag = parse_tag(ctx.tag, settings.extra_regions)
    check_tag_env(tag, ctx.pipeline_env)
    check_source_commit(ctx)
    if stage == "source":
        # The tag-capture build's checkout is not necessarily the tag's tree, so envs/ is not
        # read here; publish checks the tag and its env's pipeline.
        exports = deployment_exports(tag, tag.region or settings.global_region,
                                     MODULE_FOR_SCOPE[tag.scope])
    else:
        deployment = resolve_tag(tag, settings, repo.root)
        exports = deployment_exports(tag, deployment.region, deployment.target_module)
    exports_file = exports_file or ctx.src_dir / EXPORTS_FILE
    write_atomic(exports_file, render_exports(exports))
    echo(render_exports(exports).rstrip("\n"))

    extra_env = stage_environment(stage, environ)
    from .batch import identifier
    from .plan_artifacts import PREFIX_VAR

    carried = stage in ("plan", "apply") and bool(environ.get(PREFIX_VAR))
    if carried and stage == "apply":
        from .plan_artifacts import fetch

        echo(f"ci: fetched this cell's plan from {fetch(environ, identifier(tag), Path(extra_env[CACHE_VAR]))}")
    if stage == "apply":
        from ..engine.workdir import workdir_path

        workdir = workdir_path(repo.root, tag, {**environ, **extra_env})
        if not workdir.is_dir():
            raise TfdeployError(f"no plan artifact for {tag.name} at {workdir}: the apply action needs "
                                f"the plan action's output artifact '{PLAN_ARTIFACT}' as an input "
                                f"(CODEBUILD_SRC_DIR_{PLAN_ARTIFACT})")
    if stage in JUNIT_REPORTS:
        (ctx.src_dir / REPORTS_DIR).mkdir(parents=True, exist_ok=True)
    results = result_file(stage, tag, environ, repo.root)
    if results is not None:
        results.unlink(missing_ok=True)  # only this run's result may feed the exports

    argv = stage_argv(stage, tag.name, environ)
    source_version = environ.get("CODEBUILD_RESOLVED_SOURCE_VERSION")
    echo(f"ci: stage {stage}, tag {tag.name} (from {ctx.tag_origin})"
         + (f", source version {source_version}" if source_version else "")
         + (f", build Region {environ['AWS_REGION']}" if environ.get("AWS_REGION") else ""))
    echo("ci: " + " ".join(f"{k}={shlex.quote(v)}" for k, v in extra_env.items())
         + (" " if extra_env else "") + f"tfdeploy {shlex.join(argv)}")
    from ..fleet.recording import extra_details

    # A release's cell records which release and which build applied it (ledger details).
    release = (ctx.metadata or {}).get("release")
    details = {"release": release, "build": environ.get("CODEBUILD_BUILD_ID", "")} if release else {}
    with extra_details(details):
        code = invoke(argv, extra_env)
    if stage == "apply":
        report_kept_records(Path(extra_env[CACHE_VAR]), echo)

    stage_values = _read_result_exports(results)
    for name in STAGE_EXPORTS.get(stage, ()):
        if name not in stage_values:
            # CodePipeline fails an action whose configuration names an unset variable.
            stage_values[name] = ""
            if name not in RELEASE_ONLY_EXPORTS:
                echo(f"ci: the {stage} stage reported no {name}; exporting it empty")
    if stage_values:
        # Not echoed: the stage command printed its own KEY=VALUE lines.
        exports.update(stage_values)
        write_atomic(exports_file, render_exports(exports))
    if carried and stage == "plan" and code == 0:
        from .plan_artifacts import save

        counts = {k: stage_values.get(k, "") for k in STAGE_EXPORTS["plan"]}
        uri = save(environ, identifier(tag), Path(extra_env[CACHE_VAR]),
                   {"tag": tag.name, "build": environ.get("CODEBUILD_BUILD_ID", ""), **counts})
        echo(f"ci: saved this cell's plan as {uri}")
    return code


def bake(raw: str, echo: Callable[[str], None], sleep: Callable[[float], None] | None = None) -> int:
    """A release's bake build (wave_bake_seconds, delivery/batch.py): wait, then succeed, so the next
    wave, which depends on this build, starts that much later."""
    import time

    from ..model.waves import check_bake_seconds

    seconds = check_bake_seconds(raw, f"TFDEPLOY_BAKE_SECONDS={raw!r}")
    echo(f"ci: baking the wave before for {seconds} s (wave_bake_seconds) before the next wave starts")
    (sleep or time.sleep)(seconds)
    return 0
