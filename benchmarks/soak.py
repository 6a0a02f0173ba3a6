"""Soak: random plans, applies, races and kills over 4 cells; after each, check no state was lost.

    python benchmarks/soak.py [--ops 200] [--seed 1] [--keep]

Every cell's stack is `terraform_data` resources whose create and destroy provisioners append to a
ledger file, so the soak knows every resource Terraform created. Operations, picked at random:
plan, apply, 2-3 concurrent applies of one cell (with and without --lock-timeout), SIGTERM / SIGINT /
SIGKILL of tfdeploy mid-apply, and SIGKILL of the backend mid-apply (a TCP proxy in front of the
moto server: the AWS endpoint Terraform talks to dies; moto keeps its data). After a backend kill the
soak does what an operator would: restart the backend, release stale locks (`tfdeploy locks`,
`tfdeploy unlock`) and push a kept errored state back (`tfdeploy state recover`).
The faults of issue 21 are picked among them too: a full disk (a small real tmpfs mounted as one
operation's cache dir, or over the repo's `.tfdeploy`, then unmounted; skipped with a printed reason
when mount is not permitted), forged ledger records (written with boto3 into
`_tfdeploy-ledger/<cell>/` and into the cell's summary: one unsigned, one signed but future-dated),
settings overrides on an apply (`--protected-envs ''`, `TFDEPLOY_ENVIRONMENTS=...`: must be refused
with rc 2 and nothing written to the bucket), and SIGKILL of a fan-out's parent
(`tfdeploy apply --tag 'dev_*/research/<v>' --auto-approve`) mid-apply. The repo commits
`ledger_signing_key = "alias/tfdeploy-ledger"`; the soak creates that key in its moto.

After every operation, read straight from moto (not through the proxy):
- every state object parses (else: corrupt);
- no state object disappeared and no serial went down (else: lost);
- every resource the ledger says exists is in its cell's state or in a kept errored state
  (else: lost resource);
- no Terraform, provider or provisioner process of the soak outlives its tfdeploy by more than
  ORPHAN_GRACE_S seconds (else: orphaned);
- for every cell, `tfdeploy status --json` agrees with the state object: the version of the
  resources in the state is the version status says is deployed (unless status marks the cell
  interrupted / partly), and the serial the last record says it left (`serial_after`) is not above
  the state's serial; a forged record never changes what status says is deployed (else: ledger
  disagreement).
Prints the counts and the wall time; all but `operations` must be 0. Exit 1 otherwise.
`--max-minutes` bounds the run: past it no new operation starts (and the run fails).
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
import time
from collections import Counter
from pathlib import Path

BIN = Path(sys.executable).parent
TFDEPLOY = str(BIN / "tfdeploy")
ORPHAN_GRACE_S = 20.0
CELLS = ("dev_us-east-1/research", "dev_eu-central-1/research", "dev_global/research", "dev_us-east-1/risk")
VERSIONS = ("1.0", "1.1", "1.2", "1.3")
BUCKET = "soak-tfstate-dev"
LEDGER_PREFIX = "_tfdeploy-ledger/"
ERRORED_PREFIX = "_tfdeploy-errored/"
FORGER = "user/forger"  # the caller every forged record names: status must never show it
DISK_SIZES = ("96k", "512k", "3m")  # a full disk at init, at the plan, or while the state is written

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
            ledger_signing_key = "alias/tfdeploy-ledger"
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
        self.cache.mkdir()
        self.mount_refused = ""  # why a tmpfs cannot be mounted here ("" until a mount was refused)
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
            from tfdeploy.aws.signingkey import ensure_signing_key

            ensure_signing_key(self.backend.moto_url, self.env)  # the key the repo's settings name
            self.tfdeploy("bootstrap", "--env", "dev", check=True)
            doctor = self.tfdeploy("doctor", "--json")
            checks = json.loads(doctor.stdout) if doctor.stdout.startswith("[") else []
            self.terraform = next((c["detail"] for c in checks if c["name"] == "terraform"), "?")
        except BaseException:
            self.backend.stop()
            raise

    # -- helpers --
    def tfdeploy(self, *args: str, check: bool = False, timeout: float = 300,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        try:
            proc = subprocess.run([TFDEPLOY, *args], cwd=self.repo, env=env or self.env, capture_output=True,
                                  text=True, timeout=timeout)
        except subprocess.TimeoutExpired:  # run() killed it: the soak goes on (bounded), counted
            self.note("hung")
            print(f"HUNG: tfdeploy {' '.join(args)}", file=sys.stderr)
            return subprocess.CompletedProcess(args, -9, "", "")
        if check and proc.returncode != 0:
            raise SystemExit(f"tfdeploy {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
        if "Traceback" in proc.stderr:
            self.counts["tracebacks"] += 1
            print(proc.stderr[-2000:], file=sys.stderr)
        return proc

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen([TFDEPLOY, *args], cwd=self.repo, env=env or self.env, stdout=subprocess.PIPE,
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
        return state_version(state)

    def wait_applying(self, proc: subprocess.Popen, cell_tag: str) -> None:
        """Wait until Terraform is inside the apply (the ledger moves for the cell), then a random
        moment more, so the signal lands mid-apply."""
        cell, size = cell_of(cell_tag) if "/" in cell_tag else cell_tag, self.ledger.stat().st_size
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

    # -- the faults of issue 21 --
    def op_disk_full(self) -> None:
        """An apply (one cell or a fan-out) whose cache dir is a small real tmpfs: its own
        (TFDEPLOY_CACHE_DIR) or mounted over the repo's `.tfdeploy`. Afterwards the operator keeps
        what tfdeploy kept there (errored states, records waiting in the outbox), then unmounts."""
        own = self.rng.random() < 0.5
        mount = self.root / "diskfull" if own else self.cache
        mount.mkdir(exist_ok=True)
        size = self.rng.choice(DISK_SIZES)
        if not self.mount_tmpfs(mount, size):
            return
        env = {**self.env, "TFDEPLOY_CACHE_DIR": str(mount)} if own else self.env
        try:
            if self.rng.random() < 0.5:
                proc = self.spawn("apply", "--tag", self.changing_tag(), "--auto-approve", env=env)
            else:
                proc = self.spawn("apply", "--tag", f"dev_*/research/{self.rng.choice(VERSIONS)}", "--auto-approve",
                                  env=env)
            err = self.finish(proc)
            if proc.returncode != 0 and "No space left" not in err and "ENOSPC" not in err and "disk" not in err:
                print(f"disk full ({size}): rc {proc.returncode}: {err.strip()[-300:]}", file=sys.stderr)
            self.note(f"disk-full rc={proc.returncode}")
            rescued = self.root / "rescued"
            for sub in ("errored", "ledger-outbox"):
                if (mount / sub).is_dir():
                    shutil.copytree(mount / sub, rescued / sub, dirs_exist_ok=True)
        finally:
            self.unmount(mount)
        for sub in ("errored", "ledger-outbox"):  # back where tfdeploy looks for them
            if (self.root / "rescued" / sub).is_dir():
                shutil.copytree(self.root / "rescued" / sub, self.cache / sub, dirs_exist_ok=True)
                self.note(f"rescued {sub}")
        shutil.rmtree(self.root / "rescued", ignore_errors=True)
        self.repair()

    def mount_tmpfs(self, where: Path, size: str) -> bool:
        if self.mount_refused:
            self.note("disk-full skipped")
            return False
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            self.mount_refused = (done.stderr.strip() or f"mount exited {done.returncode}").splitlines()[-1]
            print(f"disk-full fault skipped: cannot mount a tmpfs here ({self.mount_refused})", file=sys.stderr)
            self.note("disk-full skipped")
            return False
        return True

    def unmount(self, where: Path) -> None:
        if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)  # a process still in it

    def op_forge(self) -> None:
        """A bucket writer forges "this cell runs version X": a record object PUT with boto3 into
        `_tfdeploy-ledger/<cell>/` and added to the cell's summary, either unsigned or signed with
        the real key but dated a day ahead. What status says is deployed must not move."""
        cell_tag = self.rng.choice(CELLS)
        cell = cell_of(cell_tag)
        before = self.status_view()
        if before is None:
            return
        row = before.get(cell) or {}
        version = self.rng.choice([v for v in VERSIONS if v != row.get("version")])
        future = self.rng.random() < 0.5
        from datetime import datetime, timedelta, timezone

        when = datetime.now(timezone.utc) + (timedelta(days=1) if future else timedelta(seconds=0))
        stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        head, team = cell_tag.split("/")
        env_name, scope = head.split("_")
        record = {"tag": f"{cell_tag}/{version}", "commit": "f" * 40, "cell": cell, "env": env_name, "team": team,
                  "scope": scope, "version": version, "action": "apply", "result": "succeeded", "add": 2,
                  "change": 0, "destroy": 2, "caller": f"arn:aws:iam::111111111111:{FORGER}",
                  "started_at": stamp, "finished_at": stamp, "plan_sha256": "0" * 64, "tfdeploy_version": "0",
                  "build_id": "", "override": "", "details": {}, "id": os.urandom(6).hex()}
        if future:  # signed by the real key: only its date is wrong
            from tfdeploy.fleet.ledger import Record
            from tfdeploy.fleet.signing import sign

            record = sign(Record.from_dict(record), "alias/tfdeploy-ledger", "us-east-1",
                          {**self.env, "TFDEPLOY_SANDBOX_ENDPOINT": self.backend.moto_url}).to_dict()
        key = f"{LEDGER_PREFIX}{cell}/{''.join(c for c in stamp if c.isalnum() or c == '.')}-{record['id']}.json"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(record).encode())
        summary_key = f"{LEDGER_PREFIX}_latest/{cell}.json"
        try:
            summary = json.loads(self.s3.get_object(Bucket=BUCKET, Key=summary_key)["Body"].read())
            summary["records"] = [record, *summary.get("records", [])]
            self.s3.put_object(Bucket=BUCKET, Key=summary_key, Body=json.dumps(summary).encode())
        except self.s3.exceptions.NoSuchKey:
            pass  # no summary yet: the record object alone
        after = self.status_view()
        if after is not None and (after.get(cell) or {}).get("version") != row.get("version"):
            self.counts["ledger disagreements"] += 1
            print(f"FORGED RECORD TRUSTED in {cell}: status says {after[cell].get('version')} "
                  f"(was {row.get('version')}) after a {'future-dated' if future else 'unsigned'} record for "
                  f"{version}", file=sys.stderr)
        unverified = "unverified" in ((after or {}).get(cell) or {}).get("marks", [])
        self.note(f"forged {'future-dated' if future else 'unsigned'}" + (" (marked unverified)" if unverified else ""))

    def op_override(self) -> None:
        """An apply that tries to set a policy setting from the runner: refused, rc 2, nothing written."""
        tag = self.changing_tag()
        env, extra = self.env, []
        # (An empty TFDEPLOY_<SETTING> is "unset" for every setting: ignored, not refused.)
        kind = self.rng.choice(("--protected-envs ''", "TFDEPLOY_ENVIRONMENTS", "TFDEPLOY_SCAN_SOFT_FAIL_ENVS"))
        if kind == "--protected-envs ''":
            extra = ["--protected-envs", ""]
        elif kind == "TFDEPLOY_ENVIRONMENTS":
            env = {**self.env, "TFDEPLOY_ENVIRONMENTS": "dev,qa,prod"}
        else:
            env = {**self.env, "TFDEPLOY_SCAN_SOFT_FAIL_ENVS": "dev"}
        before = self.bucket_listing()
        done = self.tfdeploy("apply", "--tag", tag, "--auto-approve", *extra, env=env)
        after = self.bucket_listing()
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        if done.returncode != 2 or before != after or len(lines) != 1:
            self.counts["overrides accepted"] += 1
            changed = sorted(set(before.items()) ^ set(after.items()))
            print(f"OVERRIDE {kind}: rc {done.returncode}, {len(changed)} objects changed, "
                  f"stderr: {done.stderr.strip()[-300:]}", file=sys.stderr)
        self.note(f"override {kind} rc={done.returncode}")

    def op_kill_fanout(self) -> None:
        """SIGKILL of the fan-out parent mid-apply (its Terraform children are on their own)."""
        current = {c: self.deployed_version(c) for c in CELLS if c.endswith("/research")}
        version = self.rng.choice([v for v in VERSIONS if any(cur != v for cur in current.values())] or VERSIONS)
        proc = self.spawn("apply", "--tag", f"dev_*/research/{version}", "--auto-approve")
        self.wait_applying(proc, "-research")  # any research cell's ledger line
        if proc.poll() is None:
            proc.kill()
        self.finish(proc)
        self.note(f"fan-out SIGKILL rc={proc.returncode}")
        self.repair()

    def bucket_listing(self) -> dict[str, str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}

    def status_view(self) -> dict[str, dict] | None:
        """cell -> status --json's row, as the soak's operator reads it (None: status failed)."""
        done = self.tfdeploy("status", "--json", timeout=120)
        try:
            return {row["cell"]: row for row in json.loads(done.stdout)["cells"]}
        except (ValueError, KeyError, TypeError):
            self.counts["ledger disagreements"] += 1
            print(f"STATUS FAILED: rc {done.returncode}: {done.stderr.strip()[-300:]}", file=sys.stderr)
            return None

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
        for key in self.backend_kept():  # kept in the bucket when the local disk failed
            cell = key.split("/")[1]
            tag = next(f"{c}/{VERSIONS[0]}" for c in CELLS if cell_of(c) == cell)
            done = self.tfdeploy("state", "recover", "--tag", tag, "--file", f"s3://{BUCKET}/{key}", "--yes")
            self.note("recovered from bucket" if done.returncode == 0 else "recover-refused (bucket)")

    def backend_kept(self) -> list[str]:
        """Errored states kept under `_tfdeploy-errored/` and not yet pushed back."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=ERRORED_PREFIX)
        keys = {o["Key"] for page in pages for o in page.get("Contents", [])}
        return sorted(k for k in keys if k.endswith(".tfstate") and f"{k}.recovered" not in keys)

    # -- invariants --
    def check(self) -> None:
        self.check_processes()
        live = self.ledger_live()
        kept_ids = self.kept_ids()
        states: dict[str, dict | None] = {}
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
            states[cell] = state
            missing = live.get(cell, set()) - ids - kept_ids
            if missing:
                self.counts["lost resources"] += len(missing)
                print(f"LOST RESOURCES in {cell}: {sorted(missing)}", file=sys.stderr)
        self.check_ledger(states)

    def check_ledger(self, states: dict[str, dict | None]) -> None:
        """The ledger's view (status --json) against each state object read straight from moto."""
        view = self.status_view()
        if view is None:
            return
        for cell, state in states.items():
            row = view.get(cell) or {}
            said = row.get("version")
            ran = state_version(state)
            marked = "interrupted" in row.get("marks", []) or row.get("partly")
            problems = []
            if not marked and said != ran:
                problems.append(f"status says version {said}, the state holds {ran or 'no single version'}")
            after = ((row.get("last") or {}).get("details") or {}).get("serial_after")
            serial = state["serial"] if state else 0
            if after is not None and int(after) > serial:
                problems.append(f"the last record says serial {after}, the state is at {serial}")
            forged = [what for what, rec in (("deployed", {"caller": row.get("deployed_by")}),
                                               ("last", row.get("last") or {}))
                      if str(rec.get("caller") or "").endswith(FORGER)]
            if forged:
                problems.append(f"status takes a forged record as its {' and '.join(forged)} record")
            if problems:
                self.counts["ledger disagreements"] += 1
                print(f"LEDGER DISAGREES in {cell}: {'; '.join(problems)} (marks {row.get('marks')}, last "
                      f"{(row.get('last') or {}).get('result')} {(row.get('last') or {}).get('version')})",
                      file=sys.stderr)

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
                print(f"CORRUPT kept state: {path}", file=sys.stderr)
        for key in self.backend_kept():
            try:
                ids |= state_ids(json.loads(self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()))
            except ValueError:
                self.counts["corrupt states"] += 1
                print(f"CORRUPT kept state: s3://{BUCKET}/{key}", file=sys.stderr)
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

    def run(self, ops: int, max_minutes: float) -> None:
        table = [(self.op_plan, 20), (self.op_apply, 30), (self.op_race, 15),
                 (lambda: self.op_signal(signal.SIGTERM), 10), (lambda: self.op_signal(signal.SIGINT), 5),
                 (lambda: self.op_signal(signal.SIGKILL), 10), (self.op_kill_backend, 10),
                 (self.op_disk_full, 8), (self.op_forge, 6), (self.op_override, 6), (self.op_kill_fanout, 6)]
        actions, weights = zip(*table)
        started = time.monotonic()
        for number in range(1, ops + 1):
            if time.monotonic() - started > max_minutes * 60:
                print(f"STOPPED: --max-minutes {max_minutes:g} passed after {number - 1} operations", file=sys.stderr)
                self.counts["stopped early"] += 1
                break
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


