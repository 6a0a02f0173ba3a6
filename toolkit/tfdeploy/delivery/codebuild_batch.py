"""A release's batch on CodeBuild, from the client side: start it, wait for it, stop it, say how it went.

`StartBuildBatch` takes the request `delivery/batch.py: start_request` built (the generated batch
buildspec as `buildspecOverride`, the release's restrictions as `buildBatchConfigOverride`);
`BatchGetBuildBatches` is polled until the batch leaves IN_PROGRESS. Each of the batch's
`buildGroups` is one task of the graph: its `identifier` (the cell's, delivery/batch.py:
identifier, or a bake build's), `dependsOn`, and `currentBuildSummary` (`arn`, `buildStatus`) once a
build was started for it. A group without a build never started: a task whose dependency failed
(CodeBuild starts no dependant of a failed task), or one a stopped batch never reached. Groups that
are not tasks of the graph (CodeBuild's own, e.g. the source download) are only reported when they
failed. A build in progress is looked up with `BatchGetBuilds` for its `currentPhase`, so the stage
build's log says which cell is at which phase as it happens, not only at the end.

`StopBuildBatch` is the stage build's own: a stage build that is stopped stops the batch it started
(delivery/release_stage.py), or its cells would go on deploying with no one watching.

No retries of builds here, and no scheduling of ours: CodeBuild runs the graph.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import quote

from ..errors import TfdeployError

DONE = ("SUCCEEDED", "FAILED", "FAULT", "TIMED_OUT", "STOPPED")
NOT_STARTED = "NOT_STARTED"
DEFAULT_POLL_S = 15.0


@dataclass(frozen=True)
class BuildOutcome:
    identifier: str
    status: str  # a CodeBuild buildStatus, or NOT_STARTED
    arn: str = ""
    phase: str = ""  # currentPhase of a build in progress (BatchGetBuilds), when known

    @property
    def doing(self) -> str:
        """What the build is doing, in words: `in progress (BUILD)`, `succeeded`, `not started`."""
        words = self.status.lower().replace("_", " ")
        return f"{words} ({self.phase})" if self.phase and self.status == "IN_PROGRESS" else words

    @property
    def build_id(self) -> str:
        """`project:uuid` from `arn:aws:codebuild:<region>:<account>:build/project:uuid`."""
        return self.arn.split(":build/", 1)[1] if ":build/" in self.arn else ""


@dataclass(frozen=True)
class BatchOutcome:
    batch_id: str
    status: str  # buildBatchStatus
    builds: tuple[BuildOutcome, ...]  # the graph's tasks, in graph order
    others: tuple[BuildOutcome, ...] = ()  # CodeBuild's own groups

    @property
    def ok(self) -> bool:
        return self.status == "SUCCEEDED" and all(b.status == "SUCCEEDED" for b in self.builds)


def client(region: str, environ: Mapping[str, str]) -> Any:
    """A CodeBuild client: AWS_ENDPOINT_URL_CODEBUILD when set (the test double), else the sandbox
    endpoint when one is in use, else AWS."""
    from ..aws.clients import client as make
    from .publish import sandbox_endpoint

    endpoint = environ.get("AWS_ENDPOINT_URL_CODEBUILD") or sandbox_endpoint(environ)
    return make("codebuild", region, environ, endpoint=endpoint)


def _call(what: str, call: Callable[[], Any]) -> Any:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise TfdeployError(f"CodeBuild {what} failed: {error.get('Code')}: {error.get('Message', '')}") from None
    except BotoCoreError as exc:
        raise TfdeployError(f"CodeBuild {what} failed: {exc}") from None


def start(codebuild: Any, request: Mapping[str, Any]) -> str:
    """StartBuildBatch; the batch id."""
    answer = _call(f"StartBuildBatch of {request.get('projectName')}",
                   lambda: codebuild.start_build_batch(**request))
    return str(answer["buildBatch"]["id"])


def stop(codebuild: Any, batch_id: str) -> None:
    """StopBuildBatch: CodeBuild stops the batch's running builds and starts no more."""
    _call(f"StopBuildBatch of {batch_id}", lambda: codebuild.stop_build_batch(id=batch_id))


def outcome_of(batch: Mapping[str, Any], graph: Sequence[str]) -> BatchOutcome:
    """The outcome of a BatchGetBuildBatches `buildBatch` (pure): one BuildOutcome per identifier
    of `graph`, in its order."""
    groups = {g.get("identifier", ""): g for g in batch.get("buildGroups") or []}

    def one(identifier: str) -> BuildOutcome:
        summary = (groups.get(identifier) or {}).get("currentBuildSummary") or {}
        return BuildOutcome(identifier, str(summary.get("buildStatus") or NOT_STARTED), str(summary.get("arn") or ""))

    others = tuple(one(i) for i in groups if i not in graph)
    return BatchOutcome(str(batch.get("id", "")), str(batch.get("buildBatchStatus", "")),
                        tuple(one(i) for i in graph), others)


