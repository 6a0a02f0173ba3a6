"""`tfdeploy pipeline run --env ENV`: the env's newest published execution, run here, stage by stage.

The same path the pipeline takes, through the same generated buildspecs (delivery/buildspec.py and
delivery/batch.py, never the tagged tree's files), with the local runners (buildspec_runner,
batch_runner) standing in for CodeBuild:

    source -> lint -> scan -> plan (batch) -> approval -> apply (batch)

- source: the execution's TFDEPLOY_TAG names the release's first tag; the newest version of the
  env's source object carrying that tag is unpacked, as CodePipeline's S3 source action would.
- lint and scan run once per release (one commit), on the first tag.
- plan and apply are the release's batch builds: one build per cell, in waves, each in its own copy
  of the source; an apply build gets its own cell's plan build output as CODEBUILD_SRC_DIR_plan and
  applies exactly that saved plan (`tfdeploy ci apply` checks it as `apply` checks a saved plan).
- approval: without `--approve` the run stops there and says how to go on; the next
  `pipeline run --env ENV --approve` resumes that execution at the approval (its plans are kept in
  `.tfdeploy/pipeline/<execution>/`), it never plans again.
Every build sees CODEBUILD_BUILD_ID (`local:<execution>:<stage>:<cell>`), so each cell's ledger
record names its release and build.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..errors import ConfigError, TfdeployError
from ..results import write_atomic

STAGE_NAMES = ("source", "lint", "scan", "plan", "approval", "apply")
STATE_FILE = "run.json"


@dataclass
class StageReport:
    name: str
    status: str  # succeeded | failed | pending | not run | skipped
    builds: list[dict[str, Any]] = field(default_factory=list)
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "status": self.status, "builds": self.builds}
        if self.detail:
            data["detail"] = self.detail
        return data


@dataclass
class RunReport:
    env: str
    pipeline: str
    execution_id: str
    release: str = ""
    tags: list[str] = field(default_factory=list)
    stages: list[StageReport] = field(default_factory=list)
    work_dir: str = ""

    @property
    def ok(self) -> bool:
        """No stage failed (a run stopped at the approval is ok: it did what it could)."""
        return not any(s.status == "failed" for s in self.stages)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "env": self.env, "pipeline": self.pipeline, "execution_id": self.execution_id,
                "release": self.release, "tags": self.tags, "work_dir": self.work_dir,
                "stages": [s.to_dict() for s in self.stages]}


def newest_execution(codepipeline: Any, pipeline: str) -> tuple[str, str]:
    """(execution id, its TFDEPLOY_TAG) of the pipeline's newest execution."""
    from botocore.exceptions import BotoCoreError, ClientError

    from .pipeline_start import TAG_VARIABLE

    try:
        summaries = codepipeline.list_pipeline_executions(pipelineName=pipeline, maxResults=1)
        found = summaries.get("pipelineExecutionSummaries", [])
        if not found:
            raise ConfigError(f"pipeline {pipeline} has no execution; publish a release first: "
                              "tfdeploy publish --tag 'ENV_*/TEAM/VERSION'")
        execution_id = found[0]["pipelineExecutionId"]
        detail = codepipeline.get_pipeline_execution(pipelineName=pipeline, pipelineExecutionId=execution_id)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if str(error.get("Code")) == "PipelineNotFoundException":
            raise ConfigError(f"pipeline {pipeline} does not exist: create the env's pipeline "
                              "(modules/pipeline) and publish a release") from None
        raise TfdeployError(f"cannot read pipeline {pipeline}: {error.get('Code')}: {error.get('Message', '')}") from None
    except BotoCoreError as exc:
        from ..aws.clients import access_hint

        raise TfdeployError(f"cannot read pipeline {pipeline}: {exc}{access_hint(exc)}") from None
    variables = {v.get("name"): v.get("resolvedValue", v.get("value"))
                 for v in detail.get("pipelineExecution", {}).get("variables", [])}
    tag = variables.get(TAG_VARIABLE)
    if not tag:
        raise ConfigError(f"execution {execution_id} of {pipeline} names no {TAG_VARIABLE}; it was not "
                          "started by tfdeploy publish: publish the release again")
    return execution_id, str(tag)


def fetch_source(s3: Any, bucket: str, key: str, tag: str, dest: Path) -> str:
    """Unpack the newest version of the source object published for `tag`; its version id."""
    versions = s3.list_object_versions(Bucket=bucket, Prefix=key).get("Versions", [])
    versions = sorted((v for v in versions if v["Key"] == key), key=lambda v: v["LastModified"], reverse=True)
    for version in versions:
        head = s3.head_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])
        if head.get("Metadata", {}).get("tag") == tag:
            with tempfile.TemporaryDirectory(prefix="tfdeploy-pipeline-") as tmp:
                archive = Path(tmp) / "source.zip"
                archive.write_bytes(s3.get_object(Bucket=bucket, Key=key, VersionId=version["VersionId"])["Body"].read())
                _unzip(archive, dest)
            return str(version["VersionId"])
    raise ConfigError(f"no version of s3://{bucket}/{key} holds {tag}; publish it again: tfdeploy publish --tag {tag}")


