"""Delivery through CodeBuild/CodePipeline: `buildspec generate|run`, `events pattern`, `publish`, `ci`.

`tfdeploy.cli` registers them by name (LAZY_COMMANDS). Heavy imports (yaml, boto3, git) happen
inside the commands.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import click

from ..delivery.buildspec import STAGES
from ..errors import TfdeployError, ValidationError
from .common import RepoContext, echo_json, json_option, repo_command, tag_option


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


@click.group()
def buildspec() -> None:
    """CodeBuild buildspecs for the pipeline stages: generate them, run them locally.

    \b
    Examples:
      tfdeploy buildspec generate --check
      tfdeploy buildspec run buildspecs/plan.yml --skip-install --env TFDEPLOY_TAG=dev_us-east-1/research/1.0
    """


@buildspec.command("generate")
@click.option("--out", default="buildspecs", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the files, relative to the repo root.")
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 listing the files that differ from what would be generated.")
@click.option("--release", "release", metavar="TAGS", multiple=True,
              help="Print the batch buildspec of this release instead (tags of one env and team at one "
                   "commit, e.g. 'dev_*/research/1.1'; repeatable); writes nothing.")
@click.option("--stage", type=click.Choice(["plan", "apply"]), default="plan", show_default=True,
              help="With --release: the batch stage to print.")
@repo_command
def buildspec_generate(out: str, check: bool, release: tuple[str, ...], stage: str, repo: RepoContext) -> None:
    """Write buildspecs/{source,tflint,checkov,plan,apply}.yml (deterministic output).

    Each installs the toolkit from the toolkit_spec setting (default tfdeploy-toolkit==<version>;
    --check compares with it) and the stage's pinned tools, runs `tfdeploy ci STAGE`, exports the deployment's values for later
    pipeline actions and declares its reports and artifacts. Run with --check in CI so the
    committed files never drift from the toolkit.

    \b
    With --release, print the CodeBuild batch buildspec (build-graph, one build per cell, in
    waves) that the release's plan or apply stage starts; generated here, never read from the
    tagged tree.

    \b
    Examples:
      tfdeploy buildspec generate
      tfdeploy buildspec generate --check
      tfdeploy buildspec generate --release 'dev_*/research/1.1' --stage apply
    """
    if release:
        if check:
            raise ValidationError("--check and --release do not go together: a release's batch buildspec "
                                  "is printed, never written; drop one")
        from ..delivery.batch import render as render_batch
        from ..delivery.releases import select_release

        tags, _commit = select_release(repo.root, release, repo.settings.extra_regions)
        settings = repo.settings
        click.echo(render_batch(stage, tags, waves=settings.waves, cap=settings.max_parallel_builds,
                                toolkit_spec=settings.toolkit_spec, bake_s=settings.wave_bake_seconds), nl=False)
        return
    from ..delivery.buildspec import generate_all
    from ..results import write_atomic

    folder = Path(out) if Path(out).is_absolute() else repo.root / out
    files = generate_all(repo.settings.toolkit_spec)
    if check:
        stale = []
        for generated in files:
            path = folder / generated.name
            if not path.is_file():
                stale.append(f"{_shown(path)}: missing")
            elif path.read_text(encoding="utf-8") != generated.text:
                stale.append(f"{_shown(path)}: differs from the generated file")
        for line in stale:
            click.echo(line)
        if stale:
            raise TfdeployError(f"{len(stale)} buildspec file(s) out of date; run: tfdeploy buildspec "
                                "generate, and commit the result")
        click.echo(f"{len(files)} buildspecs in {_shown(folder)} are up to date")
        return
    for generated in files:
        path = folder / generated.name
        if path.is_file() and path.read_text(encoding="utf-8") == generated.text:
            click.echo(f"unchanged {_shown(path)}")
        else:
            write_atomic(path, generated.text)
            click.echo(f"wrote {_shown(path)}")


@buildspec.command("run")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--env", "env_pairs", multiple=True, metavar="NAME=VALUE",
              help="Set a variable for the build, over env.variables (repeatable).")
@click.option("--skip-install", is_flag=True, help="Skip the install phase (use the tools already here).")
@click.option("--src-dir", default=".", show_default=True, type=click.Path(file_okay=False, exists=True,
              path_type=Path), help="Source directory: CODEBUILD_SRC_DIR and the working directory.")
@click.option("--parallel", type=click.IntRange(1, 200), default=20, show_default=True, metavar="N",
              help="Batch builds: builds of the build-graph run at once.")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Batch builds: where each build's source copy and log go "
                   "[default: SRC/.tfdeploy/batch/<time>].")
@click.option("--no-batch", is_flag=True, help="Run the phases once, ignoring a batch: section.")
@json_option
def buildspec_run(file: Path, env_pairs: tuple[str, ...], skip_install: bool, src_dir: Path,
                  parallel: int, work_dir: Path | None, no_batch: bool, as_json: bool) -> None:
    """Run a buildspec's phases here, as CodeBuild would, in one bash shell.

    Phases run in order; `export` and `cd` carry over between commands and phases; `finally`
    blocks run after failures; `on-failure: ABORT` stops the build. Prints the exported
    variables at the end. Exit 1 when the build fails, naming the phase and command.

    A buildspec with `batch: build-graph` runs as a batch: one build per task, each with its
    env.variables and its own copy of the source, a task after its depend-on tasks succeeded
    (skipped when one failed), at most --parallel at once; --json prints
    {"ok", "builds": [{"id", "tag", "wave", "status", "log", ...}]}.

    \b
    Examples:
      tfdeploy buildspec run buildspecs/plan.yml --skip-install --env ENV=dev
      tfdeploy buildspec run buildspecs/checkov.yml --skip-install --src-dir /tmp/src --json
      tfdeploy buildspec generate --release 'dev_*/research/1.1' > plan-batch.yml
      tfdeploy buildspec run plan-batch.yml --skip-install --env ENV=dev --parallel 4 --json
    """
    from ..delivery.batch_runner import load_batch
    from ..delivery.buildspec_runner import BuildFailedError, parse_env_pairs, run_build

    spec, batch = load_batch(file)
    overrides = parse_env_pairs(env_pairs)
    if batch is not None and not no_batch:
        from ..delivery.batch_runner import default_work_dir, run_batch_here

        def say(line: str) -> None:
            click.echo(f"[batch] {line}", err=as_json)

        folder = work_dir or default_work_dir(src_dir.resolve())
        say(f"{len(batch.tasks)} builds, {parallel} at a time; logs in {_shown(folder)}")
        outcome = run_batch_here(spec, batch, src_dir, folder, overrides=overrides, skip_install=skip_install,
                                 parallel=parallel, say=say)
        if as_json:
            echo_json(outcome.to_dict())
        else:
            click.echo(f"[batch] batch {'succeeded' if outcome.ok else 'failed'}")
        if not outcome.ok:
            bad = [r for r in outcome.results if r.status != "succeeded" and r.reason != "ignored"]
            raise BuildFailedError(f"batch failed: {len(bad)} of {len(outcome.results)} builds did not succeed ("
                                   + ", ".join(f"{r.identifier} {r.status}" for r in bad) + "); see their logs in "
                                   f"{_shown(folder)}")
        return
    # Chunks may end inside a UTF-8 sequence: decode incrementally, never split a character.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def sink(data: bytes) -> None:
        # With --json the build's own output goes to stderr so stdout carries only the document.
        click.echo(decoder.decode(data), nl=False, err=as_json)

    result = run_build(spec, src_dir, overrides=overrides, skip_install=skip_install, sink=sink)
    if as_json:
        echo_json(result.to_dict())
    else:
        if result.exported:
            click.echo("[buildspec] exported variables:")
            for name, value in result.exported.items():
                click.echo(f"{name}={value}")
        click.echo(f"[buildspec] build {'succeeded' if result.succeeded else 'failed'}")
    if result.failure is not None:
        raise BuildFailedError(f"build failed: {result.failure.describe()}")


@click.group()
def events() -> None:
    """The EventBridge rule that starts an env's pipeline when a tag is created.

    \b
    Example:
      tfdeploy events pattern --env dev
    """


@events.command("pattern")
@click.option("--env", required=True, metavar="ENV", help="The pipeline's environment, e.g. dev.")
@repo_command
def events_pattern(env: str, repo: RepoContext) -> None:
    """Print the event pattern matching creation of `<ENV>_...` tags (JSON).

    modules/pipeline's rule uses the same pattern; compare them with this output.

    \b
    Example:
      tfdeploy events pattern --env dev
    """
    from ..delivery.events import check_configured_env, event_pattern

    pattern = event_pattern(env)  # validates the shape first
    check_configured_env(env, repo.settings.environments)
    echo_json(pattern)


@click.command()
@tag_option(required=False, many=True)
@click.option("--event-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Take the tag from this EventBridge CodeCommit event (detail.referenceName).")
@click.option("--no-start", is_flag=True, help="Only upload; do not start the env's pipeline.")
@click.option("--claim", is_flag=True,
              help="A pushed tag's event (the source build; implied by --event-file): claim the tag once, "
                   "wait TFDEPLOY_SETTLE_SECONDS (default 30), gather the release's other unclaimed tags at "
                   "the same commit, publish them as one release; exit 0 naming the execution when the tag "
                   "is claimed already.")
@click.option("--only-failed", is_flag=True,
              help="Publish only the release's cells not applied yet at its version (failed, skipped, never "
                   "run; from the ledger): a succeeded cell is never applied again.")
@json_option
@repo_command
def publish(tag: tuple[str, ...], event_file: Path | None, no_start: bool, claim: bool, only_failed: bool,
            as_json: bool, repo: RepoContext) -> None:
    """Publish a release to its env's pipeline: a full clone at its commit, zipped to the source
    bucket, then start ONE execution of the pipeline pinned to that upload.

    A release is a tag, or tags of one env, team and version at one commit (patterns as `apply`
    takes them: 'dev_*/research/1.1'). Uploads to s3://<backend_prefix>-source-<env>/source/<env>/
    source.zip with tfdeploy-source.json (the release's tags in wave order, commit, tagger,
    dates) inside and the first tag as object metadata (nothing is uploaded when the same tags
    at that commit are already the newest version). Then starts the pipeline
    <pipeline_name_prefix>-<env> with the object's version as its source revision and
    TFDEPLOY_TAG=<first tag>, so the execution deploys exactly this release even when others are
    published right after it; its plan and apply stages run one batch build per cell. Uses the
    local sandbox when active.

    \b
    Examples:
      tfdeploy publish --tag dev_us-east-1/research/1.0
      tfdeploy publish --tag 'dev_*/research/1.1'
      tfdeploy publish --tag 'dev_*/research/1.1' --only-failed
      tfdeploy publish --event-file event.json --json
      tfdeploy publish --tag dev_us-east-1/research/1.0 --no-start
    """
    from ..delivery.events import tag_from_event
    from ..delivery.publish import load_event_file
    from ..delivery.publish import publish as run_publish

    if bool(tag) == (event_file is not None):
        raise ValidationError("pass exactly one of --tag TAG (or a release's tags and patterns) or "
                              "--event-file EVENT.json")
    if only_failed and (claim or event_file is not None):
        raise ValidationError("--only-failed re-publishes a release you name with --tag; it does not go "
                              "with --claim or --event-file")
    settings = repo.settings
    names: list[str]
    if event_file is not None:
        names = [tag_from_event(load_event_file(event_file), settings.extra_regions)]
        claim = True
    elif claim and (len(tag) != 1 or any(c in tag[0] for c in "*?[")):
        raise ValidationError("--claim takes the one pushed tag (--tag TAG), not a pattern or several tags")
    elif only_failed:
        from ..delivery.releases import select_unfinished

        todo, done = select_unfinished(repo.root, tag, settings, os.environ)
        if not todo:
            click.echo(f"nothing to publish: every cell of the release is applied ({len(done)} cells)")
            if as_json:
                echo_json({"ok": True, "tags": [], "done": done})
            return
        click.echo(f"--only-failed: publishing {len(todo)} cells; already applied: "
                   f"{', '.join(done) or 'none'}", err=True)
        names = [t.name for t in todo]
    elif len(tag) == 1 and not any(c in tag[0] for c in "*?["):
        names = [tag[0]]
    else:
        from ..delivery.releases import select_release

        names = [t.name for t in select_release(repo.root, tag, settings.extra_regions)[0]]
    result = run_publish(names, repo.root, settings, os.environ, start=not no_start, claim_mode=claim,
                         progress=lambda line: click.echo(f"publish: {line}", err=True))
    if as_json:
        echo_json(result.to_dict())
        return
    if result.already_claimed:
        click.echo(f"{result.tag} is already claimed by {result.claimed_by or 'another publish'} for release "
                   f"{result.release}: " + (f"it is deployed by execution {result.execution_id}"
                                            if result.execution_id else
                                            "its execution starts when that build's settle window ends")
                   + "; nothing published")
        return
    what = (f"{result.tag}" if len(result.tags) <= 1
            else f"release {result.release} ({len(result.tags)} cells: {', '.join(result.tags)})")
    if result.uploaded:
        click.echo(f"published {what} ({result.commit[:12]}) to s3://{result.bucket}/{result.key}"
                   + (f" (version {result.version_id})" if result.version_id else ""))
    else:
        click.echo(f"already published: s3://{result.bucket}/{result.key} holds {what} "
                   f"({result.commit[:12]}); nothing uploaded")
    if result.execution_id:
        click.echo(f"started {result.pipeline} execution {result.execution_id} for {what} "
                   f"(source version {result.version_id})")


@click.command()
@click.argument("stage", type=click.Choice(STAGES))
@click.option("--exports-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the KEY=VALUE exports [default: $CODEBUILD_SRC_DIR/.tfdeploy/ci/exports.env].")
@click.option("--needs-checkov", is_flag=True,
              help="Run nothing; exit 0 when the stage needs checkov (checkov; apply in a protected env: "
                   "ENV in protected_envs of CODEBUILD_SRC_DIR's settings), else 1. The buildspecs' "
                   "install phase asks this.")
def ci(stage: str, exports_file: Path | None, needs_checkov: bool) -> None:
    """Run one pipeline stage for the build's tag (what the buildspecs call).

    \b
    Stages and the command each runs:
      source   publish --tag TAG                 (tag-capture build)
      tflint   lint --tag TAG --junit reports/tflint.xml   (the tagged commit's work dir)
      checkov  scan --tag TAG --junit reports/checkov.xml  (its env's committed policy)
      plan     plan --tag TAG                    (work dir under .tfdeploy/ci/plan)
      apply    apply --tag TAG                   (the plan artifact's work dir)
    A plan or apply build of a release of several cells without TFDEPLOY_TAG is the release's
    stage build: it starts the cells' batch (StartBuildBatch, the graph tfdeploy generates),
    waits, and fails naming each cell that did not succeed (needs TFDEPLOY_EXECUTION_ID,
    TFDEPLOY_SOURCE_VERSION, TFDEPLOY_ARTIFACT_BUCKET: modules/pipeline sets them).

    \b
    Reads: TFDEPLOY_TAG or tfdeploy-source.json in CODEBUILD_SRC_DIR (the tag), ENV (the
    pipeline's env: a tag for another env is refused), CODEBUILD_SRC_DIR (default: here),
    CODEBUILD_SRC_DIR_plan (apply), TFDEPLOY_PLAN_ARTIFACTS (a release's cell builds: where each
    cell's plan is saved and applied from), TFDEPLOY_BAKE_SECONDS (a bake build: wait, succeed),
    TF_BACKEND_CONFIG_PREFIX, TFDEPLOY_VERSION.
    Prints TAG, ENV, TEAM, SCOPE, REGION, TARGET_MODULE (+ stage values) as KEY=VALUE lines.

    \b
    Example (locally, on a published source):
      ENV=dev CODEBUILD_SRC_DIR=/tmp/src tfdeploy ci plan
    """
    from ..delivery.ci import run as run_stage

    if needs_checkov:
        from ..delivery.ci import stage_needs_checkov

        click.get_current_context().exit(0 if stage_needs_checkov(stage, os.environ) else 1)

    root = click.get_current_context().find_root().command

    def invoke(argv: list[str], extra_env: dict[str, str]) -> int:
        saved = {name: os.environ.get(name) for name in extra_env}
        os.environ.update(extra_env)
        try:
            rv = root.main(args=argv, prog_name="tfdeploy", standalone_mode=False)
        except click.ClickException as exc:  # a usage error inside the stage command
            raise TfdeployError(f"tfdeploy {argv[0]}: {exc.format_message()}") from None
        except SystemExit as exc:
            rv = exc.code if isinstance(exc.code, int) else 1
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0

    code = run_stage(stage, os.environ, exports_file, invoke, click.echo)
    if code:
        click.get_current_context().exit(code)
