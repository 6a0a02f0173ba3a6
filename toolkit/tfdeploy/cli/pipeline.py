"""`tfdeploy pipeline run`: an env's newest published execution, run on this machine."""

from __future__ import annotations

import os
import sys

import click

from .common import RepoContext, echo_json, json_option, repo_command


@click.group()
def pipeline() -> None:
    """An env's pipeline, run here through the generated buildspecs.

    \b
    Example:
      tfdeploy pipeline run --env dev --approve
    """


@pipeline.command("run")
@click.option("--env", "env_name", required=True, metavar="ENV", help="The pipeline's environment, e.g. dev.")
@click.option("--approve", is_flag=True, help="Approve the release's plans and apply them (the approval stage).")
@json_option
@repo_command
def pipeline_run(env_name: str, approve: bool, as_json: bool, repo: RepoContext) -> None:
    """Run the env's newest published execution here, stage by stage: source -> lint -> scan
    (once per release) -> plan (one batch build per cell, in waves) -> approval -> apply (batch).

    Uses the pipeline's generated buildspecs (never the tagged tree's) and the local runners
    (install phases skipped: the tools here are used). Without --approve it stops at the approval
    and says how to go on; `pipeline run --env ENV --approve` then resumes that execution at the
    approval with the plans it made. Work, logs and plans: .tfdeploy/pipeline/<execution>/.
    --json prints {"ok", "stages": [{"name", "status", "builds": [{"id", "tag", "status",
    "wave"}]}]}. Exit 1 when a stage failed.

    \b
    Examples:
      tfdeploy publish --tag 'dev_*/research/1.1'
      tfdeploy pipeline run --env dev
      tfdeploy pipeline run --env dev --approve --json
    """
    from ..delivery.pipeline_run import run_pipeline
    from ..errors import TfdeployError

    report = run_pipeline(repo.root, env_name, repo.settings, os.environ, approve=approve,
                          say=lambda line: click.echo(line, err=as_json))
    if as_json:
        echo_json(report.to_dict())
    else:
        for stage in report.stages:
            click.echo(f"{stage.name:<9} {stage.status}" + (f"  ({stage.detail})" if stage.detail else ""))
            for build in stage.builds if stage.name in ("plan", "apply") else []:
                click.echo(f"  wave {build['wave']}  {build['tag']:<36} {build['status']}")
    failed = [s for s in report.stages if s.status == "failed"]
    if failed:
        bad = [f"{b['tag']} {b['status']}" for b in failed[0].builds if b["status"] != "succeeded"]
        raise TfdeployError(f"stage {failed[0].name} of execution {report.execution_id} failed"
                            + (f" ({', '.join(bad)})" if bad else "") + f"; logs in {report.work_dir}; fix, "
                            "publish again, then run: tfdeploy pipeline run --env " + env_name)
    sys.exit(0)