def _unzip(archive: Path, dest: Path) -> None:
    """Unpack as CodePipeline does (symlinks kept as links, modes kept)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    proc = subprocess.run(["unzip", "-q", str(archive), "-d", str(dest)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise TfdeployError(f"cannot unpack the source bundle: {proc.stderr.strip() or proc.returncode}")


def _single(stage: str, spec_stage: str, src: Path, env: Mapping[str, str], logs: Path, lead: str,
            say: Callable[[str], None]) -> StageReport:
    """A stage of one build (lint, scan): the pipeline's buildspec on the release's source."""
    from .buildspec import buildspec_data
    from .buildspec_runner import parse_buildspec, run_build

    spec = parse_buildspec(buildspec_data(spec_stage, env.get("TFDEPLOY_TOOLKIT_SPEC") or _spec()), spec_stage)
    log = logs / f"{stage}.log"
    say(f"[{stage}] started (log: {log})")
    with open(log, "wb") as handle:
        result = run_build(spec, src, overrides=dict(env), skip_install=True, sink=handle.write, base_env=env)
    status = "succeeded" if result.succeeded else "failed"
    say(f"[{stage}] {status}" + (f": {result.failure.describe()}" if result.failure else ""))
    return StageReport(stage, status, [{"id": f"{stage}", "tag": lead, "status": status, "wave": None,
                                        "log": str(log)}])


def _spec() -> str:
    from ..model.settings import DEFAULT_TOOLKIT_SPEC

    return DEFAULT_TOOLKIT_SPEC


def _batch(stage: str, src: Path, env: Mapping[str, str], work: Path, settings: Any, tags: list[Any],
           say: Callable[[str], None], execution_id: str,
           plan_dirs: Mapping[str, str] | None = None) -> tuple[StageReport, dict[str, str]]:
    """The release's plan or apply batch; the report and, per build identifier, its plan output."""
    from .batch import render
    from .batch_runner import load_batch, run_batch_here

    text = render(stage, tags, waves=settings.waves, cap=settings.max_parallel_builds,
                  toolkit_spec=settings.toolkit_spec, bake_s=settings.wave_bake_seconds)
    path = work / f"{stage}-batch.yml"
    write_atomic(path, text)
    spec, batch = load_batch(path)
    assert batch is not None

    def task_env(task: Any) -> dict[str, str]:
        extra = {"CODEBUILD_BUILD_ID": f"local:{execution_id}:{stage}:{task.identifier}"}
        if plan_dirs is not None and task.identifier in plan_dirs:
            extra["CODEBUILD_SRC_DIR_plan"] = plan_dirs[task.identifier]
        return extra

    say(f"[{stage}] batch of {len(batch.tasks)} builds, {settings.max_parallel_builds} at a time "
        f"(buildspec: {path})")
    outcome = run_batch_here(spec, batch, src, work / stage, overrides={}, skip_install=True,
                             parallel=settings.max_parallel_builds,
                             say=lambda line: say(f"[{stage}] {line}"), base_env=env, task_env=task_env)
    builds = []
    for result in outcome.results:
        data = result.to_dict()
        build = {k: v for k, v in data.items() if k in ("id", "tag", "status", "wave", "log", "reason")}
        exported = data["exported_variables"]
        if stage == "plan" and exported.get("PLAN_ADD", "") != "":
            build["plan"] = {"add": int(exported["PLAN_ADD"] or 0), "change": int(exported.get("PLAN_CHANGE") or 0),
                             "destroy": int(exported.get("PLAN_DESTROY") or 0)}
        builds.append(build)
    outputs = {r.identifier: str(work / stage / r.identifier / "src" / ".tfdeploy" / "ci" / "plan")
               for r in outcome.results}
    return StageReport(stage, "succeeded" if outcome.ok else "failed", builds), outputs


