"""`tfdeploy demo`: a first multi-Region release on this machine, offline, in 15-20 seconds on 2 cores.

Creates a throw-away example infra repo (team `research` in global + 4 Regions), starts the local
AWS sandbox (moto on 127.0.0.1), bootstraps the state backends, then runs the commands a person
would type, each shown before it runs: `release` tags version 1.0 for dev, one fan-out applies
it (global first, then the Regions in parallel; a live table on a terminal, one line per event
elsewhere), `status` prints the fleet matrix, `promote` tags qa at the commit proven in dev and a
second fan-out applies it, and `status --html` writes the fleet report.

The commands run as their own processes (the installed CLI, not a copy of its code), so the demo
shows exactly what they print and decide.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .. import procs
from ..errors import TfdeployError

TEAM = "research"
VERSION = "1.0"
# A spread a person recognises; short names use1, euc1, euw1, apse2 in the matrix.
DEMO_REGIONS = ("us-east-1", "eu-central-1", "eu-west-1", "ap-southeast-2")
GREETINGS = {"us-east-1": "hello from N. Virginia", "eu-central-1": "hallo aus Frankfurt",
             "eu-west-1": "dia duit from Dublin", "ap-southeast-2": "g'day from Sydney"}
ENVS = ("dev", "qa")
# What the sandbox is asked first: the ledger key (`sandbox.start`), then bootstrap's account,
# buckets and tables.
SANDBOX_SERVICES = ("kms", "sts", "s3", "dynamodb")
_IDENTITY = {"GIT_AUTHOR_NAME": "tfdeploy demo", "GIT_AUTHOR_EMAIL": "demo@example.com",
             "GIT_COMMITTER_NAME": "tfdeploy demo", "GIT_COMMITTER_EMAIL": "demo@example.com"}


def cpu_seconds() -> float:
    """CPU time of this process and of every child it has waited for (the commands and their
    Terraform processes), user + system."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass(frozen=True)
class StepTime:
    """Wall and CPU seconds of one step of the demo (CPU: the demo's process and the processes
    it waited for in the step; the sandbox server's own is `DemoReport.sandbox_cpu`)."""

    step: str
    seconds: float
    cpu_seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"step": self.step, "seconds": round(self.seconds, 2), "cpu_seconds": round(self.cpu_seconds, 2)}


class StepClock:
    """Times the demo's steps one after another."""

    def __init__(self) -> None:
        self.steps: list[StepTime] = []
        self._wall, self._cpu = time.monotonic(), cpu_seconds()

    def lap(self, step: str, counted_cpu: float = 0.0) -> None:
        """End `step`; `counted_cpu`: CPU seconds in it already reported elsewhere."""
        wall, cpu = time.monotonic(), cpu_seconds()
        self.steps.append(StepTime(step, wall - self._wall, cpu - self._cpu - counted_cpu))
        self._wall, self._cpu = wall, cpu


@dataclass
class DemoReport:
    repo: Path
    endpoint: str
    started_sandbox: bool
    html_report: Path
    commands: list[str] = field(default_factory=list)
    cells: list[dict] = field(default_factory=list)  # `status --json`'s cells at the end
    objects: list[str] = field(default_factory=list)  # bucket/key of every state
    seconds: float = 0.0
    steps: list[StepTime] = field(default_factory=list)
    sandbox_cpu: float | None = None  # the sandbox server's CPU seconds, where /proc tells

    def to_dict(self) -> dict[str, object]:
        return {"repo": str(self.repo), "sandbox_endpoint": self.endpoint, "html_report": str(self.html_report),
                "commands": self.commands, "cells": self.cells, "state_objects": self.objects,
                "seconds": round(self.seconds, 1), "steps": [s.to_dict() for s in self.steps],
                "sandbox_cpu_seconds": None if self.sandbox_cpu is None else round(self.sandbox_cpu, 2)}


