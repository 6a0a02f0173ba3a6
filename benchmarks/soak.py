"""Soak: random plans, applies, races and kills over 4 cells; after each, check no state was lost.

    python benchmarks/soak.py [--ops 200] [--seed 1] [--keep]

Every cell's stack is `terraform_data` resources whose create and destroy provisioners append to a
ledger file, so the soak knows every resource Terraform created. Operations, picked at random:
plan, apply, 2-3 concurrent applies of one cell (with and without --lock-timeout), SIGTERM / SIGINT /
SIGKILL of tfdeploy mid-apply, and SIGKILL of the backend mid-apply (a TCP proxy in front of the
moto server: the AWS endpoint Terraform talks to dies; moto keeps its data). After a backend kill the
soak does what an operator would: restart the backend, release stale locks (`tfdeploy locks`,
`tfdeploy unlock`) and push a kept errored state back (`tfdeploy state recover`).

After every operation, read straight from moto (not through the proxy):
- every state object parses (else: corrupt);
- no state object disappeared and no serial went down (else: lost);
- every resource the ledger says exists is in its cell's state or in a kept errored state
  (else: lost resource);
- no Terraform, provider or provisioner process of the soak outlives its tfdeploy by more than
  ORPHAN_GRACE_S seconds (else: orphaned).
Prints the counts; all but `operations` must be 0. Exit 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

BIN = Path(sys.executable).parent
TFDEPLOY = str(BIN / "tfdeploy")
ORPHAN_GRACE_S = 20.0
CELLS = ("dev_us-east-1/research", "dev_eu-central-1/research", "dev_global/research", "dev_us-east-1/risk")
VERSIONS = ("1.0", "1.1", "1.2", "1.3")
BUCKET = "soak-tfstate-dev"

_STACK = """\
terraform {
  required_version = ">= 1.10"
  backend "s3" {}
}

variable "env" {
  type = string
}
variable "region" {
  type = string
}
variable "team" {
  type = string
}
variable "account" {
  type = string
}
variable "release_version" {
  type = string
}
variable "allowed_regions" {
  type    = list(string)
  default = []
}

module "regional" {
  source  = "./modules/cell"
  cell    = "${var.env}-${var.region}-${var.team}"
  version_label = var.release_version
}

module "global" {
  source  = "./modules/cell"
  cell    = "${var.env}-global-${var.team}"
  version_label = var.release_version
}
"""

# Two resources per cell, replaced on every version; each logs its create and destroy.
_CELL_MODULE = """\
variable "cell" {
  type = string
}
variable "version_label" {
  type = string
}

