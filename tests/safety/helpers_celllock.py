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


def slow_repo(path: Path, delay: int, lock: str = "dynamodb", tags: tuple[str, ...] = (TAG,),
              env: dict | None = None) -> Path:
    """The example repo whose regional apply sleeps `delay` seconds (a local-exec provisioner)."""
    repo = make_repo(path, lock=lock)
    tfvars = repo / "envs/dev/research/us-east-1.tfvars"
    tfvars.write_text(tfvars.read_text() + f"apply_delay_seconds = {delay}\n")
    git(repo, "commit", "-qam", f"apply sleeps {delay}s")
    for name in tags:
        tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev", env=env)
    return repo


def start(repo: Path, *args: str, env: dict | None = None) -> subprocess.Popen:
    """tfdeploy as a background process (its own process group, so tests can signal it alone)."""
    return subprocess.Popen([TFDEPLOY, *args], cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def state_object(bucket: str = BUCKET, key: str = KEY, endpoint: str | None = None) -> dict:
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MotoProcess:
    """A moto server of its own (a separate process on 127.0.0.1) that a test may kill."""

    def __init__(self, port: int):
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "MotoProcess":
        import urllib.request

        self.proc = subprocess.Popen([sys.executable, "-m", "tfdeploy.aws.motoserver", "-H", "127.0.0.1",
                                      "-p", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def up() -> bool:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1).read()
                return True
            except OSError:
                return False

        wait_for(up, timeout=30, what="moto server")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def env(self) -> dict[str, str]:
        names = ("TFDEPLOY_SANDBOX_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                 "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_STS")
        return {name: self.url for name in names}