def _git(repo: Path, *args: str) -> None:
    proc = subprocess.run(["git", *args], cwd=repo, env={**os.environ, **_IDENTITY}, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TfdeployError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")


def init_repo(repo: Path) -> None:
    """An empty git repo on main at `repo` (already one: left as it is)."""
    if not (repo / ".git").exists():
        _git(repo, "init", "-q", "-b", "main")


def create_repo(repo: Path, lock: str) -> None:
    """The example repo with `research` set up for global and DEMO_REGIONS in every env, committed
    on main (untagged: `release` makes the tags)."""
    from ..aws.signingkey import SANDBOX_ALIAS
    from .example import EXAMPLE_TEAMS, write_example_repo

    init_repo(repo)
    # Signed ledger records, offline: the sandbox has the key at this alias (aws/signingkey.py).
    write_example_repo(repo, lock=lock, ledger_signing_key=SANDBOX_ALIAS)
    for env in ENVS:
        team_dir = repo / "envs" / env / TEAM
        (team_dir / "variables.tfvars").write_text(
            f'account         = "{EXAMPLE_TEAMS[TEAM]}"\n'
            f"allowed_regions = {json.dumps(list(DEMO_REGIONS))}\n", encoding="utf-8")
        for region in DEMO_REGIONS:
            (team_dir / f"{region}.tfvars").write_text(f"greeting = {json.dumps(GREETINGS[region])}\n",
                                                      encoding="utf-8")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "Example infra repo")


def demo_commands(html_report: Path) -> list[list[str]]:
    """The commands the demo runs, in order, as a person types them (pure)."""
    regions = ["--scope", "all", "--global"]
    return [
        ["release", "--env", "dev", "--team", TEAM, "--version", VERSION, *regions],
        ["apply", "--tag", f"dev_*/{TEAM}/{VERSION}", "--auto-approve"],
        ["status", "--team", TEAM],
        ["promote", "--from", "dev", "--to", "qa", "--team", TEAM, "--version", VERSION, *regions],
        ["apply", "--tag", f"qa_*/{TEAM}/{VERSION}", "--auto-approve"],
        ["status", "--team", TEAM, "--html", str(html_report)],
    ]


def step_name(args: Sequence[str]) -> str:
    """A command's short name in the step timings: `apply dev`, `status --html` (pure)."""
    words = [args[0]]
    for flag, value in zip(args, args[1:]):
        if flag == "--tag":
            words.append(value.split("_", 1)[0])
        elif flag in ("--env", "--to"):
            words.append(value)
    return " ".join(words + (["--html"] if "--html" in args else []))


def _run(args: Sequence[str], repo: Path, environ: Mapping[str, str], out: int | None,
         say: Callable[[str], None], step: str) -> None:
    """One tfdeploy command as its own process in the example repo, shown first, its output passed
    through (to `out`, a file descriptor, or through `say` when there is none)."""
    say(f"{step} $ tfdeploy {shlex.join(args)}")
    command = [sys.executable, "-c", "from tfdeploy.entry import main; main()", *args]
    proc = subprocess.run(command, cwd=repo, env=dict(environ), stdout=out if out is not None else subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, check=False)
    if out is None and proc.stdout:
        say(proc.stdout.rstrip("\n"))
    if proc.returncode != 0:
        raise TfdeployError(f"the demo stopped: `tfdeploy {shlex.join(args)}` exited {proc.returncode} "
                            f"(its output is above); the example repo is kept at {repo}")


