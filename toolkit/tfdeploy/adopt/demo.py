"""`tfdeploy demo`: the whole tag flow on this machine, offline, in well under a minute.

Creates a throw-away example infra repo, tags it, starts the local AWS sandbox (moto), bootstraps
the dev state backend, plans and applies one regional and one global tag, and shows where each
state landed and which lock guarded it.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import TfdeployError

DEMO_TAGS = ("dev_us-east-1/research/1.0", "dev_global/research/1.0")


@dataclass
class DemoReport:
    repo: Path
    endpoint: str
    started_sandbox: bool
    deployments: list[dict] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"repo": str(self.repo), "sandbox_endpoint": self.endpoint,
                "deployments": self.deployments, "state_objects": self.objects,
                "seconds": round(self.seconds, 1)}


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "tfdeploy demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
           "GIT_COMMITTER_NAME": "tfdeploy demo", "GIT_COMMITTER_EMAIL": "demo@example.com"}
    proc = subprocess.run(["git", *args], cwd=repo, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TfdeployError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")


def create_repo(repo: Path, lock: str) -> None:
    from ..aws.signingkey import SANDBOX_ALIAS
    from .example import write_example_repo

    # Signed ledger records, offline: the sandbox has the key at this alias (aws/signingkey.py).
    write_example_repo(repo, lock=lock, ledger_signing_key=SANDBOX_ALIAS)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "Example infra repo")
    for name in DEMO_TAGS:
        _git(repo, "tag", "-a", name, "-m", f"Release {name}")


def run_demo(workspace: Path | None, *, lock: str = "dynamodb", keep_sandbox: bool = False,
             say: Callable[[str], None] = print, verbose: bool = False) -> DemoReport:
    from ..aws import sandbox
    from ..aws.bootstrap import bootstrap_backend
    from ..engine.stages import apply_saved, hold_cell, open_session, plan
    from ..fleet.recording import recorded
    from ..model.settings import load_settings
    from ..model.tags import parse_tag

    started = time.monotonic()
    root = workspace or Path(tempfile.mkdtemp(prefix="tfdeploy-demo-"))
    repo = root / "infra"
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    steps = 4 + 2 * len(DEMO_TAGS)
    step = iter(range(1, steps + 1))

    say(f"[{next(step)}/{steps}] example infra repo with tags {', '.join(DEMO_TAGS)} -> {repo}")
    create_repo(repo, lock)

    state_dir = sandbox.sandbox_dir(os.environ, repo)  # the example repo's own sandbox
    running = sandbox.status(state_dir)
    started_sandbox = running is None
    info = running or sandbox.start(state_dir)
    say(f"[{next(step)}/{steps}] local AWS sandbox (moto) {'started' if started_sandbox else 'reused'} "
        f"at {info.endpoint}")
    environ = {**os.environ, **sandbox.aws_env(info.endpoint, os.environ),
               "TFDEPLOY_SANDBOX_ENDPOINT": info.endpoint}
    from ..aws.signingkey import ensure_signing_key

    ensure_signing_key(info.endpoint, environ)  # a sandbox reused from before it made one
    report = DemoReport(repo=repo, endpoint=info.endpoint, started_sandbox=started_sandbox)
    try:
        settings = load_settings(repo, environ)
        boot = bootstrap_backend(settings, "dev", None, environ=environ)
        say(f"[{next(step)}/{steps}] bootstrap: bucket {boot.bucket}"
            + (f", lock table {boot.table}" if boot.table else "") + f" ({boot.region})")
        for name in DEMO_TAGS:
            buffer = io.StringIO()
            sink = None if verbose else buffer
            try:
                # Recorded in the ledger like any apply, so `tfdeploy status` shows the demo's cells.
                tag = parse_tag(name)  # the demo's own tags: its edge
                with hold_cell(repo, tag, environ=environ), \
                        recorded("apply", environ, lambda text: say(f"tfdeploy: warning: {text}")) as rec:
                    session = rec.session = open_session(repo, tag, overrides={}, environ=environ, sink=sink,
                                                         err_sink=sink)
                    _, summary = plan(session)
                    say(f"[{next(step)}/{steps}] plan  {name}: {summary} ({session.deployment.target_module})")
                    applied = apply_saved(session, session.workdir.source)
                    rec.counts = (applied.counts.get("add", 0), applied.counts.get("change", 0),
                                  applied.counts.get("destroy", 0))
            except TfdeployError:
                if not verbose:
                    say(buffer.getvalue()[-4000:])
                raise
            backend = session.deployment.backend
            say(f"[{next(step)}/{steps}] apply {name}: state s3://{backend.bucket}/{backend.key}, "
                f"lock {backend.lock_description}")
            report.deployments.append({"tag": name, "summary": str(summary),
                                       "deployment": session.deployment.to_dict()})
        report.objects = _state_objects(environ, info.endpoint, boot.bucket)
        say(f"[{next(step)}/{steps}] state objects in s3://{boot.bucket}/: {', '.join(report.objects)}")
    finally:
        if started_sandbox and not keep_sandbox:
            sandbox.stop(state_dir)
    report.seconds = time.monotonic() - started
    return report


def _state_objects(environ: dict[str, str], endpoint: str, bucket: str) -> list[str]:
    from ..aws.clients import client

    s3 = client("s3", "us-east-1", environ, endpoint=endpoint)
    keys = (o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
    return sorted(k for k in keys if k.endswith(".tfstate"))  # not the lock-mode records beside them