resource "terraform_data" "item" {
  count            = 2
  input            = { cell = var.cell, version = var.version_label }
  triggers_replace = var.version_label

  provisioner "local-exec" {
    command = "sleep 1; echo \\"create ${self.id} ${self.input.cell}\\" >> \\"$SOAK_LEDGER\\""
  }

  provisioner "local-exec" {
    when    = destroy
    command = "echo \\"destroy ${self.id} ${self.input.cell}\\" >> \\"$SOAK_LEDGER\\""
  }
}
"""


def git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "soak", "GIT_AUTHOR_EMAIL": "soak@example.com",
           "GIT_COMMITTER_NAME": "soak", "GIT_COMMITTER_EMAIL": "soak@example.com"}
    subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)


def make_repo(root: Path) -> Path:
    repo = root / "infra"
    files = {
        "main.tf": _STACK,
        "modules/cell/main.tf": _CELL_MODULE,
        ".gitignore": ".tfdeploy/\n",
        "pyproject.toml": textwrap.dedent("""\
            [tool.tfdeploy]
            backend_prefix = "soak-tfstate"
            environments = ["dev"]
            lock = "s3"
            """),
    }
    for team, account in (("research", "111111111111"), ("risk", "222222222222")):
        files[f"envs/dev/{team}/variables.tfvars"] = f'account = "{account}"\n'
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-qm", "soak stack")
    for cell in CELLS:
        for version in VERSIONS:
            git(repo, "tag", "-a", f"{cell}/{version}", "-m", "soak")
    return repo


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- the backend: moto, behind a TCP proxy that the soak can kill ------------------------------

_PROXY = """
import socket, sys, threading
listen, target = int(sys.argv[1]), int(sys.argv[2])
def pipe(a, b):
    try:
        while data := a.recv(65536):
            b.sendall(data)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try: s.shutdown(socket.SHUT_RDWR)
            except OSError: pass
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen)); server.listen(64)
while True:
    client, _ = server.accept()
    try:
        upstream = socket.create_connection(("127.0.0.1", target))
    except OSError:
        client.close()
        continue
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
"""


class Backend:
    def __init__(self, root: Path):
        self.moto_port, self.proxy_port = free_port(), free_port()
        log = open(root / "moto.log", "w")
        self.moto = subprocess.Popen([sys.executable, "-m", "tfdeploy.aws.motoserver", "-H", "127.0.0.1",
                                      "-p", str(self.moto_port)],
                                     stdout=log, stderr=log)
        self.proxy: subprocess.Popen | None = None
        wait_port(self.moto_port)
        self.start_proxy()

    @property
    def moto_url(self) -> str:
        return f"http://127.0.0.1:{self.moto_port}"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    def start_proxy(self) -> None:
        self.proxy = subprocess.Popen([sys.executable, "-c", _PROXY, str(self.proxy_port), str(self.moto_port)])
        wait_port(self.proxy_port)

    def kill_proxy(self) -> None:
        assert self.proxy is not None
        self.proxy.kill()
        self.proxy.wait()

    def stop(self) -> None:
        for proc in (self.proxy, self.moto):
            if proc and proc.poll() is None:
                proc.kill()
                proc.wait()


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


# ---- the soak ------------------------------------------------------------------------------------

class Soak:
    def __init__(self, root: Path, seed: int):
        self.root = root
        self.rng = random.Random(seed)
        self.repo = make_repo(root)
        self.backend = Backend(root)
        self.ledger = root / "ledger.txt"
        self.ledger.touch()
        self.cache = self.repo / ".tfdeploy"
        self.counts: Counter[str] = Counter()
        self.serials: dict[str, int] = {}
        self.env = {**os.environ, "TFDEPLOY_SANDBOX_ENDPOINT": self.backend.url,
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1", "TFDEPLOY_HOME": str(root / "home"),
                    "SOAK_LEDGER": str(self.ledger)}
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_DYNAMODB",
                     "AWS_ENDPOINT_URL_STS", "AWS_PROFILE"):
            self.env.pop(name, None)
        import boto3

        self.s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=self.backend.moto_url,
                               aws_access_key_id="testing", aws_secret_access_key="testing")
        try:
            self.tfdeploy("bootstrap", "--env", "dev", check=True)
            doctor = self.tfdeploy("doctor", "--json")
            checks = json.loads(doctor.stdout) if doctor.stdout.startswith("[") else []
            self.terraform = next((c["detail"] for c in checks if c["name"] == "terraform"), "?")
        except BaseException:
            self.backend.stop()
            raise

    # -- helpers --
    def tfdeploy(self, *args: str, check: bool = False, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run([TFDEPLOY, *args], cwd=self.repo, env=self.env, capture_output=True,
                              text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise SystemExit(f"tfdeploy {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
        return proc

    def spawn(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([TFDEPLOY, *args], cwd=self.repo, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def pick_tag(self) -> str:
        return f"{self.rng.choice(CELLS)}/{self.rng.choice(VERSIONS)}"

    def note(self, result: str) -> None:
        self.counts[result] += 1

    def finish(self, proc: subprocess.Popen) -> str:
        try:
            _, err = proc.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
            self.note("hung")
            return err
        if "Traceback" in err:
            self.counts["tracebacks"] += 1
            print(err[-2000:], file=sys.stderr)
        return err

    def changing_tag(self) -> str:
        """A tag whose version differs from what its cell runs now, so an apply has work to do."""
        cell_tag = self.rng.choice(CELLS)
        current = self.deployed_version(cell_tag)
        return f"{cell_tag}/{self.rng.choice([v for v in VERSIONS if v != current])}"

    def deployed_version(self, cell_tag: str) -> str | None:
        try:
            state = json.loads(self.s3.get_object(Bucket=BUCKET, Key=state_key(cell_tag))["Body"].read())
        except Exception:
            return None
        versions = {inst["attributes"]["input"]["value"]["version"] for res in state.get("resources", [])
                    for inst in res.get("instances", []) if res.get("type") == "terraform_data"}
        return versions.pop() if len(versions) == 1 else None

    def wait_applying(self, proc: subprocess.Popen, cell_tag: str) -> None:
        """Wait until Terraform is inside the apply (the ledger moves for the cell), then a random
        moment more, so the signal lands mid-apply."""
        cell, size = cell_of(cell_tag), self.ledger.stat().st_size
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            with self.ledger.open() as ledger:
                ledger.seek(size)
                if cell in ledger.read():
                    break
            time.sleep(0.05)
        time.sleep(self.rng.uniform(0.0, 1.5))

    # -- operations --
    def op_plan(self) -> None:
        self.note("rc=%d" % self.tfdeploy("plan", "--tag", self.pick_tag()).returncode)

    def op_apply(self) -> None:
        self.note("rc=%d" % self.tfdeploy("apply", "--tag", self.pick_tag(), "--auto-approve").returncode)

    def op_race(self) -> None:
        cell = self.rng.choice(CELLS)
        extra = ["--lock-timeout", "120s"] if self.rng.random() < 0.5 else []
        procs = [self.spawn("apply", "--tag", f"{cell}/{self.rng.choice(VERSIONS)}", "--auto-approve", *extra)
                 for _ in range(self.rng.randint(2, 3))]
        for proc in procs:
            self.finish(proc)
            self.note("rc=%d" % proc.returncode)

    def op_signal(self, sig: signal.Signals) -> None:
        tag = self.changing_tag()
        proc = self.spawn("apply", "--tag", tag, "--auto-approve")
        self.wait_applying(proc, tag.rsplit("/", 1)[0])
        if proc.poll() is None:
            proc.send_signal(sig)
        self.finish(proc)
        self.note(f"{sig.name} rc={proc.returncode}")

    def op_kill_backend(self) -> None:
        tag = self.changing_tag()
        proc = self.spawn("apply", "--tag", tag, "--auto-approve")
        self.wait_applying(proc, tag.rsplit("/", 1)[0])
        self.backend.kill_proxy()
        self.finish(proc)
        self.note(f"backend-killed rc={proc.returncode}")
        self.backend.start_proxy()
        self.repair()

    def repair(self) -> None:
        """What an operator does after the backend died: release stale locks, push kept states back."""
        listing = self.tfdeploy("locks", "--env", "dev", "--json")
        if listing.returncode == 0:
            for lock in json.loads(listing.stdout or "[]"):
                if lock["tags"] and self.tfdeploy("unlock", "--tag", lock["tags"][0], "--lock-id",
                                                  lock["lock_id"], "--yes").returncode == 0:
                    self.note("unlocked")
        for kept in sorted((self.cache / "errored").glob("*/*.tfstate")) if (self.cache / "errored").is_dir() else []:
            cell = kept.parent.name
            tag = next(f"{c}/{VERSIONS[0]}" for c in CELLS if cell_of(c) == cell)
            done = self.tfdeploy("state", "recover", "--tag", tag, "--file", str(kept), "--yes")
            self.note("recovered" if done.returncode == 0 else "recover-refused")

    # -- invariants --
    def check(self) -> None:
        self.check_processes()
        live = self.ledger_live()
        kept_ids = self.kept_ids()
        for cell_tag in CELLS:
            cell, key = cell_of(cell_tag), state_key(cell_tag)
            try:
                body = self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            except self.s3.exceptions.NoSuchKey:
                if cell in self.serials:
                    self.counts["lost states"] += 1
                    print(f"LOST: {key} disappeared", file=sys.stderr)
                state = None
            else:
                try:
                    state = json.loads(body)
                except ValueError:
                    self.counts["corrupt states"] += 1
                    print(f"CORRUPT: {key}", file=sys.stderr)
                    continue
            ids = set()
            if state is not None:
                if state["serial"] < self.serials.get(cell, 0):
                    self.counts["lost states"] += 1
                    print(f"LOST: {key} serial {state['serial']} < {self.serials[cell]}", file=sys.stderr)
                self.serials[cell] = max(state["serial"], self.serials.get(cell, 0))
                ids = state_ids(state)
            missing = live.get(cell, set()) - ids - kept_ids
            if missing:
                self.counts["lost resources"] += len(missing)
                print(f"LOST RESOURCES in {cell}: {sorted(missing)}", file=sys.stderr)

    def ledger_live(self) -> dict[str, set[str]]:
        live: dict[str, set[str]] = {}
        for line in self.ledger.read_text().splitlines():
            parts = line.split()
            if len(parts) != 3:
                continue
            action, rid, cell = parts
            (live.setdefault(cell, set()).add if action == "create" else live.setdefault(cell, set()).discard)(rid)
        return live

    def kept_ids(self) -> set[str]:
        ids: set[str] = set()
        for path in self.cache.glob("errored/**/*.tfstate"):
            try:
                ids |= state_ids(json.loads(path.read_text()))
            except ValueError:
                self.counts["corrupt states"] += 1
        return ids

    def check_processes(self) -> None:
        deadline = time.monotonic() + ORPHAN_GRACE_S
        while True:
            left = soak_processes(self.root)
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if left:
            self.counts["orphaned processes"] += len(left)
            print(f"ORPHANS: {left}", file=sys.stderr)
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def run(self, ops: int) -> None:
        table = [(self.op_plan, 20), (self.op_apply, 30), (self.op_race, 15),
                 (lambda: self.op_signal(signal.SIGTERM), 10), (lambda: self.op_signal(signal.SIGINT), 5),
                 (lambda: self.op_signal(signal.SIGKILL), 10), (self.op_kill_backend, 10)]
        actions, weights = zip(*table)
        started = time.monotonic()
        for number in range(1, ops + 1):
            self.rng.choices(actions, weights)[0]()
            self.counts["operations"] += 1
            self.check()
            if number % 10 == 0:
                print(f"  {number}/{ops} operations, {time.monotonic() - started:.0f}s", file=sys.stderr)


def cell_of(cell_tag: str) -> str:
    head, team = cell_tag.split("/")
    env, scope = head.split("_")
    return f"{env}-{scope}-{team}"


def state_key(cell_tag: str) -> str:
    head, team = cell_tag.split("/")
    return f"{team}/dev-{head.split('_')[1]}/terraform.tfstate"


def state_ids(state: dict) -> set[str]:
    return {inst["attributes"]["id"] for res in state.get("resources", []) if res.get("type") == "terraform_data"
            for inst in res.get("instances", [])}


def soak_processes(root: Path) -> list[int]:
    """Processes (other than this one) whose working directory is inside the soak's folder."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(root)) and "/work/" in cwd:
            found.append(int(entry.name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tfdeploy-soak-"))
    soak = Soak(root, args.seed)
    try:
        soak.run(args.ops)
    finally:
        soak.backend.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"terraform: {soak.terraform}")
    keys = ("operations", "lost states", "lost resources", "corrupt states", "orphaned processes", "tracebacks", "hung")
    print(f"soak over {len(CELLS)} cells, seed {args.seed}")
    for key in keys:
        print(f"  {key:<20}{soak.counts[key]:>6}")
    others = {k: v for k, v in sorted(soak.counts.items()) if k not in keys}
    print("  outcomes: " + ", ".join(f"{k} x{v}" for k, v in others.items()))
    sys.exit(0 if all(soak.counts[k] == 0 for k in keys[1:]) else 1)


if __name__ == "__main__":
    main()
