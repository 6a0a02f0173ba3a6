"""TEST DOUBLE for CodeBuild's batch API (moto has none): StartBuildBatch, BatchGetBuildBatches,
StopBuildBatch and BatchGetBuilds.

A tiny HTTP server on 127.0.0.1 speaking CodeBuild's JSON protocol (`X-Amz-Target:
CodeBuild_20161006.<Operation>`, `application/x-amz-json-1.1`), so tfdeploy's real boto3 client
talks to it as to CodeBuild (botocore validates every request against the service model). What it
does with a StartBuildBatch, as CodeBuild would:
- parses `buildspecOverride` (its `batch: build-graph`) and refuses a graph of more builds than
  `buildBatchConfigOverride.restrictions.maximumBuildsAllowed` (CodeBuild fails such a batch);
- gets the source: with `sourceTypeOverride: S3`, the object `sourceLocationOverride` (`bucket/key`)
  at version `sourceVersion` from S3 (the moto server), unzipped; else the server's `source_dir`;
- runs each build of the graph through tfdeploy's local batch runner (delivery/batch_runner.py:
  depend-on, per-build env, no dependant of a failed build, the cap), install phase skipped, with
  `environmentVariablesOverride` over each build's variables, and CODEBUILD_BUILD_ID / _ARN /
  CODEBUILD_BATCH_BUILD_IDENTIFIER as CodeBuild sets them;
- answers BatchGetBuildBatches with `buildBatchStatus` and one `buildGroups` entry per task
  (`identifier`, `dependsOn`, `ignoreFailure`, `currentBuildSummary.{arn, buildStatus}` from the
  moment the build starts: IN_PROGRESS, then its end status), plus CodeBuild's own DOWNLOAD_SOURCE
  group; statuses change as the builds run, one by one, as the graph releases them;
- answers BatchGetBuilds with each build's `buildStatus` and `currentPhase` (INSTALL, PRE_BUILD,
  BUILD, POST_BUILD: the phase the local runner last logged for it; COMPLETED once it ended);
- StopBuildBatch: no more builds start, the running builds' shells are terminated (their status
  STOPPED), the batch stays IN_PROGRESS until they ended, then is STOPPED; builds never started
  have no `currentBuildSummary`.
Not modelled: artifacts, logs in CloudWatch, build retries, the phases of the batch itself.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Mapping

ACCOUNT = "111111111111"


class FakeCodeBuild:
    def __init__(self, work_dir: Path, base_env: Mapping[str, str], source_dir: Path | None = None,
                 region: str = "us-east-1") -> None:
        self.work_dir, self.base_env, self.source_dir, self.region = work_dir, dict(base_env), source_dir, region
        self.batches: dict[str, dict[str, Any]] = {}
        self.stops: dict[str, threading.Event] = {}  # batch id -> set by StopBuildBatch
        self.builds: dict[str, dict[str, Any]] = {}  # build id -> what BatchGetBuilds answers
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
                fake.requests.append((operation, body))
                try:
                    code, answer = 200, fake.handle(operation, body)
                except ValueError as exc:
                    code, answer = 400, {"__type": "InvalidInputException", "message": str(exc)}
                data = json.dumps(answer).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- the API -------------------------------------------------------------------------------
    def handle(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        if operation == "StartBuildBatch":
            return {"buildBatch": self.start(body)}
        if operation == "BatchGetBuildBatches":
            with self.lock:
                found = [dict(self.batches[i]) for i in body.get("ids", []) if i in self.batches]
            return {"buildBatches": found, "buildBatchesNotFound": [i for i in body.get("ids", [])
                                                                   if i not in self.batches]}
        if operation == "StopBuildBatch":
            with self.lock:
                if body.get("id") not in self.batches:
                    raise ValueError(f"batch {body.get('id')} not found")
                self.stops[body["id"]].set()
                return {"buildBatch": dict(self.batches[body["id"]])}
        if operation == "BatchGetBuilds":
            with self.lock:
                known = {i: dict(self.builds[i]) for i in body.get("ids", []) if i in self.builds}
            for build in known.values():
                if build["buildStatus"] == "IN_PROGRESS":
                    build["currentPhase"] = self._phase(build.pop("log"))
                else:
                    build.pop("log")
            return {"builds": list(known.values()),
                    "buildsNotFound": [i for i in body.get("ids", []) if i not in known]}
        raise ValueError(f"the fake CodeBuild does not model {operation}")

    @staticmethod
    def _phase(log: Path) -> str:
        """The phase the local runner last logged for a running build (`[buildspec] phase build`)."""
        import re

        try:
            phases = re.findall(r"^\[buildspec\] phase (\w+)$", log.read_text(errors="replace"), re.M)
        except OSError:
            phases = []
        return phases[-1].upper() if phases else "PROVISIONING"

    def start(self, body: dict[str, Any]) -> dict[str, Any]:
        from tfdeploy.delivery.batch_runner import parse_batch
        from tfdeploy.delivery.buildspec_runner import parse_buildspec
        import yaml

        project = body["projectName"]
        data = yaml.safe_load(body.get("buildspecOverride") or "")
        spec, batch = parse_buildspec(data, "buildspecOverride"), parse_batch(data, "buildspecOverride")
        if batch is None:
            raise ValueError("StartBuildBatch needs a buildspec with a batch section")
        restrictions = (body.get("buildBatchConfigOverride") or {}).get("restrictions") or {}
        allowed = restrictions.get("maximumBuildsAllowed")
        if allowed is not None and len(batch.tasks) > allowed:
            raise ValueError(f"the batch has {len(batch.tasks)} builds, more than maximumBuildsAllowed {allowed}")
        batch_id = f"{project}:{uuid.uuid4()}"
        record = {"id": batch_id, "arn": self._arn("build-batch", batch_id), "projectName": project,
                  "buildBatchStatus": "IN_PROGRESS", "startTime": time.time(),
                  "sourceVersion": body.get("sourceVersion", ""),
                  "buildGroups": [{"identifier": "DOWNLOAD_SOURCE", "ignoreFailure": False}]
                  + [{"identifier": t.identifier, "dependsOn": list(t.depend_on), "ignoreFailure": t.ignore_failure}
                     for t in batch.tasks]}
        with self.lock:
            self.batches[batch_id] = record
            self.stops[batch_id] = threading.Event()
        threading.Thread(target=self._run, args=(batch_id, body, spec, batch, allowed), daemon=True).start()
        return dict(record)

    # -- running a batch -----------------------------------------------------------------------
    def _arn(self, kind: str, ident: str) -> str:
        return f"arn:aws:codebuild:{self.region}:{ACCOUNT}:{kind}/{ident}"

    def _source(self, body: dict[str, Any], dest: Path) -> Path:
        if body.get("sourceTypeOverride") == "S3":
            import boto3

            bucket, key = body["sourceLocationOverride"].split("/", 1)
            extra = {"VersionId": body["sourceVersion"]} if body.get("sourceVersion") else {}
            data = boto3.client("s3", region_name=self.region).get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
            dest.mkdir(parents=True)
            archive = dest.with_suffix(".zip")
            archive.write_bytes(data)
            # As CodeBuild unpacks it: modes and symlinks kept.
            subprocess.run(["unzip", "-q", str(archive), "-d", str(dest)], check=True)
            return dest
        if self.source_dir is None:
            raise ValueError("no source: neither an S3 source override nor the fake's source_dir")
        return self.source_dir

    def _run(self, batch_id: str, body: dict[str, Any], spec: Any, batch: Any, allowed: int | None) -> None:
        from tfdeploy.delivery.batch_runner import run_batch

        work = self.work_dir / batch_id.replace(":", "_")
        overrides = {v["name"]: v["value"] for v in body.get("environmentVariablesOverride") or []}
        builds = {t.identifier: f"{body['projectName']}:{uuid.uuid4()}" for t in batch.tasks}
        groups = {g["identifier"]: g for g in self.batches[batch_id]["buildGroups"]}
        try:
            src = self._source(body, work / "source")
            groups["DOWNLOAD_SOURCE"]["currentBuildSummary"] = {"arn": self._arn("build", f"{body['projectName']}:dl"),
                                                                "buildStatus": "SUCCEEDED"}

            def task_env(task: Any) -> dict[str, str]:
                return {"CODEBUILD_BUILD_ID": builds[task.identifier],
                        "CODEBUILD_BUILD_ARN": self._arn("build", builds[task.identifier]),
                        "CODEBUILD_BATCH_BUILD_IDENTIFIER": task.identifier, "AWS_REGION": self.region}

            def notify(result: Any) -> None:  # each status as it changes, as CodeBuild reports it
                status = {"running": "IN_PROGRESS", "succeeded": "SUCCEEDED", "failed": "FAILED",
                          "stopped": "STOPPED"}.get(result.status)
                if not status:  # a build that never started has no summary, as on CodeBuild
                    return
                build_id = builds[result.identifier]
                with self.lock:
                    groups[result.identifier]["currentBuildSummary"] = {
                        "arn": self._arn("build", build_id), "buildStatus": status, "requestedOn": time.time()}
                    self.builds[build_id] = {"id": build_id, "arn": self._arn("build", build_id),
                                             "projectName": body["projectName"], "buildStatus": status,
                                             "currentPhase": "COMPLETED",
                                             "log": work / "builds" / f"{result.identifier}.log"}

            stop = self.stops[batch_id]
            outcome = run_batch(spec, batch, src, work / "builds", overrides=overrides, skip_install=True,
                                parallel=allowed or 20, base_env=self.base_env, task_env=task_env,
                                stop=stop, notify=notify)
            final = "STOPPED" if stop.is_set() else "SUCCEEDED" if outcome.ok else "FAILED"
        except Exception as exc:  # the fake's own failure: a FAILED batch naming it
            groups["DOWNLOAD_SOURCE"]["currentBuildSummary"] = {"arn": "", "buildStatus": "FAILED"}
            self.batches[batch_id]["failure"] = str(exc)
            final = "FAILED"
        with self.lock:
            self.batches[batch_id].update(buildBatchStatus=final, endTime=time.time(), complete=True)

    def logs(self, batch_id: str) -> dict[str, str]:
        """Each build's log text, by identifier (for the tests' eyes)."""
        folder = self.work_dir / batch_id.replace(":", "_") / "builds"
        return {p.stem: p.read_text(errors="replace") for p in folder.glob("*.log")}
