"""What a release's plan or apply stage build runs on CodeBuild: start the cells' batch, wait, say.

The pipeline's plan and apply actions run an ordinary build of the plan/apply project with the
pipeline's buildspec (`tfdeploy ci plan|apply`). On a published release of several cells
(`tfdeploy-source.json` lists them) and without a TFDEPLOY_TAG of its own, that build is the
release's stage build, and it:

1. reads the release's cells from `tfdeploy-source.json` and its committed settings (waves,
   max_parallel_builds, wave_bake_seconds), checks each cell is for this pipeline's env;
2. generates the batch buildspec (delivery/batch.py: the same graph `buildspec generate --release`
   prints, never read from the tagged tree) and calls `StartBuildBatch` on its own project with it
   as `buildspecOverride`, the published bundle's object version as the source of every cell build,
   the pipeline's variables, and TFDEPLOY_PLAN_ARTIFACTS (plan_artifacts.py: where each cell's
   plan goes and is taken from);
3. polls `BatchGetBuildBatches` until the batch is done (codebuild_batch.py), printing each
   cell's status and phase as they change, and prints, and fails with, a summary naming each cell
   and its result;
   stopped meanwhile (SIGTERM/SIGINT/SIGHUP: the build is stopped or timed out), it stops the batch
   it started (`StopBuildBatch`), waits up to TFDEPLOY_BATCH_STOP_WAIT_SECONDS (30) for it to
   report stopped, and exits 128+n naming the batch and what each cell's build was doing. The
   signal is tfdeploy's one handler (engine/supervise.py: `supervising_remote`): it is recorded,
   never raised in the middle of a CodeBuild call, so a batch is never started without its id
   known;
4. plan: writes the approval's artifacts (approval.py: the plan matrix as text and JSON, the HTML
   report) into its own output artifact (`work/_release/`) and the report into
   the artifact bucket, and exports PLAN_SUMMARY, the release's +/~/- and PLAN_REPORT for the
   approval action.

Inputs the pipeline gives the stage build (modules/pipeline): TFDEPLOY_EXECUTION_ID
(`#{codepipeline.PipelineExecutionId}`: the plan and apply stages of one execution share the
artifacts' prefix), TFDEPLOY_SOURCE_VERSION (`#{SourceVariables.VersionId}`: the bundle's object
version), TFDEPLOY_ARTIFACT_BUCKET (the project's); CODEBUILD_BUILD_ID names the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from ..engine import supervise
from ..envvalues import env_seconds
from ..errors import ConfigError, TfdeployError
from ..results import write_atomic
from .batch import BATCH_STAGES, DEFAULT_BATCH_TIMEOUT_MIN, bake_count, graph_tasks, identifier, release_name, render, start_request
from .buildspec import PLAN_DIR
from .ci import (
    TAG_VAR,
    _read_metadata,
    check_source_commit,
    check_tag_env,
    read_context,
    render_exports,
    src_dir_of,
)
from .plan_artifacts import ARTIFACT_BUCKET_VAR, PREFIX_VAR, cell_uri, prefix, read_result, split

EXECUTION_VAR = "TFDEPLOY_EXECUTION_ID"
SOURCE_VERSION_VAR = "TFDEPLOY_SOURCE_VERSION"
POLL_VAR = "TFDEPLOY_BATCH_POLL_SECONDS"
STOP_WAIT_VAR = "TFDEPLOY_BATCH_STOP_WAIT_SECONDS"
DEFAULT_STOP_WAIT_S = 30.0
STOP_POLL_S = 2.0
CELL_TIMEOUT_VAR = "TFDEPLOY_CELL_TIMEOUT_MINUTES"  # each cell build's (the project's build_timeout_minutes)
BATCH_TIMEOUT_VAR = "TFDEPLOY_BATCH_TIMEOUT_MINUTES"  # the whole batch's
# What the pipeline's action gave the stage build and every cell build needs as well.
PASSED_VARS = ("ENV", "TF_BACKEND_CONFIG_PREFIX", "TFDEPLOY_EXPECTED_TAG")
# Under PLAN_DIR, so the plan action's output artifact (buildspec.py: PLAN_ARTIFACT_FILES, `work/**/*`)
# carries the approval's artifacts; `_` is never the start of a cell's work dir.
RELEASE_DIR = "work/_release"


@dataclass(frozen=True)
class StageInputs:
    project: str
    execution_id: str
    source_version: str
    artifact_bucket: str
    region: str


def is_release_stage(stage: str, environ: Mapping[str, str]) -> bool:
    """A plan/apply build without a cell of its own, on a published release of several cells."""
    if stage not in BATCH_STAGES or environ.get(TAG_VAR):
        return False
    metadata = _read_metadata(src_dir_of(environ))
    return bool(metadata) and isinstance(metadata.get("tags"), list) and len(metadata["tags"]) > 1  # type: ignore[union-attr]


def stage_inputs(environ: Mapping[str, str]) -> StageInputs:
    """The pipeline's inputs of a release's stage build; one line naming each one missing."""
    build_id = environ.get("CODEBUILD_BUILD_ID", "")
    values = {"CODEBUILD_BUILD_ID": build_id.split(":", 1)[0] if ":" in build_id else "",
              EXECUTION_VAR: environ.get(EXECUTION_VAR, ""), SOURCE_VERSION_VAR: environ.get(SOURCE_VERSION_VAR, ""),
              ARTIFACT_BUCKET_VAR: environ.get(ARTIFACT_BUCKET_VAR, "")}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigError(f"a release's stage build needs {', '.join(missing)} (modules/pipeline sets them on the "
                          "plan and apply actions and projects); update the pipeline with the module, or run the "
                          "release here: tfdeploy pipeline run --env ENV")
    return StageInputs(values["CODEBUILD_BUILD_ID"], values[EXECUTION_VAR], values[SOURCE_VERSION_VAR],
                       values[ARTIFACT_BUCKET_VAR],
                       environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1")


def _minutes(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 5 <= int(raw) <= 2160:
        raise ConfigError(f"{name}={raw!r} is not a whole number of minutes from 5 to 2160; the pipeline module sets it")
    return int(raw)


def stop_batch(codebuild: Any, batch_id: str, graph: list[str], last: Any, stage: str, release: str,
               names: Mapping[str, str], say: Callable[[str], None], *, wait_s: float,
               poll_s: float) -> supervise.Interrupted:
    """The stage build was told to stop: stop the batch it started, wait up to `wait_s` for it to
    report stopped (a further signal ends the wait), say each cell's build; the Interrupted to end
    with (exit 128+n), naming the batch and what each build was doing."""
    from . import codebuild_batch

    signum = supervise.received() or 15
    name = supervise.signal_name(signum)
    say(f"{name} received: stopping batch {batch_id} (StopBuildBatch) so that no cell goes on deploying "
        "with no one watching")
    result, state = last, ""
    try:
        codebuild_batch.stop(codebuild, batch_id)
        result = codebuild_batch.wait(codebuild, batch_id, graph, poll_s=poll_s, say=say, names=names,
                                      timeout_s=wait_s, until=lambda: supervise.signal_count() > 1, before=last,
                                      sleep=lambda s: supervise.pause(s, until_signals=2))
    except TfdeployError as exc:
        state = f"could not be stopped ({exc}): stop it in the CodeBuild console"
    if not state:
        status = result.status.lower().replace("_", " ") or "no status"
        state = ("stopped" if result.status == "STOPPED" else
                 f"ended {status} before it could stop" if result.status in codebuild_batch.DONE else
                 f"was asked to stop (StopBuildBatch) but still reported {status} after {wait_s:g} s: CodeBuild "
                 "stops it, check it in the CodeBuild console")
    say(codebuild_batch.summary(stage, release, result, names))
    cells = "; ".join(f"{names.get(b.identifier, b.identifier)} {b.doing}" for b in result.builds)
    return supervise.Interrupted(f"interrupted ({name}) during the {stage} of release {release}: batch {batch_id} "
                                 f"{state}; builds: {cells}", signum)


def run_release_stage(stage: str, environ: Mapping[str, str], exports_file: Path | None,
                      echo: Callable[[str], None], *, sleep: Callable[[float], None] | None = None) -> int:
    """Start the release's batch for `stage`, wait for it, summarise; 0 when every build succeeded."""
    from ..fleet.ledger import now_iso
    from ..model.settings import load_settings
    from ..model.tags import parse_tag
    from . import codebuild_batch
    from .approval import one_line, plan_matrix, totals, write
    from .buildspec import EXPORTS_FILE
    from .publish import s3_client, source_bucket_name, source_key

    ctx = read_context(stage, environ, release=True)
    check_source_commit(ctx)
    metadata = ctx.metadata or {}
    settings = load_settings(ctx.src_dir, environ)  # the release's committed waves, cap and bake
    tags = [parse_tag(str(name), settings.extra_regions) for name in metadata["tags"]]
    for tag in tags:
        check_tag_env(tag, ctx.pipeline_env)
    release = release_name(tags)
    inputs = stage_inputs(environ)
    shape = dict(waves=settings.waves, cap=settings.max_parallel_builds, bake_s=settings.wave_bake_seconds)
    text = render(stage, tags, toolkit_spec=settings.toolkit_spec, **shape)
    graph = [task["identifier"] for task in graph_tasks(stage, tags, **shape)]
    artifacts = prefix(inputs.artifact_bucket, inputs.execution_id)
    variables = {name: environ[name] for name in PASSED_VARS if environ.get(name)}
    variables[PREFIX_VAR] = artifacts
    request = start_request(inputs.project, stage, tags, text, source_version=inputs.source_version,
                            source_location=f"{source_bucket_name(settings, ctx.pipeline_env)}/"
                                            f"{source_key(ctx.pipeline_env)}",
                            variables=variables, bakes=bake_count(stage, tags, **shape),
                            timeout_min=_minutes(environ, BATCH_TIMEOUT_VAR) or DEFAULT_BATCH_TIMEOUT_MIN,
                            cell_timeout_min=_minutes(environ, CELL_TIMEOUT_VAR))
    lead = tags[0]
    exports = {"TAG": lead.name, "ENV": lead.env, "TEAM": lead.team, "SCOPE": "release", "REGION": "",
               "TARGET_MODULE": "", "RELEASE": release}
    exports_file = exports_file or ctx.src_dir / EXPORTS_FILE

    codebuild = codebuild_batch.client(inputs.region, environ)
    by_id = {identifier(t): t for t in tags}
    names = {i: t.name for i, t in by_id.items()}
    poll = env_seconds(environ, POLL_VAR, codebuild_batch.DEFAULT_POLL_S, most=3600, error=ConfigError,
                       hint="unset it for the default")
    stop_wait = env_seconds(environ, STOP_WAIT_VAR, DEFAULT_STOP_WAIT_S, most=3600, error=ConfigError,
                            hint="unset it for the default")
    say = lambda line: echo(f"ci: {line}")  # noqa: E731
    signalled = lambda: supervise.received() is not None  # noqa: E731
    with supervise.supervising_remote():
        if signalled():
            raise supervise.Interrupted(f"interrupted ({supervise.signal_name(supervise.received() or 15)}) before "
                                        f"the batch of release {release} was started; nothing runs",
                                        supervise.received() or 15)
        echo(f"ci: stage {stage} of release {release} ({len(tags)} cells), source version {inputs.source_version}: "
             f"starting its batch on project {inputs.project} (plans: {artifacts})")
        batch_id = codebuild_batch.start(codebuild, request)
        echo(f"ci: batch {batch_id} started")
        result = codebuild_batch.wait(codebuild, batch_id, graph, poll_s=poll, say=say, names=names,
                                      sleep=sleep or supervise.pause, until=signalled)
        if signalled():
            raise stop_batch(codebuild, batch_id, graph, result, stage, release, names, say,
                             wait_s=stop_wait, poll_s=min(poll, STOP_POLL_S))
    echo(codebuild_batch.summary(stage, release, result, names))

    if stage == "plan":
        s3 = s3_client(inputs.region, environ)
        waves = {task["identifier"]: int(task["env"]["variables"]["TFDEPLOY_WAVE"])
                 for task in graph_tasks(stage, tags, **shape)}
        carried = {PREFIX_VAR: artifacts}
        rows = [plan_row(build, by_id[build.identifier], waves[build.identifier],
                         read_result(s3, carried, build.identifier), cell_uri(carried, build.identifier) or "")
                for build in result.builds if build.identifier in by_id]
        folder = ctx.src_dir / PLAN_DIR / RELEASE_DIR
        paths = write(folder, release, rows, now_iso())
        bucket, key = split(artifacts + "plan-report.html")
        report = f"s3://{bucket}/{key}"
        try:
            s3.put_object(Bucket=bucket, Key=key, Body=paths["html"].read_bytes(), ContentType="text/html")
        except Exception as exc:  # the report is for people; the build's artifact still has it
            echo(f"ci: warning: could not upload the plan report to {report}: {exc}")
        echo(plan_matrix(release, rows))
        t = totals(rows)
        exports.update(PLAN_SUMMARY=one_line(release, rows), PLAN_ADD=str(t["add"]), PLAN_CHANGE=str(t["change"]),
                       PLAN_DESTROY=str(t["destroy"]), PLAN_REPORT=report)
    write_atomic(exports_file, render_exports(exports))
    echo(render_exports(exports).rstrip("\n"))
    if not result.ok:
        bad = [f"{by_id[b.identifier].name if b.identifier in by_id else b.identifier} "
               + ("skipped" if b.status == codebuild_batch.NOT_STARTED else b.status.lower())
               for b in result.builds if b.status != "SUCCEEDED"]
        echo(f"ci: stage {stage} of release {release} failed: {', '.join(bad) or result.status.lower()}")
        return 1
    return 0


def plan_row(build: Any, tag: Any, wave: int, saved: Mapping[str, Any], artifact: str = "") -> dict[str, Any]:
    """One row of the approval's plan matrix (pure): the build's result, its console page, the
    counts its plan build saved and (when it saved them) the s3:// URI of its saved plan."""
    from .codebuild_batch import NOT_STARTED, build_link

    status = {"SUCCEEDED": "succeeded", NOT_STARTED: "skipped"}.get(build.status, "failed")
    row: dict[str, Any] = {"id": build.identifier, "tag": tag.name, "wave": wave, "status": status,
                           "log": build_link(build.arn) if build.arn else "", "build": build.build_id}
    if status == "succeeded" and saved and artifact:
        row["artifact"] = artifact  # the cell's saved plan: what its apply build applies
    if status == "succeeded" and str(saved.get("PLAN_ADD", "")) != "":
        row["plan"] = {"add": int(saved["PLAN_ADD"] or 0), "change": int(saved.get("PLAN_CHANGE") or 0),
                       "destroy": int(saved.get("PLAN_DESTROY") or 0)}
    return row

