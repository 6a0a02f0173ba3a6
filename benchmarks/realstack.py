"""The real-provider workload of benchmarks/fanout.py (`--provider-mirror DIR`): per cell an SSM
parameter, an S3 bucket, an SNS topic and an IAM role through the real `hashicorp/aws` provider
(from a filesystem mirror) against moto, 8 Regions; and what the benchmark measures besides wall
time: the peak RSS of a row's process tree and the disk its work dirs and plugin cache use.

Rows (medians of the trials, each trial from an empty moto and no work dirs):
  plain xargs -P4             init + apply per Region, four at a time (the floor); the mirror
                              config without a plugin cache (a mirror install is a symlink)
  plain plan+apply -P4        init, plan -out, apply of the saved plan, four at a time: the same
                              Terraform work as tfdeploy's (a checked saved plan, 3 processes)
  tfdeploy fan-out -P4 cold   `apply --tag GLOB --auto-approve --parallel 4`, empty plugin cache
  tfdeploy fan-out -P4 warm   the same, plugin cache (and its seeds) from the cold row kept
  tfdeploy fan-out -P4 one wave  the same with `--set waves=*`: no canary Region alone first
  plain init + refresh-only   init, then `plan -refresh-only -detailed-exitcode` per Region, four
                              at a time, in fresh plain dirs (the floor of a first drift check)
  plain refresh-only -P4      the plan alone, in the initialised plain dirs (the drift floor)
  tfdeploy drift first        `drift --env dev --parallel 4`, no drift work dirs yet (init each)
  tfdeploy drift again        the same, drift work dirs kept (init skipped)
Every apply trial must leave the 8 states with their 6 resources; every drift must say 8 in-sync
(the plain refresh-only plan exits 2 on freshly applied cells: `tags` read back as {} vs null).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

AWS_STACK = """\
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}

locals {
  bench_name = "bench-${var.team}-${var.env}-${var.region}"
}

resource "aws_ssm_parameter" "cell" {
  name  = "/${var.team}/${var.env}/${var.region}/greeting"
  type  = "String"
  value = var.greeting
}

resource "aws_s3_bucket" "cell" {
  bucket = local.bench_name
}

resource "aws_sns_topic" "cell" {
  name = local.bench_name
}

resource "aws_iam_role" "cell" {
  name = local.bench_name
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "lambda.amazonaws.com" } }]
  })
}
"""
RESOURCES_PER_CELL = 6  # the toy stack's two terraform_data and the four above


def add_aws_stack(repo: Path) -> None:
    (repo / "modules" / "regional" / "aws.tf").write_text(AWS_STACK)


def mirror_config(root: Path, mirror: Path) -> Path:
    """A CLI config installing every provider from the mirror (the plain rows' config)."""
    path = root / "mirror.tfrc"
    path.write_text('provider_installation {\n  filesystem_mirror {\n    path = "%s"\n  }\n}\n' % mirror.resolve())
    return path


def terraform_binary() -> str:
    """The Terraform every row runs: TFDEPLOY_TERRAFORM, else the embedded one's launcher."""
    import shutil
    import sys

    return os.environ.get("TFDEPLOY_TERRAFORM") or shutil.which("tfdeploy-terraform") \
        or str(Path(sys.executable).parent / "tfdeploy-terraform")


def bench_env(root: Path, endpoint: str, mirror: Path | None, wrapper: str) -> dict[str, str]:
    """The plain rows' environment: moto at `endpoint`, providers from `mirror` (None: an empty
    CLI config), Terraform as `wrapper` (for tfdeploy too, and `$TF` in the plain rows' scripts);
    no plugin cache."""
    if mirror is None:
        (root / "empty.tfrc").write_text("")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "TF_"))}
    env.update({"TFDEPLOY_SANDBOX_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_ENDPOINT_URL": endpoint, "AWS_ENDPOINT_URL_S3": endpoint,
                "AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_ENDPOINT_URL_STS": endpoint,
                "AWS_EC2_METADATA_DISABLED": "true", "TF_IN_AUTOMATION": "1",
                "TF_CLI_CONFIG_FILE": str(root / "empty.tfrc" if mirror is None else mirror_config(root, mirror)),
                "TFDEPLOY_HOME": str(root / "home"), "TFDEPLOY_TERRAFORM": wrapper, "TF": wrapper})
    if mirror is not None:
        env["TFDEPLOY_PROVIDER_MIRROR"] = str(mirror.resolve())
    return env


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(entry))
    return tree


def _memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB. RSS counts the pages of a file every process maps (the
    700 MB provider binary) once per process; PSS shares them out: the sum is what the tree holds."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as rollup:
            for line in rollup:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


def tree_memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process and all its descendants now, in MB."""
    tree = _children()
    rss = pss = 0
    todo = [pid]
    while todo:
        current = todo.pop()
        one = _memory_kb(current)
        rss, pss = rss + one[0], pss + one[1]
        todo += tree.get(current, [])
    return rss / 1024, pss / 1024


class PeakRss:
    """Samples a process tree's RSS and PSS every 0.25 s while it runs; the peaks afterwards."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak_mb = 0.0
        self.peak_pss_mb = 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.25):
            rss, pss = tree_memory_mb(self.pid)
            self.peak_mb = max(self.peak_mb, rss)
            self.peak_pss_mb = max(self.peak_pss_mb, pss)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


def run_measured(argv: list[str], cwd: Path, env: dict[str, str],
                 ok: tuple[int, ...] = (0,)) -> tuple[float, tuple[float, float], str]:
    """Run `argv`: (wall s, (peak RSS, peak PSS) MB of its process tree, stdout); exits on an
    unexpected exit code."""
    import sys

    started = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = PeakRss(proc.pid)
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    sampler.stop()
    if proc.returncode not in ok:
        sys.exit(f"{' '.join(argv)[:200]} exited {proc.returncode}:\n{out[-2000:]}\n{err[-3000:]}")
    return wall, (sampler.peak_mb, sampler.peak_pss_mb), out


def disk_mb(*paths: Path) -> float:
    """What `du -s` says the folders use (symlinks not followed: a mirror install is a link)."""
    existing = [str(p) for p in paths if p.exists()]
    if not existing:
        return 0.0
    out = subprocess.run(["du", "-s", "-k", "-c", *existing], capture_output=True, text=True).stdout
    return int(out.strip().splitlines()[-1].split()[0]) / 1024
