"""Shared pieces of the cell-lock, errored-state and locks-command safety tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import boto3

from tests.conftest import git
from tests.e2e.conftest import TFDEPLOY, make_repo, tag, tfdeploy

TAG = "dev_us-east-1/research/1.0"
CELL = "dev-us-east-1-research"
BUCKET = "demo-tfstate-dev"
KEY = "research/dev-us-east-1/terraform.tfstate"


def slow_repo(path: Path, delay: int, lock: str = "dynamodb", tags: tuple[str, ...] = (TAG,)) -> Path:
    """The example repo whose regional apply sleeps `delay` seconds (a local-exec provisioner)."""
    repo = make_repo(path, lock=lock)
    tfvars = repo / "envs/dev/research/us-east-1.tfvars"
    tfvars.write_text(tfvars.read_text() + f"apply_delay_seconds = {delay}\n")
    git(repo, "commit", "-qam", f"apply sleeps {delay}s")
    for name in tags:
        tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    return repo


def start(repo: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """tfdeploy as a background process (its own process group, so tests can signal it alone)."""
    return subprocess.Popen([TFDEPLOY, *args], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def state_object(bucket: str = BUCKET, key: str = KEY) -> dict:
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(body)


def wait_for(predicate, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def leftovers(repo: Path) -> list[str]:
    """Temporary siblings of the cell's work dir (half-built or half-swapped work dirs)."""
    work = repo / ".tfdeploy" / "work"
    return sorted(p.name for p in work.iterdir() if p.name.startswith(f".{CELL}.")) if work.is_dir() else []


def holder_script(cache: Path, seconds: float) -> list[str]:
    """A process that holds the cell lock through tfdeploy's own API, then sleeps."""
    code = ("import sys, time; from pathlib import Path; from tfdeploy.engine.celllock import cell_lock\n"
            f"with cell_lock(Path({str(cache)!r}), {CELL!r}, command='tfdeploy apply --tag {TAG}'):\n"
            "    print('held', flush=True); time.sleep(float(sys.argv[1]))\n")
    return [sys.executable, "-c", code, str(seconds)]


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""