def run_demo(workspace: Path | None, *, lock: str = "dynamodb", keep_sandbox: bool = False,
             say: Callable[[str], None] = print, out: int | None = None, read_back: bool = False) -> DemoReport:
    """Run the demo; `say` prints the demo's own lines, `out` is the file descriptor the commands
    write to (None: their output goes through `say`); `read_back`: also fill the report's cells
    and state objects (for --json; a command and a listing more)."""
    from ..aws import sandbox
    from ..aws.bootstrap import bootstrap_backend
    from ..aws.clients import preload
    from ..aws.signingkey import SANDBOX_REGION, ensure_signing_key
    from ..model.settings import load_settings

    started = time.monotonic()
    clock = StepClock()
    root = workspace or Path(tempfile.mkdtemp(prefix="tfdeploy-demo-"))
    repo = root / "infra"
    if repo.exists():
        shutil.rmtree(repo)
    repo.mkdir(parents=True)
    html_report = root / "fleet.html"
    commands = demo_commands(html_report)
    steps = 3 + len(commands)
    step = iter(range(1, steps + 1))

    say(f"[{next(step)}/{steps}] example infra repo -> {repo}: team {TEAM} in global + "
        f"{len(DEMO_REGIONS)} Regions ({', '.join(DEMO_REGIONS)}), envs {' and '.join(ENVS)}")
    init_repo(repo)  # first: the sandbox's folder is named after the repo it belongs to
    state_dir = sandbox.sandbox_dir(os.environ, repo)  # the example repo's own sandbox
    running = sandbox.status(state_dir)
    started_sandbox = running is None
    # moto takes a second or two to start: it does so while the example repo is written and committed.
    with ThreadPoolExecutor(1, thread_name_prefix="sandbox-start") as pool:
        starting = pool.submit(sandbox.start, state_dir) if started_sandbox else None
        try:
            create_repo(repo, lock)
            if starting is not None:  # botocore's set-up meanwhile too: the sandbox's first callers need it
                preload(SANDBOX_SERVICES, SANDBOX_REGION)
            clock.lap("example repo")
            info = starting.result() if starting is not None else running
        except BaseException:
            if starting is not None:
                with contextlib.suppress(Exception):
                    starting.result()
                    sandbox.stop(state_dir)
            raise
    assert info is not None
    say(f"[{next(step)}/{steps}] local AWS sandbox (moto) {'started' if started_sandbox else 'reused'} "
        f"at {info.endpoint}")
    environ = {**os.environ, **sandbox.aws_env(info.endpoint, os.environ), **_IDENTITY,
               "TFDEPLOY_SANDBOX_ENDPOINT": info.endpoint}
    report = DemoReport(repo=repo, endpoint=info.endpoint, started_sandbox=started_sandbox, html_report=html_report)
    try:
        if not started_sandbox:  # `sandbox.start` made the key; one reused from before it did may lack it
            ensure_signing_key(info.endpoint, environ)
        clock.lap("sandbox")
        settings = load_settings(repo, environ)
        # The two envs' buckets and tables are independent: made side by side.
        with ThreadPoolExecutor(len(ENVS), thread_name_prefix="bootstrap") as pool:
            buckets = [boot.bucket for boot in pool.map(
                lambda env: bootstrap_backend(settings, env, None, environ=environ), ENVS)]
        say(f"[{next(step)}/{steps}] bootstrap: state buckets {', '.join(buckets)}"
            + (" with their lock tables" if settings.lock == "dynamodb" else ""))
        clock.lap("bootstrap")
        for args in commands:
            _run(args, repo, environ, out, say, f"[{next(step)}/{steps}]")
            report.commands.append(f"tfdeploy {shlex.join(args)}")
            clock.lap(step_name(args))
        if read_back:
            report.cells = _cells(repo, environ)
            report.objects = _state_objects(environ, info.endpoint, buckets)
            clock.lap("read back (--json)")
        say(f"fleet report: {html_report.as_uri()}")
    finally:
        if started_sandbox:
            report.sandbox_cpu = procs.cpu_seconds(info.pid)
        if started_sandbox and not keep_sandbox:
            sandbox.stop(state_dir)
            # Reaped now, the server's whole CPU time lands in this step: it is reported on its own.
            clock.lap("sandbox stop", counted_cpu=report.sandbox_cpu or 0.0)
    report.seconds = time.monotonic() - started
    report.steps = clock.steps
    return report


def _cells(repo: Path, environ: Mapping[str, str]) -> list[dict]:
    """What `status --json` says of the team's cells at the end (for --json)."""
    command = [sys.executable, "-c", "from tfdeploy.entry import main; main()", "status", "--team", TEAM, "--json"]
    proc = subprocess.run(command, cwd=repo, env=dict(environ), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise TfdeployError(f"the demo could not read the fleet back: {proc.stderr.strip()}")
    return [{k: c[k] for k in ("cell", "version", "result", "marks")} for c in json.loads(proc.stdout)["cells"]]


def _state_objects(environ: Mapping[str, str], endpoint: str, buckets: Sequence[str]) -> list[str]:
    from ..aws.clients import client

    s3 = client("s3", "us-east-1", dict(environ), endpoint=endpoint)
    found = []
    for bucket in buckets:
        keys = (o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))
        found += sorted(f"{bucket}/{k}" for k in keys if k.endswith(".tfstate"))  # not the records beside them
    return found