class _Phases:
    """currentPhase of the builds in progress (BatchGetBuilds, 100 ids a call). Only for the log:
    when it is refused (a deploy role from before the module allowed it), said once, then skipped."""

    def __init__(self, codebuild: Any, say: Callable[[str], None]) -> None:
        self.codebuild, self.say, self.off = codebuild, say, False

    def __call__(self, result: BatchOutcome) -> BatchOutcome:
        running = [b.build_id for b in result.builds if b.status == "IN_PROGRESS" and b.build_id]
        if self.off or not running:
            return result
        phases: dict[str, str] = {}
        try:
            for i in range(0, len(running), 100):
                answer = _call("BatchGetBuilds", lambda: self.codebuild.batch_get_builds(ids=running[i:i + 100]))
                phases.update({str(b.get("id")): str(b.get("currentPhase") or "") for b in answer.get("builds") or []})
        except TfdeployError as exc:
            self.off = True
            self.say(f"builds' phases not shown: {exc}")
            return result
        builds = tuple(replace(b, phase=phases.get(b.build_id, "")) if b.status == "IN_PROGRESS" else b
                       for b in result.builds)
        return replace(result, builds=builds)


def wait(codebuild: Any, batch_id: str, graph: Sequence[str], *, poll_s: float = DEFAULT_POLL_S,
         say: Callable[[str], None] = lambda line: None,
         sleep: Callable[[float], Any] = time.sleep, names: Mapping[str, str] | None = None,
         until: Callable[[], bool] = lambda: False, timeout_s: float | None = None,
         before: BatchOutcome | None = None) -> BatchOutcome:
    """Poll BatchGetBuildBatches until the batch is done; say each build's status and phase as they
    change (`names`: identifier -> the cell's tag, for the line). Returns early, with the batch as
    last seen, once `until()` is true (the stage build was told to stop) or after `timeout_s`.
    `before`: the batch as an earlier wait left it (what was said then is not said again)."""
    seen: dict[str, str] = {b.identifier: b.doing for b in (before.builds if before else ())}
    phases = _Phases(codebuild, say)
    ends = time.monotonic() + timeout_s if timeout_s is not None else None
    while True:
        answer = _call("BatchGetBuildBatches", lambda: codebuild.batch_get_build_batches(ids=[batch_id]))
        found = answer.get("buildBatches") or []
        if not found:
            raise TfdeployError(f"CodeBuild does not know batch {batch_id} (BatchGetBuildBatches found nothing)")
        result = phases(outcome_of(found[0], graph))
        for build in result.builds:
            if build.doing != seen.get(build.identifier, "not started"):
                say(f"{(names or {}).get(build.identifier, build.identifier)}: {build.doing}")
                seen[build.identifier] = build.doing
        if result.status in DONE or until() or (ends is not None and time.monotonic() >= ends):
            return result
        # `sleep` wakes early when told to stop (release_stage: supervise.pause): the next look is
        # what the batch is doing then.
        sleep(poll_s if ends is None else max(0.0, min(poll_s, ends - time.monotonic())))


def build_link(arn: str) -> str:
    """The CodeBuild console page of a build (its phases and log) from its ARN (pure):
    https://<region>.console.aws.amazon.com/codesuite/codebuild/<account>/projects/<project>/build/
    <project>%3A<uuid>/?region=<region> (one line; the build id's colon encoded)."""
    parts = arn.split(":")
    if len(parts) < 6 or ":build/" not in arn:
        return ""
    region, account, build_id = parts[3], parts[4], arn.split(":build/", 1)[1]
    project = build_id.split(":", 1)[0]
    return (f"https://{region}.console.aws.amazon.com/codesuite/codebuild/{account}/projects/{quote(project)}/build/"
            f"{quote(build_id, safe='')}/?region={region}")


def summary(stage: str, release: str, result: BatchOutcome, tags: Mapping[str, str]) -> str:
    """What the stage build prints (and fails with): each cell and its result (pure).
    `tags`: identifier -> its cell's tag; other identifiers (bake builds) are named as they are."""
    good = sum(1 for b in result.builds if b.status == "SUCCEEDED")
    lines = [f"{stage} of release {release}: batch {result.batch_id} {result.status.lower()}, "
             f"{good} of {len(result.builds)} builds succeeded"]
    width = max([len(tags.get(b.identifier, b.identifier)) for b in result.builds] + [4])
    for build in result.builds:
        status = build.doing if build.status != NOT_STARTED else (
            "not started (the batch was stopped)" if result.status in ("STOPPED", "IN_PROGRESS")
            else "skipped (not started: a build it depends on did not succeed)")
        lines.append(f"  {tags.get(build.identifier, build.identifier).ljust(width)}  {status}"
                     + (f"  {build_link(build.arn)}" if build.arn else ""))
    for other in result.others:
        if other.status not in ("SUCCEEDED", NOT_STARTED):
            lines.append(f"  {other.identifier.ljust(width)}  {other.status.lower()} (CodeBuild's own build)")
    return "\n".join(lines)