def state_version(state: dict | None) -> str | None:
    """The one version every resource of the state was created for (None: none, or a mix)."""
    versions = {inst["attributes"]["input"]["value"]["version"] for res in (state or {}).get("resources", [])
                for inst in res.get("instances", []) if res.get("type") == "terraform_data"}
    return versions.pop() if len(versions) == 1 else None


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
    parser.add_argument("--max-minutes", type=float, default=150.0,
                        help="start no operation past this (the run then fails)")
    args = parser.parse_args()
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="tfdeploy-soak-"))
    soak = Soak(root, args.seed)
    try:
        soak.run(args.ops, args.max_minutes)
    finally:
        soak.backend.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"terraform: {soak.terraform}")
    keys = ("operations", "lost states", "lost resources", "corrupt states", "orphaned processes", "tracebacks", "hung",
            "ledger disagreements", "overrides accepted", "stopped early")
    print(f"soak over {len(CELLS)} cells, seed {args.seed}, wall time {time.monotonic() - started:.0f} s")
    if soak.mount_refused:
        print(f"  disk-full fault skipped: cannot mount a tmpfs here ({soak.mount_refused})")
    for key in keys:
        print(f"  {key:<22}{soak.counts[key]:>6}")
    others = {k: v for k, v in sorted(soak.counts.items()) if k not in keys}
    print("  outcomes: " + ", ".join(f"{k} x{v}" for k, v in others.items()))
    sys.exit(0 if all(soak.counts[k] == 0 for k in keys[1:]) else 1)


if __name__ == "__main__":
    main()