def run_pipeline(repo_root: Path, env_name: str, settings: Any, environ: Mapping[str, str], *,
                 approve: bool, say: Callable[[str], None]) -> RunReport:
    """Run the env's newest execution here; the report (never raises for a failing build)."""
    from ..paths import repo_cache_dir
    from .pipeline_start import codepipeline_client, pipeline_name
    from .publish import METADATA_FILE, _check_bucket, s3_client, source_bucket_name, source_key

    if env_name not in settings.environments:
        raise ConfigError(f"env {env_name!r} is not one of the environments ({', '.join(settings.environments)})")
    pipeline = pipeline_name(settings, env_name)
    execution_id, lead = newest_execution(codepipeline_client(settings.state_region, environ), pipeline)
    work = repo_cache_dir(repo_root, environ) / "pipeline" / execution_id
    work.mkdir(parents=True, exist_ok=True)
    report = RunReport(env_name, pipeline, execution_id, work_dir=str(work))
    state_path = work / STATE_FILE
    previous = json.loads(state_path.read_text()) if state_path.is_file() else {}
    src = work / "source"
    logs = work / "logs"
    logs.mkdir(exist_ok=True)

    if previous.get("apply"):
        # Its plans are spent: applying them again would only fail, and a failed cell would stop
        # the waves after it. A new execution of the unfinished cells is the way on.
        raise ConfigError(f"execution {execution_id} of {pipeline} was already applied ({previous['apply']}); "
                          "to apply the cells that did not succeed: tfdeploy publish --tag "
                          "'<env>_*/<team>/<version>' --only-failed, then tfdeploy pipeline run --env "
                          f"{env_name} --approve")
    if previous.get("plan") == "succeeded" and src.is_dir():
        say(f"pipeline {pipeline} execution {execution_id}: resuming at the approval (planned earlier)")
        version = previous.get("source_version", "")
    else:
        bucket, key = source_bucket_name(settings, env_name), source_key(env_name)
        s3 = s3_client(settings.state_region, environ)
        _check_bucket(s3, bucket, env_name)
        version = fetch_source(s3, bucket, key, lead, src)
        previous = {}
    metadata = json.loads((src / METADATA_FILE).read_text(encoding="utf-8"))
    names = list(metadata.get("tags") or [metadata["tag"]])
    report.release, report.tags = str(metadata.get("release", "")), names
    say(f"pipeline {pipeline} execution {execution_id}: release {report.release} ({len(names)} cells) "
        f"at {str(metadata.get('commit', ''))[:12]}, source version {version}; work in {work}")
    report.stages.append(StageReport("source", "succeeded", [], f"s3 version {version}"))

    from ..model.settings import load_settings
    from ..model.tags import parse_tag

    # The release's own committed settings (waves, cap), as the pipeline's stage build reads them.
    release_settings = load_settings(src, environ)
    tags = [parse_tag(n, release_settings.extra_regions) for n in names]
    from .. import __version__

    env = {**environ, "ENV": env_name, "TFDEPLOY_EXPECTED_TAG": lead, "TFDEPLOY_VERSION": __version__,
           "TFDEPLOY_TOOLKIT_SPEC": release_settings.toolkit_spec}

    def save(**values: Any) -> None:
        write_atomic(state_path, json.dumps({**previous, "source_version": version, **values}, indent=2) + "\n")

    if previous.get("plan") == "succeeded":
        for name in ("lint", "scan", "plan"):
            report.stages.append(StageReport(name, "succeeded", previous.get(f"{name}_builds", []),
                                             "earlier run of this execution"))
        plan_dirs = previous["plan_dirs"]
    else:
        for name, spec_stage in (("lint", "tflint"), ("scan", "checkov")):
            stage = _single(name, spec_stage, src, {**env, "CODEBUILD_BUILD_ID": f"local:{execution_id}:{name}"},
                            logs, lead, say)
            report.stages.append(stage)
            if stage.status != "succeeded":
                return _stop(report, ("plan", "approval", "apply"))
        plan, plan_dirs = _batch("plan", src, env, work, release_settings, tags, say, execution_id)
        report.stages.append(plan)
        if plan.status != "succeeded":
            return _stop(report, ("approval", "apply"))
        previous.update(plan="succeeded", plan_dirs=plan_dirs,
                        **{f"{s.name}_builds": s.builds for s in report.stages if s.name in ("lint", "scan", "plan")})
        save()
    plan_builds = next(s.builds for s in report.stages if s.name == "plan")
    from ..fleet.ledger import now_iso
    from .approval import plan_matrix, write

    # The approval's artifacts, as the plan stage build writes them on CodeBuild (release_stage.py).
    write(work, report.release, plan_builds, now_iso())
    say(plan_matrix(report.release, plan_builds))
    if not approve:
        report.stages.append(StageReport("approval", "pending", [], "run again with --approve to apply"))
        say(f"[approval] pending: review the plans (logs in {work / 'plan'}), then run: "
            f"tfdeploy pipeline run --env {env_name} --approve")
        return _stop(report, ("apply",))
    report.stages.append(StageReport("approval", "succeeded", [], "approved with --approve"))
    from ..engine.supervise import Interrupted

    try:
        apply, _ = _batch("apply", src, env, work, release_settings, tags, say, execution_id, plan_dirs)
    except Interrupted:
        # Builds may have applied before the stop: the plans are spent as after any apply, and
        # applying them again would fail and stop the waves after it.
        save(apply="interrupted")
        raise
    report.stages.append(apply)
    save(apply=apply.status, apply_builds=apply.builds)
    return report


def _stop(report: RunReport, rest: tuple[str, ...]) -> RunReport:
    for name in rest:
        report.stages.append(StageReport(name, "not run", []))
    return report

